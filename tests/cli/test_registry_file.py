"""Refusing files that are not a fleetkey registry, and registries newer than the binary; the WAL policy."""
import os
import shutil
import sqlite3
import subprocess

import fk


@fk.sqlite_only("the SQLite file itself: WAL, pragmas, file backup")
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

    def wal_size(self):
        wal = self.registry_path + "-wal"
        return os.path.getsize(wal) if os.path.exists(wal) else 0

    def ids_file(self, count):
        """An import CSV of `count` ids; 200,000 are enough for an import to spill pages into the WAL
        before it commits."""
        return self.write_private("ids.csv", "id\n" + "".join(f"SN-{i:06d}\n" for i in range(count)))

    def wal(self):
        """(checkpoint sequence, frames the next process reads, file size) of the WAL: the frames are those
        from its start that carry its header's salts (fleetkey-formats(5), REGISTRY)."""
        data = self.read(self.registry_path + "-wal", "rb")
        page, salts = int.from_bytes(data[8:12], "big"), data[16:24]
        frames, off = 0, 32
        while off + 24 + page <= len(data) and data[off + 8:off + 16] == salts:
            frames, off = frames + 1, off + 24 + page
        return int.from_bytes(data[12:16], "big"), frames, len(data)

    def test_wal_is_kept_and_restarted_after_32_frames(self):
        self.init_test_key()
        walks = []
        for i in range(60):  # two frames each: the devices page and the audit page
            self.fk("device", "add", f"SN-{i}")
            walks.append(self.wal())
        sequences = [w[0] for w in walks]
        frames = [w[1] for w in walks]
        # A commit that leaves 32 frames or more is checkpointed at close, and the WAL restarted with one
        # frame; so no process ever reads more than 31 frames and the next add's own.
        self.assertLessEqual(max(frames), 35, frames)
        self.assertGreaterEqual(sequences[-1] - sequences[0], 3, sequences)
        for before, after in zip(walks, walks[1:]):
            if after[0] != before[0]:
                self.assertEqual(after[1], 1, walks)  # the restart: user_version written to itself
        # Once grown, the file keeps its size: later commits overwrite blocks it has.
        self.assertEqual(len({w[2] for w in walks[40:]}), 1, walks)
        con = self.db()
        self.assertEqual(con.execute("PRAGMA integrity_check").fetchone(), ("ok",))
        self.assertEqual(con.execute("SELECT count(*) FROM devices").fetchone(), (60,))

    def test_large_import_leaves_a_wal_of_at_most_1_mib(self):
        self.init_test_key()
        self.fk("device", "import", self.ids_file(30000))
        self.assertLessEqual(self.wal_size(), 1 << 20)
        self.assertEqual(self.rows("SELECT count(*) FROM devices"), [(30000,)])

    def test_import_that_fails_after_spilling_leaves_a_wal_of_at_most_1_mib(self):
        self.init_test_key()
        self.fk("device", "add", "SN-199999")
        snap = self.snapshot()
        r = self.fails(fk.CONFLICT, "device", "import", self.ids_file(200000))
        self.assertIn('device "SN-199999" is already registered', r.err)
        self.assertLessEqual(self.wal_size(), 1 << 20)  # 11.9 MB before this was handled
        self.assertEqual(self.snapshot(), snap)

    def test_read_only_command_cleans_up_a_wal_a_reader_kept_large(self):
        self.init_test_key()
        self.fk("device", "add", "A-1")
        reader = sqlite3.connect(f"file:{self.registry_path}?mode=ro", uri=True, isolation_level=None)
        reader.execute("BEGIN")
        self.assertEqual(reader.execute("SELECT count(*) FROM devices").fetchone(), (1,))
        self.fk("device", "import", self.ids_file(200000))  # its checkpoint stops at the reader's snapshot
        reader.execute("COMMIT")
        reader.close()
        self.assertGreater(self.wal_size(), 1 << 20)
        self.fk("device", "show", "A-1")
        self.assertLessEqual(self.wal_size(), 1 << 20)
        con = self.db()
        self.assertEqual(con.execute("PRAGMA integrity_check").fetchone(), ("ok",))
        self.assertEqual(con.execute("SELECT count(*) FROM devices").fetchone(), (200001,))

    def test_backup_and_restore_as_fleetkey_1_says(self):
        self.init_test_key()
        for i in range(5):
            self.fk("device", "add", f"SN-{i}")
        backup = os.path.join(self.tmp, "backup.db")
        subprocess.run(["sqlite3", self.registry_path, f"VACUUM INTO '{backup}'"], check=True)
        self.fk("device", "import", self.ids_file(3000))
        for i in range(5, 11):
            self.fk("device", "add", f"SN-{i}")
        self.assertGreater(self.wal_size(), 0)  # the WAL holds commits that the backup must not get
        os.remove(self.registry_path + "-wal")
        os.remove(self.registry_path + "-shm")
        shutil.copyfile(backup, self.registry_path)
        self.assertEqual([d["id"] for d in self.fk("--json", "device", "list").jsonl()], [f"SN-{i}" for i in range(5)])
        self.fk("device", "add", "SN-after")
        con = self.db()
        self.assertEqual(con.execute("PRAGMA integrity_check").fetchone(), ("ok",))
        self.assertEqual(con.execute("SELECT count(*) FROM devices").fetchone(), (6,))


if __name__ == "__main__":
    fk.main()
