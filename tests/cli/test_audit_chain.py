"""fleetkey audit verify and audit checkpoint: the audit trail's hash chain, walked again here with
hashlib as fleetkey-formats(5), AUDIT CHAIN specifies it, and tampered with in the registry directly (the
SQLite file, or the PostgreSQL database: rows changed, deleted and inserted with the triggers dropped) to
see the first bad row named."""
import concurrent.futures
import hashlib
import json
import os
import re
import sqlite3
import struct
import subprocess

import fk
from fk import OK, USAGE

AUDIT_CHAIN = 20  # fleetkey(1), EXIT STATUS
DOMAIN = b"fleetkey/audit/v1"
ZERO = bytes(32)
CHECKPOINT = re.compile(r"^fleetkey-audit-checkpoint seq=(\d+) hash=([0-9a-f]{64}) "
                        r"at=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\n$")


def field(text):
    b = text.encode() if isinstance(text, str) else text
    return struct.pack(">I", len(b)) + b


def link(prev, seq, at, actor, action, subject, details):
    """hash(seq) as fleetkey-formats(5) defines it, from hash(seq - 1) and the row's stored columns."""
    return hashlib.sha256(DOMAIN + prev + struct.pack(">Q", seq) + field(at) + field(actor) + field(action)
                          + field(subject) + field(details)).digest()


def walk(con):
    """The independent walk: (problem, seq, id) of the first bad row, or (None, head seq, head hash hex).
    Rows without a seq or hash come first, then the rows in seq order, as fleetkey walks them."""
    rows = con.execute("SELECT id, seq, hash, at, actor, action, subject, details FROM audit "
                       "ORDER BY seq IS NOT NULL, seq, id").fetchall()
    prev, before, expected, prev_id = ZERO, ZERO, 1, None
    for rid, seq, stored, *cols in rows:
        if seq is None or stored is None:
            return ("inserted", seq or 0, rid)
        if seq < expected:
            return ("inserted", seq, rid)
        if seq > expected:
            return ("deleted", expected, None)
        if link(prev, seq, *cols).hex() != stored:
            if seq >= 2 and link(before, seq - 1, *cols).hex() == stored:
                return ("inserted", seq - 1, prev_id)
            return ("changed", seq, rid)
        before, prev, prev_id, expected = prev, bytes.fromhex(stored), rid, expected + 1
    return (None, expected - 1, prev.hex())


class Tamper:
    """A writable connection to the registry for breaking the chain behind fleetkey's back, in SQLite's
    SQL: on PostgreSQL a trigger is dropped ON audit, and a row inserted without an id gets max + 1 (the
    table has no rowid to assign one)."""

    def __init__(self, con):
        self.con = con

    def execute(self, sql, params=()):
        if fk.PG_STATE:
            sql = re.sub(r"^(DROP TRIGGER (?:IF EXISTS )?\w+)$", r"\1 ON audit", sql)
            if sql.startswith("INSERT INTO audit (at,"):
                sql = sql.replace("INSERT INTO audit (at,", "INSERT INTO audit (id, at,", 1).replace(
                    "VALUES (", "VALUES ((SELECT coalesce(max(id), 0) + 1 FROM audit), ", 1)
        return self.con.execute(sql, params)

    def __enter__(self):
        self.con.__enter__()
        return self

    def __exit__(self, *exc):
        return self.con.__exit__(*exc)


