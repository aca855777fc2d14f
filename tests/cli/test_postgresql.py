#!/usr/bin/python3
"""The PostgreSQL backend's own behaviour (fleetkey-postgresql(7)): locations and passwords, refusing
what is not a fleetkey registry, registry copy to PostgreSQL and back with a verifying audit trail,
stations importing while others grant and revoke, and a server restart in the middle of an import.

Runs in the PostgreSQL run only (cli.pg.test_postgresql, FLEETKEY_TEST_PG); the SQLite run skips it.
The rest of the CLI tests run on PostgreSQL too, through fk.py."""
import json
import os
import sqlite3
import subprocess
import time
import unittest

import fk
import pg_cluster


@unittest.skipUnless(fk.PG_STATE, "PostgreSQL only: runs as cli.pg.test_postgresql, against a throwaway cluster")
class PostgresqlTest(fk.FleetTest):

    def psql(self, sql, dbname=None):
        con = fk.pg_connect(self.pg_state, dbname or self.pg_dbname)
        try:
            cur = con.cursor()
            cur.execute(sql)
            return cur.fetchall() if cur.description else None
        finally:
            con.close()

    def write_ids(self, name, ids):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write("id\n" + "".join(f"{i}\n" for i in ids))
        return path

    # --- locations -----------------------------------------------------------------------------------

    def test_password_in_the_location_is_refused_without_echoing_it(self):
        for loc in ("postgresql://fleet:s3cr3t-pw@localhost/fleet", f"{self.pg_uri}&password=s3cr3t-pw",
                    "postgres://fleet:s3cr3t-pw@db.example:5433/fleet?sslmode=verify-full",
                    "service=fleet password=s3cr3t-pw"):
            for args, env in ((["--registry", loc], None), ([], {"FLEETKEY_REGISTRY": loc})):
                r = self.fails(fk.USAGE, *args, "device", "list", env=env)
                self.assertNotIn("s3cr3t", r.err)
                self.assertIn("PGPASSFILE", r.err)
                self.assertIn("service file", r.err)

    def test_service_name_and_pgservice(self):
        self.init_plain()
        self.fk("device", "add", "SN-1")
        conf = self.write_private("pg_service.conf",
                                  f"[fleet]\nhost={self.pg_state['socket']}\nuser={self.pg_state['user']}\n"
                                  f"dbname={self.pg_dbname}\n")
        env = {"PGSERVICEFILE": conf}
        r = self.fk("--registry", "service=fleet", "device", "list", env=env)
        self.assertIn("SN-1", r.out)
        r = self.fk("--registry", "postgresql://", "device", "list", env={**env, "PGSERVICE": "fleet"})
        self.assertIn("SN-1", r.out)

    def test_sslmode_is_passed_to_libpq(self):
        # libpq checks the value when it connects (TLS itself does not apply to a UNIX socket).
        self.init_plain()
        self.fk("--registry", self.pg_uri + "&sslmode=prefer", "device", "list")
        r = self.fails(fk.REGISTRY, "--registry", self.pg_uri + "&sslmode=bogus", "device", "list")
        self.assertIn('invalid sslmode value: "bogus"', r.err)

    def test_a_database_with_other_tables_is_not_a_registry(self):
        self.psql("CREATE TABLE payroll (id int)")
        r = self.fails(fk.REGISTRY, "init", "--no-passphrase")
        self.assertEqual(r.err, f"fleetkey: error: {self.pg_uri} is not a fleetkey registry\n")
        self.assertEqual(self.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"), [(1,)])

    def test_an_empty_database_is_no_registry_yet(self):
        r = self.fails(fk.REGISTRY, "device", "list")
        self.assertEqual(r.err, f"fleetkey: error: no registry at {self.pg_uri} (run fleetkey init, or pass "
                                "--registry)\n")

    def test_newer_schema_is_refused(self):
        self.init_plain()
        self.psql("UPDATE fleetkey_registry SET schema_version = schema_version + 1")
        version = self.psql("SELECT schema_version FROM fleetkey_registry")[0][0]
        r = self.fails(fk.REGISTRY, "device", "list")
        self.assertEqual(r.err, f"fleetkey: error: registry {self.pg_uri} has schema version {version}, newer than "
                                f"this fleetkey supports ({version - 1}): upgrade fleetkey\n")

    def test_unreachable_server_is_exit_6(self):
        r = self.fails(fk.REGISTRY, "--registry", f"postgresql:///nodb?host={self.tmp}/nowhere", "device", "list")
        self.assertIn("cannot open registry", r.err)

    def test_audit_trail_is_append_only(self):
        self.init_plain()
        for sql in ("UPDATE audit SET actor = 'x'", "DELETE FROM audit", "TRUNCATE audit"):
            with self.assertRaises(Exception) as e:
                self.psql(sql)
            self.assertIn("audit is append-only", str(e.exception))

    def test_key_version_is_checked_once_a_statement(self):
        # Schema 6: triggers instead of a foreign key (one query a row doubled a COPY's time), with the
        # same guarantee for any writer.
        self.init_plain()
        self.fk("device", "add", "SN-1")
        before = fk.pg_snapshot(self)
        for sql, message in (
                ("INSERT INTO devices (id, key_version, fingerprint, created) VALUES ('SN-2', 9, 'f', 'c')",
                 "a device's key_version names no master key"),
                ("UPDATE devices SET key_version = 9", "a device's key_version names no master key"),
                ("DELETE FROM master_keys", "a master key version that devices name cannot be removed"),
                ("UPDATE master_keys SET version = 9", "a master key version that devices name cannot be removed"),
                ("TRUNCATE master_keys", "master_keys cannot be truncated while devices name its versions")):
            with self.assertRaises(Exception) as e:
                self.psql(sql)
            self.assertIn(message, str(e.exception))
        self.assertEqual(fk.pg_snapshot(self), before)
        self.assertEqual(self.psql("SELECT count(*) FROM pg_constraint WHERE conname = 'devices_key_version_fkey'"),
                         [(0,)])

    def test_schema_5_registry_is_migrated_to_the_key_version_triggers(self):
        # A registry made by schema 1-5 (the foreign key), as the first fleetkey with PostgreSQL left it.
        self.init_plain()
        self.fk("device", "add", "SN-1")
        self.psql("DROP TRIGGER devices_key_version_insert ON devices; DROP TRIGGER devices_key_version_update ON devices;"
                  "DROP TRIGGER master_keys_in_use_delete ON master_keys;"
                  "DROP TRIGGER master_keys_in_use_update ON master_keys;"
                  "DROP TRIGGER master_keys_in_use_truncate ON master_keys;"
                  "DROP FUNCTION fleetkey_devices_key_version(); DROP FUNCTION fleetkey_master_keys_in_use();"
                  "DROP FUNCTION fleetkey_master_keys_truncate();"
                  "ALTER TABLE devices ADD CONSTRAINT devices_key_version_fkey FOREIGN KEY (key_version)"
                  " REFERENCES master_keys (version); UPDATE fleetkey_registry SET schema_version = 5")
        self.assertIn("SN-1", self.fk("device", "list").out)
        self.assertEqual(self.psql("SELECT schema_version FROM fleetkey_registry"), [(6,)])
        self.assertEqual(self.psql("SELECT count(*) FROM pg_constraint WHERE conname = 'devices_key_version_fkey'"),
                         [(0,)])
        self.assertEqual(self.psql("SELECT count(*) FROM pg_trigger WHERE tgname LIKE '%key_version%'"
                                   " OR tgname LIKE 'master_keys_in_use%'"), [(5,)])

    def role_from_the_page(self, name):
        """A role with the grants of fleetkey-postgresql(7), ROLES, as written there for `name` (station or
        fleet_admin); returns the registry location that connects as it."""
        page = self.read(os.path.join(fk.SOURCE_DIR, "man/fleetkey-postgresql.7"))
        grants = page.split(f"CREATE ROLE {name} LOGIN;", 1)[1].split(".fi", 1)[0]
        role = f"{name}_" + self.pg_dbname[3:]
        self.psql(f"CREATE ROLE {role} LOGIN")
        self.addCleanup(lambda: self.psql(f"DROP OWNED BY {role}; DROP ROLE {role}"))
        self.psql(grants.replace(f"TO {name}", f"TO {role}").replace("DATABASE fleet", f"DATABASE {self.pg_dbname}")
                  .replace("\\-", "-"))
        return self.pg_uri.replace(f"user={self.pg_state['user']}", f"user={role}")

    def test_station_role_registers_devices_without_reading_the_audit_trail(self):
        # The grants of fleetkey-postgresql(7), ROLES, as written there.
        self.init_plain()
        station = self.role_from_the_page("station")
        path = self.write_ids("batch.csv", [f"L-{i:04}" for i in range(100)])
        r = self.fk("--registry", station, "device", "add", "SN-1")
        self.assertTrue(r.out.startswith("registered device SN-1"), r.out)
        r = self.fk("--registry", station, "device", "import", path)
        self.assertTrue(r.out.startswith("imported 100 devices, skipped 0"), r.out)
        r = self.fails(fk.REGISTRY, "--registry", station, "audit", "list")
        self.assertIn("permission denied for table audit", r.err)
        self.fails(fk.REGISTRY, "--registry", station, "user", "add", "mallory")
        self.assertEqual(self.rows("SELECT count(*) FROM devices")[0][0], 101)
        self.assertTrue(self.fk("--json", "audit", "verify").json()["ok"])

    def test_init_force_needs_the_owner_and_keeps_the_grants(self):
        # fleetkey-postgresql(7), REPLACING A REGISTRY: only the tables' owner may empty them; the privileges
        # granted on them stay, and the audit trail refuses TRUNCATE again afterwards.
        self.init_test_key()
        self.fk("device", "add", "SN-1")
        station, admin = self.role_from_the_page("station"), self.role_from_the_page("fleet_admin")
        snap, key_file = self.snapshot(), self.read(self.key_path)
        r = self.fails(fk.REGISTRY, "--registry", admin, "init", "--no-passphrase", "--force")
        self.assertEqual(r.err, "fleetkey: error: registry: must be owner of table audit (see fleetkey-postgresql(7), "
                                "ROLES)\n")
        self.assertEqual((self.snapshot(), self.read(self.key_path)), (snap, key_file))
        self.assertEqual(sorted(os.listdir(self.home)), ["master.key"])
        self.fk("init", "--no-passphrase", "--force")
        self.assertEqual(self.rows("SELECT count(*) FROM devices"), [(0,)])
        self.assertTrue(self.fk("--registry", station, "device", "add", "SN-1").out.startswith("registered device"))
        self.assertEqual(self.rows("SELECT id, seq, action FROM audit ORDER BY id"), [(1, 1, "init"), (2, 2, "device.add")])
        with self.assertRaises(Exception) as e:
            self.psql("TRUNCATE audit")
        self.assertIn("audit is append-only", str(e.exception))

    # --- registry copy -------------------------------------------------------------------------------

    def populate(self):
        self.init_test_key()
        self.fk("master", "rotate")
        for i in range(30):
            self.fk("device", "add", f"SN-{i:03}", "--label", f"line={i % 3}")
        self.fk("user", "add", "alice", "--label", "team=ops")
        self.fk("user", "grant", "alice", "--device", "SN-001", "--role", "owner")
        self.fk("user", "grant", "alice", "--device", "SN-002", "--role", "guest", "--ttl", "1d")
        self.fk("user", "revoke", "alice", "--device", "SN-002", "--reason", "left")
        self.fk("device", "revoke", "SN-003", "--reason", "stolen")
        token = self.fk("token", "mint", "--sub", "alice", "--role", "owner", "--aud", "SN-001").out.strip()
        self.fk("token", "revoke", token, "--reason", "lost")
        self.fk("pair", "SN-004", "--qr", "none")
        return token

    def listing(self, registry):
        out = {}
        for args in (["device", "list"], ["user", "list"], ["master", "list"], ["device", "show", "SN-004"],
                     ["user", "show", "alice"]):
            out[" ".join(args)] = self.fk("--registry", registry, "--json", *args).out
        out["state"] = self.fk("--registry", registry, "device", "state", "SN-001", "--format", "base64url",
                               "--now", "2030-01-01").out
        return out

    def test_copy_sqlite_to_postgresql_and_back(self):
        sqlite_path = os.path.join(self.home, "registry.db")
        self.env["FLEETKEY_REGISTRY"] = sqlite_path
        token = self.populate()
        before = self.listing(sqlite_path)
        audit_before = self.fk("--json", "audit", "list").jsonl()

        r = self.fk("registry", "copy", "--to", self.pg_uri, "--json")
        summary = r.json()
        self.assertEqual(summary["from"], sqlite_path)
        self.assertEqual(summary["to"], self.pg_uri)
        self.assertEqual((summary["from_backend"], summary["to_backend"]), ("sqlite", "postgresql"))
        self.assertEqual(summary["devices"], 30)
        self.assertEqual(summary["audit"], len(audit_before))

        # The same registry, row for row, on PostgreSQL; its trail verifies, one row longer.
        self.assertEqual(self.listing(self.pg_uri), before)
        audit_pg = self.fk("--registry", self.pg_uri, "--json", "audit", "list").jsonl()
        self.assertEqual(audit_pg[:-1], audit_before)
        self.assertEqual(audit_pg[-1]["action"], "registry.copy")
        self.assertEqual(audit_pg[-1]["details"]["from"], sqlite_path)
        v = self.fk("--registry", self.pg_uri, "--json", "audit", "verify").json()
        self.assertTrue(v["ok"])
        self.assertEqual(v["rows"], len(audit_before) + 1)
        r = self.run_fk("--registry", self.pg_uri, "token", "verify", token)
        self.assertEqual(r.rc, fk.TOKEN_REVOKED, r)
        # Stations keep working on the copy: counters go on from where they were.
        self.fk("--registry", self.pg_uri, "device", "add", "SN-100")

        back = os.path.join(self.tmp, "back.db")
        r = self.fk("--registry", self.pg_uri, "registry", "copy", "--to", back)
        self.assertTrue(r.out.startswith(f"copied registry {self.pg_uri} to {back}: 31 devices"), r.out)
        self.assertEqual(os.stat(back).st_mode & 0o777, 0o600)
        self.assertTrue(self.fk("--registry", back, "--json", "audit", "verify").json()["ok"])
        with sqlite3.connect(sqlite_path) as a, sqlite3.connect(back) as b:
            for table in ("master_keys", "users", "grants", "revocations", "state"):
                self.assertEqual(a.execute(f"SELECT * FROM {table}").fetchall(),
                                 b.execute(f"SELECT * FROM {table}").fetchall(), table)
            self.assertEqual(a.execute("SELECT * FROM devices ORDER BY id").fetchall(),
                             b.execute("SELECT * FROM devices WHERE id <> 'SN-100' ORDER BY id").fetchall())
            self.assertEqual(a.execute("SELECT * FROM audit ORDER BY id").fetchall(),
                             b.execute(f"SELECT * FROM audit WHERE id <= {len(audit_before)} ORDER BY id").fetchall())
        a.close()
        b.close()

    def test_copy_refuses_a_target_that_is_not_new(self):
        sqlite_path = os.path.join(self.home, "registry.db")
        self.env["FLEETKEY_REGISTRY"] = sqlite_path
        self.init_plain()
        self.fk("registry", "copy", "--to", self.pg_uri)
        before = self.psql("SELECT count(*) FROM audit")
        r = self.fails(fk.CONFLICT, "registry", "copy", "--to", self.pg_uri)
        self.assertEqual(r.err, f"fleetkey: error: registry {self.pg_uri} is not empty (registry copy makes a new "
                                "registry)\n")
        self.assertEqual(self.psql("SELECT count(*) FROM audit"), before)
        r = self.fails(fk.CONFLICT, "--registry", self.pg_uri, "registry", "copy", "--to", sqlite_path)
        self.assertEqual(r.err, f"fleetkey: error: {sqlite_path} already exists (registry copy makes a new "
                                "registry)\n")

    # --- concurrency ---------------------------------------------------------------------------------

    def test_four_stations_import_while_two_administrators_grant_and_revoke(self):
        self.init_plain()
        for u in ("ann", "bob"):
            self.fk("user", "add", u)
        for i in range(10):
            self.fk("device", "add", f"DOOR-{i}")
        per = 50_000
        files = [self.write_ids(f"station{s}.csv", [f"ST{s}-{i:06d}" for i in range(per)]) for s in range(4)]
        admin_script = ("set -e; for i in 0 1 2 3 4 5 6 7 8 9; do "
                        "\"$FK\" user grant \"$U\" --device DOOR-$i --role owner >/dev/null; "
                        "\"$FK\" user revoke \"$U\" --device DOOR-$i --reason rotation >/dev/null; done")
        admins = [subprocess.Popen(["sh", "-c", admin_script], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env={**self.env, "FK": fk.BIN, "U": u})
                  for u in ("ann", "bob")]
        stations = [subprocess.Popen([fk.BIN, "device", "import", f, "--json"], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env, text=True)
                    for f in files]
        for p in stations:
            out, err = p.communicate(timeout=300)
            self.assertEqual((p.returncode, err), (0, ""))
            self.assertEqual(json.loads(out)["imported"], per)
        for p in admins:
            out, err = p.communicate(timeout=300)
            self.assertEqual((p.returncode, err), (0, ""))
        self.assertEqual(self.rows("SELECT count(*) FROM devices")[0][0], 4 * per + 10)
        self.assertEqual(self.rows("SELECT count(*) FROM audit WHERE action = 'device.import'")[0][0], 4)
        # Each revoke bumped the epoch once: every grant went 1 -> revoked at epoch 1.
        self.assertEqual(self.rows("SELECT count(*) FROM grants WHERE status = 'revoked'")[0][0], 20)
        self.assertEqual(self.rows("SELECT count(*) FROM revocations WHERE kind = 'grant'")[0][0], 20)
        ids = [r[0] for r in self.rows("SELECT id FROM revocations ORDER BY id")]
        self.assertEqual(ids, list(range(1, len(ids) + 1)))
        self.assertTrue(self.fk("--json", "audit", "verify").json()["ok"])

    # --- a server restart in the middle of an import -------------------------------------------------

    def test_server_restart_mid_import_leaves_nothing_and_skip_existing_completes(self):
        # A cluster of its own: the restart must not disturb the tests running beside this one.
        state_path = os.path.join(self.tmp, "own-cluster.json")
        pg_cluster.start(state_path)
        with open(state_path) as f:
            state = json.load(f)
        self.addCleanup(pg_cluster.stop_state, state)  # after tearDown, which removes state_path
        con = fk.pg_connect(state, "postgres")
        con.cursor().execute("CREATE DATABASE fleet")
        con.close()
        uri = f"postgresql:///fleet?host={state['socket']}&user={state['user']}"
        self.env["FLEETKEY_REGISTRY"] = uri
        self.init_plain()
        n = 300_000
        path = self.write_ids("big.csv", [f"R-{i:07d}" for i in range(n)])
        proc = subprocess.Popen([fk.BIN, "device", "import", path], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env, text=True)
        # Inside the write transaction: the import holds the advisory lock and has staged rows.
        deadline = time.time() + 120
        watcher = fk.pg_connect(state, "fleet")
        while time.time() < deadline:
            cur = watcher.cursor()
            cur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")
            if cur.fetchone()[0] > 0:
                break
            time.sleep(0.02)
        watcher.close()
        time.sleep(0.3)
        # -l: the restarted server must not inherit pg_ctl's stdout, or run() would wait for it.
        subprocess.run(pg_cluster.as_server_user([os.path.join(state["bin"], "pg_ctl"), "-D", state["data"], "-l",
                                                  os.path.join(state["dir"], "server.log"), "-m", "immediate", "-w",
                                                  "restart"]),
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                       timeout=120)
        out, err = proc.communicate(timeout=300)
        self.assertEqual(proc.returncode, fk.REGISTRY, (out, err))
        self.assertEqual(out, "")
        self.assertRegex(err, r"^fleetkey: error: [^\n]*lost the connection to the registry [^\n]*nothing of this "
                              r"command was committed\n$")
        con = fk.pg_connect(state, "fleet")
        cur = con.cursor()
        cur.execute("SELECT count(*) FROM devices")
        self.assertEqual(cur.fetchone()[0], 0)
        cur.execute("SELECT count(*) FROM audit WHERE action = 'device.import'")
        self.assertEqual(cur.fetchone()[0], 0)
        con.close()
        r = self.fk("device", "import", path, "--skip-existing")
        self.assertRegex(r.out, rf"^imported {n} devices, skipped 0, in ")
        self.assertTrue(self.fk("--json", "audit", "verify").json()["ok"])


if __name__ == "__main__":
    fk.main()
