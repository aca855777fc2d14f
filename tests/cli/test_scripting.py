"""fleetkey(1), SCRIPTING: the idempotent forms of the creating and revoking commands, and error.code."""
import json
import os
import time

import fk


class ScriptingTest(fk.FleetTest):
    def setUp(self):
        super().setUp()
        self.init_test_key()
        self.fk("device", "add", "SN-0001")
        self.fk("device", "add", "SN-0002")

    def json_error(self, code, exit_code, *args, **kw):
        """Runs fleetkey --json-errors, asserts `exit_code`, nothing on stdout and one JSON error object on stderr
        (after the test-key warning) whose error.code is `code`; returns its message."""
        r = self.run_fk("--json-errors", *args, **kw)
        self.assertEqual(r.rc, exit_code, r)
        self.assertEqual(r.out, "", r)
        err = r.err[len(fk.TEST_KEY_WARNING):] if r.err.startswith(fk.TEST_KEY_WARNING) else r.err
        self.assertTrue(err.endswith("\n") and err.count("\n") == 1, r)
        j = json.loads(err)
        self.assertEqual(list(j), ["error"])
        self.assertEqual(list(j["error"]), ["code", "exit", "message"])
        self.assertEqual((j["error"]["code"], j["error"]["exit"]), (code, exit_code))
        return j["error"]["message"]

    def test_init_if_missing(self):
        snap = self.snapshot()
        self.assertEqual(self.fk("init", "--if-missing", "--no-passphrase").out, f"{self.home} is initialised already\n")
        r = self.fk("--json", "init", "--if-missing", "--no-passphrase")
        self.assertEqual(r.json()["created"], False)
        self.assertEqual(self.snapshot(), snap)
        self.assertEqual(self.json_error("exists", fk.CONFLICT, "init", "--no-passphrase"),
                         f"{self.home}/master.key already exists (use --force to replace it and lose every key "
                         "derived from it)")
        # A fresh home: --if-missing creates it.
        other = {"FLEETKEY_HOME": os.path.join(self.tmp, "other")}
        r = self.fk("--json", "init", "--if-missing", "--no-passphrase", env=other)
        self.assertEqual(r.json()["created"], True)
        self.assertEqual(r.json()["version"], 1)
        # Half a home is still refused: a registry without its key file, or (SQLite) a key file without its
        # registry. (On PostgreSQL a registry location always names a database: fleetkey-postgresql(7).)
        key = os.path.join(self.tmp, "other", "master.key")
        os.rename(key, key + ".saved")
        r = self.fails(fk.CONFLICT, "init", "--if-missing", "--no-passphrase", env=other)
        self.assertIn("already exists", r.err)
        os.rename(key + ".saved", key)
        if not fk.PG_STATE:
            os.unlink(os.path.join(self.tmp, "other", "registry.db"))
            self.fails(fk.CONFLICT, "init", "--if-missing", "--no-passphrase", env=other)

    def test_user_add_if_missing(self):
        self.assertEqual(self.fk("user", "add", "alice", "--if-missing").out, "added user alice\n")
        snap = self.snapshot()
        self.assertEqual(self.fk("user", "add", "alice", "--if-missing", "--label", "x=y").out,
                         "user alice already exists\n")
        j = self.fk("--json", "user", "add", "alice", "--if-missing").json()
        self.assertEqual((j["name"], j["labels"], j["added"]), ("alice", {}, False))
        self.assertEqual(self.snapshot(), snap)
        self.assertEqual(self.json_error("exists", fk.CONFLICT, "user", "add", "alice"),
                         'user "alice" already exists')
        self.assertEqual(self.fk("--json", "user", "add", "bob").json()["added"], True)

    def test_revoke_if_not_revoked(self):
        self.fk("user", "add", "alice")
        self.fk("user", "grant", "alice", "--device", "SN-0001", "--role", "owner")
        self.fk("user", "grant", "alice", "--device", "SN-0002", "--role", "owner")
        self.fk("user", "revoke", "alice", "--device", "SN-0001", "--reason", "lost", "--if-not-revoked")
        snap = self.snapshot()
        r = self.fk("user", "revoke", "alice", "--device", "SN-0001", "--reason", "lost", "--if-not-revoked")
        self.assertEqual(r.out, "alice on device SN-0001 is already revoked\n")
        self.assertEqual(self.fk("--json", "user", "revoke", "alice", "--device", "SN-0001", "--reason", "lost",
                                 "--if-not-revoked").out, "")
        self.assertEqual(self.snapshot(), snap)
        self.assertEqual(self.json_error("already_revoked", fk.CONFLICT, "user", "revoke", "alice", "--device",
                                         "SN-0001", "--reason", "lost"),
                         "user \"alice\"'s grant on device \"SN-0001\" is already revoked")
        # Every device: the first revokes what is left, the second finds nothing to do.
        r = self.fk("user", "revoke", "alice", "--reason", "left", "--if-not-revoked")
        self.assertEqual(r.out, "revoked alice on device SN-0002 (key epoch now 2)\n")
        r = self.fk("user", "revoke", "alice", "--reason", "left", "--if-not-revoked")
        self.assertEqual(r.out, "alice has no active grant: already revoked\n")
        # A user with no grant at all is still not found.
        self.fk("user", "add", "bob")
        self.fails(fk.NOT_FOUND, "user", "revoke", "bob", "--reason", "x", "--if-not-revoked")

        # Devices.
        j = self.fk("--json", "device", "revoke", "SN-0002", "--reason", "scrapped", "--if-not-revoked").json()
        self.assertEqual((j["status"], j["already_revoked"]), ("revoked", False))
        snap = self.snapshot()
        r = self.fk("device", "revoke", "SN-0002", "--reason", "scrapped", "--if-not-revoked")
        self.assertEqual(r.out, "device SN-0002 is already revoked\n")
        j = self.fk("--json", "device", "revoke", "SN-0002", "--reason", "scrapped", "--if-not-revoked").json()
        self.assertEqual((j["id"], j["status"], j["already_revoked"]), ("SN-0002", "revoked", True))
        self.assertEqual(self.snapshot(), snap)
        self.assertEqual(self.json_error("already_revoked", fk.CONFLICT, "device", "revoke", "SN-0002", "--reason",
                                         "x"), 'device "SN-0002" is already revoked')
        self.fails(fk.NOT_FOUND, "device", "revoke", "SN-0404", "--reason", "x", "--if-not-revoked")

        # Tokens.
        tok = self.fk("token", "mint", "--sub", "svc", "--aud", "SN-0001", "--role", "service").out.strip()
        r = self.fk("--json", "token", "revoke", tok, "--reason", "leaked", "--if-not-revoked")
        self.assertEqual(r.json()["already_revoked"], False)
        tid = r.json()["token_id"]
        snap = self.snapshot()
        r = self.fk("token", "revoke", tid, "--reason", "leaked", "--if-not-revoked")
        self.assertEqual(r.out, f"token {tid} is already revoked\n")
        self.assertEqual(self.fk("--json", "token", "revoke", tid, "--reason", "leaked", "--if-not-revoked").json(),
                         {"already_revoked": True})
        self.assertEqual(self.snapshot(), snap)
        self.json_error("already_revoked", fk.CONFLICT, "token", "revoke", tid, "--reason", "leaked")

    def test_grant_keep_epoch(self):
        self.fk("user", "add", "alice")
        first = self.fk("--json", "user", "grant", "alice", "--device", "SN-0001", "--role", "owner",
                        "--keep-epoch").json()
        self.assertEqual(first["epoch"], 1)
        grants = self.rows("SELECT role, epoch, status, created, expires FROM grants")
        again = self.fk("--json", "user", "grant", "alice", "--device", "SN-0001", "--role", "owner", "--ttl", "1d",
                        "--keep-epoch").json()
        self.assertEqual((again["epoch"], again["user_key"], again["expires"]),
                         (1, first["user_key"], first["expires"]))
        self.assertEqual(self.rows("SELECT role, epoch, status, created, expires FROM grants"), grants)
        self.assertEqual(self.rows("SELECT count(*) FROM audit WHERE action = 'user.grant'"), [(1,)])
        # The new token works, and so does the first one: nothing was invalidated.
        self.fk("token", "verify", again["token"], "--aud", "SN-0001")
        self.fk("token", "verify", first["token"], "--aud", "SN-0001")
        r = self.fk("user", "grant", "alice", "--device", "SN-0001", "--role", "owner", "--keep-epoch")
        self.assertIn("epoch:        1\n", r.out)
        self.assertTrue(r.out.endswith("kept the active grant (epoch 1): only the token is new\n"), r.out)
        # Another role: a new grant, as without --keep-epoch.
        j = self.fk("--json", "user", "grant", "alice", "--device", "SN-0001", "--role", "guest",
                    "--keep-epoch").json()
        self.assertEqual(j["epoch"], 2)
        # Without it, a re-grant still moves the epoch.
        self.assertEqual(self.fk("--json", "user", "grant", "alice", "--device", "SN-0001", "--role", "guest")
                         .json()["epoch"], 3)
        # A revoked grant is granted anew.
        self.fk("user", "revoke", "alice", "--device", "SN-0001", "--reason", "x")
        self.assertEqual(self.fk("--json", "user", "grant", "alice", "--device", "SN-0001", "--role", "guest",
                                 "--keep-epoch").json()["epoch"], 4)

    def test_pair_resume(self):
        self.fk("device", "add", "SN-0003")
        out = os.path.join(self.tmp, "labels")
        self.fk("pair", "--all", "-o", out)
        names = sorted(os.listdir(out))
        self.assertEqual(names, ["SN-0001.png", "SN-0002.png", "SN-0003.png", "manifest.csv"])
        orig = {n: self.read(os.path.join(out, n), "rb") for n in names}
        # A run cut off: one label missing, one cut short, no manifest.
        os.unlink(os.path.join(out, "manifest.csv"))
        os.unlink(os.path.join(out, "SN-0001.png"))
        os.truncate(os.path.join(out, "SN-0002.png"), 10)
        kept = os.stat(os.path.join(out, "SN-0003.png"))
        self.assertEqual(self.json_error("file_exists", fk.CONFLICT, "pair", "--all", "-o", out),
                         f"output directory {out} is not empty (use --force to write into it)")
        for _ in range(2):  # and once more: re-running a complete run changes nothing
            self.fk("pair", "--all", "-o", out, "--resume")
            self.assertEqual({n: self.read(os.path.join(out, n), "rb") for n in sorted(os.listdir(out))}, orig)
            again = os.stat(os.path.join(out, "SN-0003.png"))
            self.assertEqual((again.st_ino, again.st_mtime_ns), (kept.st_ino, kept.st_mtime_ns))
        self.fails(fk.USAGE, "pair", "SN-0001", "--resume")

    def test_grant_output_file_keeps_the_key_off_stdout(self):
        self.fk("user", "add", "alice")
        path = os.path.join(self.tmp, "bundle.json")
        r = self.fk("user", "grant", "alice", "--device", "SN-0001", "--role", "owner", "-o", path)
        bundle = json.loads(self.read(path))
        self.assertNotIn("user key:", r.out)
        self.assertNotIn(bundle["user_key"], r.out)
        self.assertIn("fingerprint:  %s\n" % bundle["fingerprint"], r.out)
        os.unlink(path)
        j = self.fk("--json", "user", "grant", "alice", "--device", "SN-0001", "--role", "owner", "-o", path).json()
        bundle = json.loads(self.read(path))
        self.assertNotIn(bundle["user_key"], json.dumps(j))
        self.assertEqual(j.pop("file"), path)
        del bundle["user_key"]
        self.assertEqual(j, bundle)

    def test_key_output_file(self):
        self.fk("user", "add", "alice")
        self.fk("user", "grant", "alice", "--device", "SN-0001", "--role", "owner")
        for cmd in (["device", "key", "SN-0001"], ["user", "key", "alice", "--device", "SN-0001"]):
            for fmt in ("hex", "c"):
                printed = self.fk(*cmd, "--format", fmt).out
                self.assertEqual(self.fk(*cmd, "--format", fmt, "-o", "-").out, printed)
                path = os.path.join(self.tmp, f"{cmd[0]}-{fmt}.key")
                self.assertEqual(self.fk(*cmd, "--format", fmt, "-o", path).out, "")
                self.assertEqual(self.read(path), printed)
                self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
                snap = self.snapshot()
                self.assertEqual(self.json_error("file_exists", fk.CONFLICT, *cmd, "-o", path),
                                 f"{path} already exists")
                self.assertEqual(self.snapshot(), snap)  # no export recorded
                self.assertEqual(self.read(path), printed)

    def test_quiet_hushes_the_test_key_warning(self):
        self.assertEqual(self.fk("device", "key", "SN-0001").err, fk.TEST_KEY_WARNING)
        r = self.fk("-q", "device", "key", "SN-0001")
        self.assertEqual((r.err, len(r.out)), ("", 65))
        self.assertEqual(self.fk("device", "add", "SN-0003", "--quiet").err, "")

    def test_no_color(self):
        rc, out = self.run_on_pty(["pair", "SN-0001"])
        self.assertEqual(rc, 0)
        self.assertIn("\x1b[", out)
        self.env["NO_COLOR"] = "1"
        rc, out = self.run_on_pty(["pair", "SN-0001"])
        self.assertEqual(rc, 0)
        self.assertNotIn("\x1b", out)
        self.fk("user", "add", "alice")
        rc, out = self.run_on_pty(["user", "grant", "alice", "--device", "SN-0001", "--role", "owner", "--qr", "utf8"])
        self.assertEqual(rc, 0)
        self.assertNotIn("\x1b", out)
        self.assertIn("\u2588", out)

    def test_pair_output_dash_is_stdout(self):
        png = os.path.join(self.tmp, "label.png")
        self.fk("pair", "SN-0001", "--qr", "png", "-o", png)
        r = self.fk("pair", "SN-0001", "--qr", "png", "-o", "-", binary=True)
        self.assertEqual(r.out, self.read(png, "rb"))
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "-")))
        r = self.fk("pair", "SN-0001", "--qr", "svg", "-o", "-")
        self.assertTrue(r.out.startswith("<") and r.out.endswith("</svg>\n"), r.out[-40:])
        self.assertEqual(self.rows("SELECT count(*) FROM audit WHERE action = 'device.pair'"), [(3,)])
        self.fails(fk.USAGE, "--json", "pair", "SN-0001", "-o", "-")
        self.fails(fk.USAGE, "pair", "--all", "-o", "-")

    def test_grant_now_is_reproducible(self):
        outs = []
        for home in ("a", "b"):
            env = {"FLEETKEY_HOME": os.path.join(self.tmp, home)}
            self.fk("init", "--no-passphrase", "--test-seed", fk.TEST_SEED, env=env)
            self.fk("device", "add", "SN-0001", env=env)
            self.fk("user", "add", "alice", env=env)
            outs.append(self.fk("--json", "user", "grant", "alice", "--device", "SN-0001", "--role", "owner", "--ttl",
                                "30d", "--now", "2026-11-22T00:00:00Z", env=env).out)
            if home == "a":
                time.sleep(1.1)
        self.assertEqual(outs[0], outs[1])
        j = json.loads(outs[0])
        self.assertEqual(j["expires"], "2026-12-22T00:00:00Z")
        self.assertEqual(j["token"], json.loads(outs[1])["token"])
        self.fails(fk.USAGE, "user", "grant", "alice", "--device", "SN-0001", "--role", "owner", "--now", "soon")

    def test_error_codes(self):
        self.fk("user", "add", "alice")
        self.fk("user", "grant", "alice", "--device", "SN-0001", "--role", "owner", "--ttl", "1s")
        self.fk("user", "grant", "alice", "--device", "SN-0002", "--role", "owner")
        self.json_error("exists", fk.CONFLICT, "device", "add", "SN-0001")
        self.json_error("not_found", fk.NOT_FOUND, "device", "show", "SN-0404")
        self.json_error("usage", fk.USAGE, "user", "grant", "alice", "--device", "SN-0001", "--role", "owner",
                        "--ttl", "forever")
        out = os.path.join(self.tmp, "bundle.json")
        self.write_private("bundle.json", "")
        self.assertEqual(self.json_error("file_exists", fk.CONFLICT, "user", "grant", "alice", "--device", "SN-0002",
                                         "--role", "owner", "-o", out), f"{out} already exists")
        self.fk("user", "revoke", "alice", "--device", "SN-0002", "--reason", "x")
        self.json_error("grant_revoked", fk.CONFLICT, "user", "key", "alice", "--device", "SN-0002")
        time.sleep(1.1)
        self.json_error("grant_expired", fk.CONFLICT, "user", "key", "alice", "--device", "SN-0001")
        self.json_error("grant_expired", fk.CONFLICT, "token", "mint", "--sub", "alice", "--aud", "SN-0001",
                        "--role", "owner")
        self.fk("device", "revoke", "SN-0002", "--reason", "x")
        self.json_error("device_revoked", fk.CONFLICT, "device", "key", "SN-0002")
        # The environment variable, a command line error, and --json with them.
        self.json_error("not_found", fk.NOT_FOUND, "device", "show", "SN-0404", env={"FLEETKEY_JSON_ERRORS": "0"})
        r = self.run_fk("--json", "device", "show", "SN-0404", env={"FLEETKEY_JSON_ERRORS": "1"})
        self.assertEqual((r.rc, r.out, json.loads(r.err)["error"]["code"]), (fk.NOT_FOUND, "", "not_found"))
        r = self.run_fk("device", "show", "--bogus", env={"FLEETKEY_JSON_ERRORS": "1"})
        self.assertEqual((r.rc, r.out, json.loads(r.err)["error"]["code"]), (fk.USAGE, "", "usage"))
        # Without them, the one-line error as before, with --json too.
        r = self.fails(fk.NOT_FOUND, "--json", "device", "show", "SN-0404")
        r = self.fails(fk.CONFLICT, "user", "add", "alice")
        self.assertEqual(r.err, 'fleetkey: error: user "alice" already exists\n')


if __name__ == "__main__":
    fk.main()
