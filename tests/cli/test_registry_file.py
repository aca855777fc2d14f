"""Refusing files that are not a fleetkey registry, and registries newer than the binary."""
import os
import sqlite3

import fk


class RegistryFileTest(fk.FleetTest):
    def test_no_registry(self):
        r = self.fails(fk.REGISTRY, "device", "list")
        self.assertEqual(r.err, f"fleetkey: error: no registry at {self.registry_path} (run fleetkey init, or pass "
                                "--registry)\n")
        self.assertFalse(os.path.exists(self.registry_path))

    def test_text_file_is_not_a_registry_and_is_left_alone(self):
        self.init_test_key()
        path = os.path.join(self.tmp, "notes.txt")
        content = b"these are my notes, not a database" * 40
        with open(path, "wb") as f:
            f.write(content)
        r = self.fails(fk.REGISTRY, "--registry", path, "device", "add", "SN-1")
        self.assertIn("not a fleetkey registry", r.err)
        self.assertEqual(self.read(path, "rb"), content)

    def test_other_sqlite_database_is_not_a_registry(self):
        self.init_test_key()
        path = os.path.join(self.tmp, "other.db")
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE devices (id TEXT)")
        con.commit()
        con.close()
        r = self.fails(fk.REGISTRY, "--registry", path, "device", "list")
        self.assertEqual(r.err, f"fleetkey: error: {path} is not a fleetkey registry\n")
        con = sqlite3.connect(path)
        self.assertEqual(con.execute("PRAGMA application_id").fetchone(), (0,))
        self.assertEqual(con.execute("SELECT name FROM sqlite_master").fetchall(), [("devices",)])
        con.close()

    def test_newer_schema_refused(self):
        self.init_test_key()
        con = sqlite3.connect(self.registry_path)
        version = con.execute("PRAGMA user_version").fetchone()[0]
        con.execute(f"PRAGMA user_version = {version + 1}")
        con.commit()
        con.close()
        snap = self.snapshot()
        r = self.fails(fk.REGISTRY, "device", "add", "SN-1")
        self.assertEqual(r.err, f"fleetkey: error: registry {self.registry_path} has schema version {version + 1}, "
                                f"newer than this fleetkey supports ({version}): upgrade fleetkey\n")
        self.assertEqual(self.snapshot(), snap)

    def test_integrity_and_pragmas(self):
        self.init_test_key()
        self.fk("device", "add", "SN-1")
        con = self.db()
        self.assertEqual(con.execute("PRAGMA integrity_check").fetchone(), ("ok",))
        self.assertEqual(con.execute("PRAGMA journal_mode").fetchone(), ("wal",))
        self.assertEqual(con.execute("PRAGMA foreign_key_check").fetchall(), [])


if __name__ == "__main__":
    fk.main()