class AuditChainTest(fk.FleetTest):
    def setUp(self):
        super().setUp()
        self.init_test_key()
        for i in range(1, 4):
            self.fk("device", "add", f"SN-{i:04}", "--label", "line=3")
        self.fk("user", "add", "alice")
        self.fk("user", "grant", "alice", "--device", "SN-0001", "--role", "owner")
        self.fk("device", "key", "SN-0002")
        # Text that an encoding without lengths could confuse: a subject that ends where details begin.
        self.fk("device", "revoke", "SN-0003", "--reason", "caf\u00e9 \u2028 \"quoted\"")
        self.fk("device", "add", "SN-0004{}")

    def writable(self):
        return Tamper(self.writable_db())

    def verify_json(self, *args, **kw):
        return self.run_fk("--json", "audit", "verify", *args, **kw)

    def assert_broken(self, problem, seq, rid, *args, **kw):
        """verify fails with exit 20 and names (problem, seq, id) in its message and its JSON, as the
        independent walk does (without a checkpoint)."""
        r = self.fails(AUDIT_CHAIN, "audit", "verify", *args, **kw)
        where = f"seq {seq} (id {rid})" if rid is not None else f"seq {seq}"
        self.assertTrue(r.err.startswith(f"fleetkey: error: audit chain broken at {where}: {problem}: "), r)
        j = self.verify_json(*args, **kw)
        self.assertEqual(j.rc, AUDIT_CHAIN, j)
        out = j.json()
        self.assertEqual((out["ok"], out["first_bad"]["problem"], out["first_bad"]["seq"], out["first_bad"]["id"]),
                         (False, problem, seq, rid), out)
        self.assertEqual(j.err, r.err)
        if not args:
            self.assertEqual(walk(self.db()), (problem, seq, rid))
        return out

    def count(self):
        return self.rows("SELECT count(*) FROM audit")[0][0]

    def checkpoint(self):
        r = self.fk("audit", "checkpoint")
        self.assertRegex(r.out, CHECKPOINT)
        return r.out

    # The chain as written.

    def test_every_row_is_linked_as_specified(self):
        rows = self.rows("SELECT id, seq, hash FROM audit ORDER BY id")
        self.assertEqual([(i, s) for i, s, _ in rows], [(n, n) for n in range(1, len(rows) + 1)])
        problem, head_seq, head_hash = walk(self.db())
        self.assertIsNone(problem)
        self.assertEqual((head_seq, head_hash), (rows[-1][1], rows[-1][2]))
        at = self.rows("SELECT at FROM audit WHERE seq = ?", head_seq)[0][0]
        r = self.fk("audit", "verify")
        self.assertEqual(r.out, f"audit chain ok: {len(rows)} rows\nhead:       seq {head_seq} hash {head_hash} "
                                f"at {at}\n")
        self.assertIn(r.err, ("", fk.TEST_KEY_WARNING))
        self.assertEqual(self.fk("--json", "audit", "verify").json(),
                         {"ok": True, "rows": len(rows), "head": {"seq": head_seq, "hash": head_hash, "at": at},
                          "checkpoint": None, "first_bad": None})

    def test_first_row_links_to_zero_hash(self):
        rid, seq, stored, *cols = self.rows("SELECT id, seq, hash, at, actor, action, subject, details FROM audit "
                                            "WHERE seq = 1")[0]
        self.assertEqual(cols[2], "init")
        self.assertEqual(stored, link(ZERO, 1, *cols).hex())

    def test_import_writes_one_linked_row(self):
        before = self.count()
        csv = os.path.join(self.tmp, "batch.csv")
        with open(csv, "w") as f:
            f.write("id,model\n" + "".join(f"IMP-{i:05},lock-v2\n" for i in range(500)))
        self.fk("device", "import", csv)
        self.assertEqual(self.count(), before + 1)
        self.assertEqual(self.rows("SELECT action FROM audit WHERE seq = ?", before + 1), [("device.import",)])
        self.assertIsNone(walk(self.db())[0])
        self.fk("audit", "verify")

    def test_concurrent_writers_append_in_one_order(self):
        before = self.count()

        def add(n):
            return [self.run_fk("device", "add", f"W{n}-{i}").rc for i in range(6)]

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            codes = [c for cs in pool.map(add, range(8)) for c in cs]
        self.assertEqual(codes, [OK] * 48)
        self.assertEqual(self.count(), before + 48)
        self.assertEqual(self.rows("SELECT count(*) FROM audit WHERE seq <> id"), [(0,)])
        self.assertIsNone(walk(self.db())[0])
        self.fk("audit", "verify")

    def test_failed_command_leaves_no_row(self):
        before = self.rows("SELECT * FROM audit")
        self.fails(fk.CONFLICT, "device", "add", "SN-0001")
        self.assertEqual(self.rows("SELECT * FROM audit"), before)

    # Tampering with the file.

    def test_changed_row(self):
        con = self.writable()
        with con:
            con.execute("DROP TRIGGER audit_no_update")
            con.execute("UPDATE audit SET subject = 'SN-EVIL' WHERE seq = 3")
        self.assert_broken("changed", 3, 3)

    def test_changed_details_or_time_or_actor(self):
        for column, value in (("details", '{"fingerprint":"00","key_version":1}'), ("at", "2020-01-01T00:00:00Z"),
                              ("actor", "mallory"), ("action", "device.revoke")):
            with self.subTest(column=column):
                con = self.writable()
                original = con.execute(f"SELECT {column} FROM audit WHERE seq = 2").fetchone()[0]
                with con:
                    con.execute("DROP TRIGGER IF EXISTS audit_no_update")
                    con.execute(f"UPDATE audit SET {column} = ? WHERE seq = 2", (value,))
                self.assert_broken("changed", 2, 2)
                with con:
                    con.execute(f"UPDATE audit SET {column} = ? WHERE seq = 2", (original,))
                self.fk("audit", "verify")

    def test_changed_hash_alone(self):
        con = self.writable()
        with con:
            con.execute("DROP TRIGGER audit_no_update")
            con.execute("UPDATE audit SET hash = upper(hash) WHERE seq = 5")
        self.assert_broken("changed", 5, 5)

    def test_changed_row_with_its_hash_shows_at_the_next_row(self):
        # Whoever also recomputes the changed row's own hash is caught at the row after it, whose
        # link covers the old hash (and, with a checkpoint, at the checkpoint).
        con = self.writable()
        cp = self.write_private("cp", self.checkpoint())
        prev = bytes.fromhex(con.execute("SELECT hash FROM audit WHERE seq = 2").fetchone()[0])
        at, actor, action, _, details = con.execute(
            "SELECT at, actor, action, subject, details FROM audit WHERE seq = 3").fetchone()
        with con:
            con.execute("DROP TRIGGER audit_no_update")
            con.execute("UPDATE audit SET subject = 'SN-EVIL', hash = ? WHERE seq = 3",
                        (link(prev, 3, at, actor, action, "SN-EVIL", details).hex(),))
        self.assert_broken("changed", 4, 4)
        self.assert_broken("changed", 4, 4, "--checkpoint", cp)

    def test_deleted_row(self):
        con = self.writable()
        with con:
            con.execute("DROP TRIGGER audit_no_delete")
            con.execute("DELETE FROM audit WHERE seq = 4")
        out = self.assert_broken("deleted", 4, None)
        self.assertEqual(out["first_bad"]["detail"], "seq 4 is missing: the next row has seq 5")
        self.assertEqual((out["rows"], out["head"]["seq"]), (3, 3))

    def test_deleted_first_rows(self):
        con = self.writable()
        with con:
            con.execute("DROP TRIGGER audit_no_delete")
            con.execute("DELETE FROM audit WHERE seq <= 2")
        out = self.assert_broken("deleted", 1, None)
        self.assertEqual(out["first_bad"]["detail"], "seqs 1 to 2 are missing")

    def test_cut_off_rows_need_a_checkpoint(self):
        cp = self.checkpoint()
        path = self.write_private("cp", cp)
        n = self.count()
        con = self.writable()
        with con:
            con.execute("DROP TRIGGER audit_no_delete")
            con.execute("DELETE FROM audit WHERE seq >= ?", (n - 1,))
        # Without a checkpoint, a trail whose last rows were cut off still verifies: the reason to keep one.
        self.fk("audit", "verify")
        out = self.assert_broken("truncated", n - 1, None, "--checkpoint", path)
        self.assertEqual(out["first_bad"]["detail"],
                         f"the checkpoint names seq {n}, the trail ends at seq {n - 2}: rows after it were cut off")
        self.assert_broken("truncated", n - 1, None, "--checkpoint", "-", input=cp)

    def test_inserted_row_without_link(self):
        con = self.writable()
        n = self.count()
        with con:
            con.execute("DROP TRIGGER audit_linked")
            con.execute("INSERT INTO audit (at, actor, action, subject, details) "
                        "VALUES ('2026-01-01T00:00:00Z', 'mallory', 'device.add', 'SN-FAKE', '{}')")
        out = self.assert_broken("inserted", 0, n + 1)
        self.assertEqual(out["first_bad"]["detail"], "a row without a seq and hash: not written by fleetkey")

    def test_inserted_row_with_a_taken_seq(self):
        con = self.writable()
        n = self.count()
        _, _, stored, *cols = con.execute("SELECT id, seq, hash, at, actor, action, subject, details FROM audit "
                                          "WHERE seq = 2").fetchone()
        # seq is UNIQUE in the table's definition: rebuild the table without it (on PostgreSQL, drop the
        # constraint), as an attacker can.
        with con:
            if fk.PG_STATE:
                con.execute("ALTER TABLE audit DROP CONSTRAINT audit_seq_key")
            else:
                con.execute("CREATE TABLE plain (id INTEGER PRIMARY KEY, at, actor, action, subject, details, seq, "
                            "hash)")
                con.execute("INSERT INTO plain SELECT id, at, actor, action, subject, details, seq, hash FROM audit")
                con.execute("DROP TABLE audit")
                con.execute("ALTER TABLE plain RENAME TO audit")
            con.execute("INSERT INTO audit (at, actor, action, subject, details, seq, hash) VALUES (?, ?, ?, ?, ?, 2, ?)",
                        (*cols, stored))
        self.assert_broken("inserted", 2, n + 1)

    def test_inserted_row_with_renumbered_rows(self):
        # An attacker who knows the algorithm slips a well-linked row in at seq 3 and renumbers the
        # rows after it: the old row 3, now seq 4, still links as seq 3 did, which names the insert.
        con = self.writable()
        n = self.count()
        prev = bytes.fromhex(con.execute("SELECT hash FROM audit WHERE seq = 2").fetchone()[0])
        row = ("2026-01-01T00:00:00Z", "tester", "device.add", "SN-FAKE", '{"fingerprint":"00","key_version":1}')
        with con:
            con.execute("DROP TRIGGER audit_no_update")
            con.execute("UPDATE audit SET seq = seq + 1000000 WHERE seq >= 3")
            con.execute("UPDATE audit SET seq = seq - 999999 WHERE seq > 1000000")
            con.execute("INSERT INTO audit (at, actor, action, subject, details, seq, hash) VALUES (?, ?, ?, ?, ?, 3, ?)",
                        (*row, link(prev, 3, *row).hex()))
        self.assert_broken("inserted", 3, n + 1)

    def test_rewritten_chain_needs_a_checkpoint(self):
        path = self.write_private("cp", self.checkpoint())
        cp_seq = int(CHECKPOINT.match(self.read(path)).group(1))
        con = self.writable()
        # Change row 2 and recompute every link after it: internally consistent again.
        with con:
            con.execute("DROP TRIGGER audit_no_update")
            con.execute("UPDATE audit SET subject = 'SN-EVIL' WHERE seq = 2")
            prev = ZERO
            for seq, *cols in con.execute("SELECT seq, at, actor, action, subject, details FROM audit "
                                          "ORDER BY seq").fetchall():
                prev = link(prev, seq, *cols)
                con.execute("UPDATE audit SET hash = ? WHERE seq = ?", (prev.hex(), seq))
        self.assertIsNone(walk(self.db())[0])
        self.fk("audit", "verify")
        out = self.assert_broken("rewritten", cp_seq, cp_seq, "--checkpoint", path)
        self.assertEqual(out["checkpoint"]["seq"], cp_seq)

    def test_broken_chain_has_no_checkpoint(self):
        con = self.writable()
        with con:
            con.execute("DROP TRIGGER audit_no_update")
            con.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 1")
        r = self.fails(AUDIT_CHAIN, "audit", "checkpoint")
        self.assertTrue(r.err.startswith("fleetkey: error: audit chain broken at seq 1 (id 1): changed: "), r)

    # Checkpoints.

    def test_checkpoint_names_the_head_and_later_rows_keep_it_valid(self):
        cp = self.checkpoint()
        seq, digest, at = CHECKPOINT.match(cp).groups()
        head = self.rows("SELECT seq, hash, at FROM audit ORDER BY seq DESC LIMIT 1")[0]
        self.assertEqual((int(seq), digest, at), head)
        self.assertEqual(self.fk("--json", "audit", "checkpoint").json(), {"seq": head[0], "hash": head[1], "at": head[2]})
        path = self.write_private("cp", cp)
        self.fk("device", "add", "SN-LATER")
        r = self.fk("audit", "verify", "--checkpoint", path)
        self.assertTrue(r.out.endswith(f"checkpoint: seq {seq} matches; no row after it is missing\n"), r)
        self.assertTrue(r.out.startswith(f"audit chain ok: {head[0] + 1} rows\n"), r)
        # The JSON form is a checkpoint too, from a file or stdin.
        cp_json = self.fk("--json", "audit", "checkpoint").out
        out = self.fk("--json", "audit", "verify", "--checkpoint", "-", input=cp_json).json()
        self.assertEqual((out["ok"], out["checkpoint"]), (True, json.loads(cp_json)))

    def test_malformed_checkpoints_are_usage_errors(self):
        good = self.checkpoint()
        for text in ("", "fleetkey-audit-checkpoint seq=1\n", good.replace("seq=", "seq=0"),
                     good.replace("hash=", "hash=A"), good.upper(), good.replace(" at=", " at=x"),
                     good + good, '{"seq":-1,"hash":"00","at":""}', "[]"):
            with self.subTest(text=text):
                r = self.fails(USAGE, "audit", "verify", "--checkpoint", "-", input=text)
                self.assertTrue(r.err.startswith("fleetkey: error: checkpoint: "), r)
        self.fails(USAGE, "audit", "verify", "--checkpoint", os.path.join(self.tmp, "missing"))


