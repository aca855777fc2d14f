"""fleetkey master list | rotate | retire | passwd, and the key file's protections."""
import os
import subprocess
import time

import fk

V1 = "46dd0fcf04f1426d2a34d8aaa19c08dd"


def wait_blocked_on_fifo(proc):
    """Waits until `proc` is asleep opening a FIFO that has no writer yet (the kernel's wait_for_partner, as
    /proc/PID/wchan names it), or fails at once with its output if it exits first."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"fleetkey exited ({proc.returncode}) before it opened its FIFO: {out!r} {err!r}")
        with open(f"/proc/{proc.pid}/wchan") as f:
            if f.read() == "wait_for_partner":
                return
        time.sleep(0.01)
    raise AssertionError("fleetkey never blocked opening its FIFO")


class MasterTest(fk.FleetTest):
    def test_list_table_and_json(self):
        self.init_test_key()
        r = self.fk("master", "list")
        lines = r.out.splitlines()
        self.assertEqual(lines[0], "VERSION  STATUS   CREATED               FINGERPRINT                      TEST")
        self.assertRegex(lines[1], rf"^1        current  \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ  {V1} yes$")
        self.assertEqual(len(lines), 2)
        j = self.fk("--json", "master", "list").jsonl()
        self.assertEqual(len(j), 1)
        self.assertRegex(j[0].pop("created"), fk.ISO_TIME)
        self.assertEqual(j[0], {"version": 1, "status": "current", "current": True, "fingerprint": V1,
                                "test_key": True, "retired": None})

    def test_list_needs_no_passphrase(self):
        pf = self.write_private("pass", "pw\n")
        self.fk("--passphrase-file", pf, "init", "--kdf", "interactive")
        self.fk("master", "list")

    def test_rotate_new_devices_get_new_version_old_keep_theirs(self):
        self.init_test_key()
        self.fk("device", "add", "SN-0001")
        before = self.fk("device", "key", "SN-0001").out
        r = self.fk("master", "rotate")
        self.assertRegex(r.out, r"^master key v2 is now current \(fingerprint [0-9a-f]{32}\); devices keep the "
                                r"version they were registered with\n$")
        self.fk("device", "add", "SN-0002")
        self.assertEqual(self.fk("device", "key", "SN-0001").out, before)
        self.assertEqual(self.rows("SELECT id, key_version FROM devices ORDER BY id"), [("SN-0001", 1), ("SN-0002", 2)])
        self.assertEqual(self.rows("SELECT version, status FROM master_keys ORDER BY version"),
                         [(1, "active"), (2, "current")])
        self.assertIn("current-version: 2\n", self.read(self.key_path))
        # Test-seed rotation is reproducible too.
        other = os.path.join(self.tmp, "other")
        self.fk("--home", other, "init", "--no-passphrase", "--test-seed", fk.TEST_SEED)
        self.fk("--home", other, "master", "rotate")
        a = self.fk("--json", "master", "list").jsonl()
        b = self.fk("--json", "--home", other, "master", "list").jsonl()
        self.assertEqual([x["fingerprint"] for x in a], [x["fingerprint"] for x in b])

    def test_rotate_keeps_encryption(self):
        pf = self.write_private("pass", "pw\n")
        self.fk("--passphrase-file", pf, "init", "--kdf", "interactive")
        self.fk("--passphrase-file", pf, "master", "rotate")
        text = self.read(self.key_path)
        self.assertIn("encryption: xchacha20poly1305\n", text)
        self.assertIn("kdf-opslimit: 2\n", text)
        self.fk("--passphrase-file", pf, "device", "add", "SN-1")

    def test_rotate_on_a_terminal_asks_for_the_passphrase_once(self):
        rc, out = self.run_on_pty(["init", "--kdf", "interactive"], ["pass1", "pass1"])
        self.assertEqual(rc, 0, out)
        # A second prompt would get "TYPO", and the new file would be encrypted under it.
        rc, out, typed = self.pty_session(["master", "rotate"], ["pass1", "TYPO"])
        self.assertEqual(rc, 0, out)
        self.assertEqual(out.count("Passphrase"), 1, out)
        self.assertEqual(typed, 1, out)
        self.assertRegex(out, r"master key v2 is now current")
        self.assertEqual(self.rows("SELECT version, status FROM master_keys ORDER BY version"),
                         [(1, "active"), (2, "current")])
        pf = self.write_private("pass", "pass1\n")
        self.fk("--passphrase-file", pf, "device", "add", "SN-1")
        self.assertEqual(self.rows("SELECT id, key_version FROM devices"), [("SN-1", 2)])

    def test_passwd_on_a_terminal_asks_for_the_old_passphrase_once(self):
        rc, out = self.run_on_pty(["init", "--kdf", "interactive"], ["pass1", "pass1"])
        self.assertEqual(rc, 0, out)
        rc, out, typed = self.pty_session(["master", "passwd"], ["pass1", "pass2", "pass2", "EXTRA"])
        self.assertEqual(rc, 0, out)
        self.assertEqual(typed, 3, out)
        self.assertEqual([line.split("<typed>")[0].strip() for line in out.split("\n") if "<typed>" in line],
                         ["Passphrase:", "New passphrase:", "Repeat new passphrase:"])
        self.fk("--passphrase-file", self.write_private("pass2", "pass2\n"), "device", "add", "SN-1")

    def test_passwd_no_passphrase_excludes_a_new_passphrase(self):
        old = self.write_private("old", "old pass\n")
        new = self.write_private("new", "new pass\n")
        self.fk("--passphrase-file", old, "init", "--kdf", "interactive")
        snap = self.snapshot()
        key_file = self.read(self.key_path)
        for extra in (["--new-passphrase-file", new], ["--kdf", "moderate"]):
            with self.subTest(extra=extra):
                r = self.fails(fk.USAGE, "--passphrase-file", old, "master", "passwd", "--no-passphrase", *extra)
                self.assertEqual(r.err, f"fleetkey: error: {extra[0]} excludes --no-passphrase (see fleetkey master "
                                        "passwd --help)\n")
                self.assertEqual(self.read(self.key_path), key_file)
                self.assertEqual(self.snapshot(), snap)

    def test_key_file_ahead_of_the_registry_uses_the_registry_version(self):
        # A rotate interrupted after writing the key file but before committing the registry: made by
        # rotating, then restoring the registry from a copy taken before.
        self.init_test_key()
        self.fk("device", "add", "SN-1")
        saved = self.save_registry()
        self.fk("master", "rotate")
        self.restore_registry(saved)
        self.assertEqual(self.rows("SELECT version FROM master_keys"), [(1,)])
        key_file = self.read(self.key_path)
        self.assertIn("current-version: 2\n", key_file)
        warning = (f"fleetkey: warning: master key file {self.key_path} makes version 2 current but registry "
                   f"{self.registry_path} says version 1: using version 1 (run fleetkey master rotate to settle "
                   "it)\n")
        r = self.fk("device", "add", "SN-2")
        self.assertEqual(r.err, warning + fk.TEST_KEY_WARNING)
        self.assertEqual(self.rows("SELECT id, key_version FROM devices ORDER BY id"), [("SN-1", 1), ("SN-2", 1)])
        self.assertEqual(self.fk("-q", "device", "key", "SN-2").out, self.reference_device_key("SN-2"))
        self.assertEqual(self.read(self.key_path), key_file)  # reading changes nothing
        # Rotating settles it: version 2 stays in the file, unused, and version 3 becomes current.
        r = self.fk("master", "rotate")
        self.assertRegex(r.out, r"^master key v3 is now current")
        self.assertEqual(self.rows("SELECT version, status FROM master_keys ORDER BY version"),
                         [(1, "active"), (3, "current")])
        self.assertIn("current-version: 3\n", self.read(self.key_path))
        r = self.fk("device", "add", "SN-3")
        self.assertEqual(r.err, fk.TEST_KEY_WARNING)
        self.assertEqual(self.rows("SELECT key_version FROM devices WHERE id = 'SN-3'"), [(3,)])

    def reference_device_key(self, device):
        """The key of `device` under test-seed version 1, from a fresh home."""
        other = os.path.join(self.tmp, "reference")
        self.fk("--home", other, "init", "--no-passphrase", "--test-seed", fk.TEST_SEED)
        self.fk("--home", other, "device", "add", device)
        return self.fk("--home", other, "-q", "device", "key", device).out

    def test_retire(self):
        self.init_test_key()
        self.fk("device", "add", "SN-1")
        r = self.fails(fk.CONFLICT, "master", "retire", "1")
        self.assertEqual(r.err, "fleetkey: error: master key version 1 is current: rotate first\n")
        self.fails(fk.NOT_FOUND, "master", "retire", "7")
        self.fk("master", "rotate")
        self.assertEqual(self.fk("master", "retire", "1").out, "master key v1 is retired\n")
        self.assertEqual(self.rows("SELECT status FROM master_keys WHERE version = 1"), [("retired",)])
        r = self.fails(fk.KEY, "device", "key", "SN-1")
        self.assertEqual(r.err, "fleetkey: error: master key version 1 is retired\n")
        self.fails(fk.CONFLICT, "master", "retire", "1")

    def test_passwd(self):
        old = self.write_private("old", "old pass\n")
        new = self.write_private("new", "new pass\n")
        self.fk("--passphrase-file", old, "init", "--kdf", "interactive")
        self.fk("--passphrase-file", old, "device", "add", "SN-1")
        key = self.fk("--passphrase-file", old, "device", "key", "SN-1").out
        self.assertEqual(self.fk("--passphrase-file", old, "master", "passwd", "--new-passphrase-file", new).out,
                         f"re-encrypted {self.key_path}\n")
        r = self.fails(fk.KEY, "--passphrase-file", old, "device", "key", "SN-1")
        self.assertEqual(r.err, "fleetkey: error: cannot decrypt the master key: wrong passphrase, or the key file "
                                "was modified\n")
        self.assertEqual(self.fk("--passphrase-file", new, "device", "key", "SN-1").out, key)
        self.assertEqual(self.rows("SELECT action FROM audit WHERE action = 'master.passwd'"), [("master.passwd",)])
        # And to an unencrypted file and back.
        self.fk("--passphrase-file", new, "master", "passwd", "--no-passphrase")
        self.assertIn("encryption: none\n", self.read(self.key_path))
        self.assertEqual(self.fk("device", "key", "SN-1").out, key)

    def test_passwd_needs_a_new_passphrase(self):
        self.init_test_key()
        self.fails(fk.KEY, "master", "passwd")

    def test_wrong_passphrase_changes_nothing(self):
        good = self.write_private("good", "good\n")
        bad = self.write_private("bad", "bad\n")
        self.fk("--passphrase-file", good, "init", "--kdf", "interactive")
        snap = self.snapshot()
        key_file = self.read(self.key_path)
        for args in (["device", "add", "SN-1"], ["master", "rotate"], ["master", "passwd", "--no-passphrase"]):
            with self.subTest(args=args):
                self.fails(fk.KEY, "--passphrase-file", bad, *args)
                self.assertEqual(self.snapshot(), snap)
                self.assertEqual(self.read(self.key_path), key_file)

    def test_group_readable_key_file_refused_with_the_fix(self):
        self.init_test_key()
        snap = self.snapshot()
        os.chmod(self.key_path, 0o640)
        r = self.fails(fk.KEY, "device", "add", "SN-1")
        self.assertEqual(r.err, f"fleetkey: error: master key file {self.key_path} is accessible by group or others "
                                f"(mode 0640); fix it with: chmod 600 {self.key_path}\n")
        self.assertEqual(self.snapshot(), snap)

    def test_key_file_of_another_registry_refused(self):
        self.init_test_key()
        other = os.path.join(self.tmp, "other")
        self.fk("--home", other, "init", "--no-passphrase")
        snap = self.snapshot()
        r = self.fails(fk.KEY, "--master-key", os.path.join(other, "master.key"), "device", "add", "SN-1")
        self.assertIn("does not belong to registry", r.err)
        self.assertEqual(self.snapshot(), snap)

    def test_missing_and_corrupt_key_file(self):
        self.init_test_key()
        snap = self.snapshot()
        r = self.fails(fk.KEY, "--master-key", os.path.join(self.tmp, "nope.key"), "device", "add", "SN-1")
        self.assertIn("no master key file at", r.err)
        text = self.read(self.key_path)
        os.unlink(self.key_path)
        self.write_private("corrupt.key", text.replace("payload: R", "payload: S"))
        r = self.fails(fk.KEY, "--master-key", os.path.join(self.tmp, "corrupt.key"), "device", "add", "SN-1")
        self.assertIn("master key file is corrupted", r.err)
        self.assertEqual(self.snapshot(), snap)

    def start_blocked_on_fifo(self, *args):
        """Starts fleetkey with `args`, in which "FIFO" stands for a new FIFO; returns once it waits on it."""
        fifo = os.path.join(self.tmp, "fifo")
        os.mkfifo(fifo, 0o600)
        proc = subprocess.Popen([fk.BIN, *[fifo if a == "FIFO" else a for a in args]], env=self.env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_blocked_on_fifo(proc)
        return proc, fifo

    def finish_fifo(self, proc, fifo, text):
        with open(fifo, "w") as f:
            f.write(text)
        out, err = proc.communicate(timeout=120)
        return fk.Run(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))

    def test_passwd_never_undoes_a_rotate_that_finished_while_it_waited(self):
        # passwd has read the key file (version 1) and waits for its new passphrase; a rotate
        # finishes meanwhile. Writing the ring it read would drop version 2 and every key under it.
        self.init_test_key()
        proc, fifo = self.start_blocked_on_fifo("master", "passwd", "--new-passphrase-file", "FIFO",
                                                "--kdf", "interactive")
        self.fk("master", "rotate")
        key_file = self.read(self.key_path)
        r = self.finish_fifo(proc, fifo, "new pass\n")
        self.assertEqual((r.rc, r.out), (fk.CONFLICT, ""), r)
        self.assertEqual(r.err, fk.TEST_KEY_WARNING + f"fleetkey: error: master key file {self.key_path} was "
                                "replaced while this command ran (another rotate or passwd?): nothing was changed; "
                                "run the command again\n")
        self.assertEqual(self.read(self.key_path), key_file)
        self.assertEqual(self.rows("SELECT action FROM audit ORDER BY id"), [("init",), ("master.rotate",)])
        self.fk("device", "add", "SN-1")
        self.assertEqual(self.rows("SELECT key_version FROM devices"), [(2,)])

    def test_rotate_never_undoes_a_passwd_that_finished_while_it_waited(self):
        old = self.write_private("old", "old pass\n")
        new = self.write_private("new", "new pass\n")
        self.fk("--passphrase-file", old, "init", "--kdf", "interactive")
        # rotate has read the key file and waits for the passphrase that opens it.
        proc, fifo = self.start_blocked_on_fifo("--passphrase-file", "FIFO", "master", "rotate")
        self.fk("--passphrase-file", old, "master", "passwd", "--new-passphrase-file", new)
        key_file = self.read(self.key_path)
        r = self.finish_fifo(proc, fifo, "old pass\n")
        self.assertEqual((r.rc, r.out), (fk.CONFLICT, ""), r)
        self.assertRegex(r.err, r"^fleetkey: error: master key file .* was replaced while this command ran")
        self.assertEqual(self.read(self.key_path), key_file)
        self.assertEqual(self.rows("SELECT version, status FROM master_keys"), [(1, "current")])
        self.fails(fk.KEY, "--passphrase-file", old, "device", "add", "SN-1")
        self.fk("--passphrase-file", new, "device", "add", "SN-1")


if __name__ == "__main__":
    fk.main()