class AuditChainSpecTest(fk.FleetTest):
    def test_worked_example_of_the_man_page(self):
        page = self.read(os.path.join(fk.SOURCE_DIR, "man/fleetkey-formats.5"))
        section = page.split("\n.SH AUDIT CHAIN\n", 1)[1].split("\n.SH ", 1)[0]
        documented = dict(re.findall(r"^(hash\([12]\)) = ([0-9a-f]{64})$", section, re.M))
        first = ("2026-11-22T00:12:17Z", "ops", "init", "master:1",
                 '{"encrypted":true,"fingerprint":"aaeca906302c568504136144b31ee374","test_key":false}')
        second = ("2026-11-22T00:12:18Z", "ops", "device.add", "SN-0001",
                  '{"fingerprint":"88b6f8da00176499bbc36f301094cb15","key_version":1}')
        h1 = link(ZERO, 1, *first)
        self.assertEqual(documented, {"hash(1)": h1.hex(), "hash(2)": link(h1, 2, *second).hex()})
        self.assertIn(f"hashed over {len(DOMAIN) + 32 + 8 + sum(4 + len(x.encode()) for x in first)} bytes", section)


class AuditMigrationTest(fk.FleetTest):
    """A registry of schema 3 (before the chain) gets its chain when fleetkey first opens it."""

    ROWS = [("2026-11-22T00:12:17Z", "ops", "init", "master:1", '{"encrypted":false}'),
            ("2026-11-22T00:12:18Z", "ops", "device.add", "SN-1", '{"fingerprint":"ab","key_version":1}'),
            ("2026-11-22T00:12:19Z", "caf\u00e9", "device.revoke", "SN-1", '{"reason":"a\\nb \u2028"}'),
            ("2026-11-22T00:12:20Z", "ops", "user.add", "", "{}")]

    def old_sqlite_registry(self):
        path = os.path.join(self.tmp, "old.db")
        con = sqlite3.connect(path)
        self.addCleanup(con.close)
        for name in sorted(os.listdir(os.path.join(fk.SOURCE_DIR, "schema"))):
            if name.endswith(".sql") and int(name[:4]) <= 3:  # schema/postgresql/ is the other dialect
                con.executescript(self.read(os.path.join(fk.SOURCE_DIR, "schema", name)))
        with con:
            con.executemany("INSERT INTO audit (at, actor, action, subject, details) VALUES (?, ?, ?, ?, ?)", self.ROWS)
            con.execute(f"PRAGMA application_id = {0x464B5247}")
            con.execute("PRAGMA user_version = 3")
        return path, con, "PRAGMA user_version", sqlite3.IntegrityError

    def old_pg_registry(self):
        # A database of its own: schema/postgresql/0001-0003 applied with psql in one transaction, and the
        # marker row (fleetkey-postgresql(7), SCHEMA) as fleetkey writes it.
        import psycopg2
        uri = fk.pg_new_database(self)
        name = uri.split("?")[0].rsplit("/", 1)[1]
        files = [os.path.join(fk.SOURCE_DIR, "schema", "postgresql", f)
                 for f in sorted(os.listdir(os.path.join(fk.SOURCE_DIR, "schema", "postgresql")))
                 if f.endswith(".sql") and int(f[:4]) <= 3]
        marker = self.write_private("marker.sql", "CREATE TABLE fleetkey_registry (id BIGINT PRIMARY KEY CHECK (id = 1),"
                                                  " application_id BIGINT NOT NULL, schema_version BIGINT NOT NULL);\n"
                                                  f"INSERT INTO fleetkey_registry VALUES (1, {0x464B5247}, 3);\n")
        state = self.pg_state
        subprocess.run([os.path.join(state["bin"], "psql"), "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-h",
                        state["socket"], "-U", state["user"], "-d", name,
                        *(a for f in files + [marker] for a in ("-f", f))], check=True, capture_output=True)
        con = fk.PgCompat(fk.pg_connect(state, name))
        self.addCleanup(con.close)
        for i, row in enumerate(self.ROWS, 1):
            con.execute("INSERT INTO audit (id, at, actor, action, subject, details) VALUES (?, ?, ?, ?, ?, ?)",
                        (i, *row))
        return uri, con, "SELECT schema_version FROM fleetkey_registry", psycopg2.Error

    def test_existing_rows_are_linked_in_id_order(self):
        location, con, version, refused = self.old_pg_registry() if fk.PG_STATE else self.old_sqlite_registry()
        r = self.fk("--registry", location, "--json", "audit", "verify")
        self.assertEqual(con.execute(version).fetchone()[0] >= 5, True)
        stored = con.execute("SELECT id, seq, hash, at, actor, action, subject, details FROM audit ORDER BY id").fetchall()
        self.assertEqual([tuple(s[3:]) for s in stored], self.ROWS)
        prev = ZERO
        for i, (rid, seq, digest, *cols) in enumerate(stored, 1):
            prev = link(prev, i, *cols)
            self.assertEqual((rid, seq, digest), (i, i, prev.hex()))
        self.assertEqual(r.json()["head"], {"seq": 4, "hash": prev.hex(), "at": "2026-11-22T00:12:20Z"})
        # The triggers hold again: no row can be changed or deleted, nor written without its link.
        for sql in ("UPDATE audit SET subject = 'x' WHERE id = 1", "DELETE FROM audit WHERE id = 1",
                    "INSERT INTO audit (id, at, actor, action, subject) VALUES (9, 't', 'a', 'b', 'c')"):
            with self.subTest(sql=sql):
                with self.assertRaises(refused):
                    with con:
                        con.execute(sql)


if __name__ == "__main__":
    fk.main()
