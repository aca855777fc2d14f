"""fleetkey init: the home, the key file, the registry, and every passphrase source."""
import os
import re
import subprocess
import stat

import fk


class InitTest(fk.FleetTest):
    def test_init_test_seed_reports_exactly_and_creates_private_files(self):
        r = self.fk("init", "--no-passphrase", "--test-seed", fk.TEST_SEED)
        self.assertEqual(r.out,
                         f"created master key v1 (unencrypted, TEST KEY) in {self.key_path}\n"
                         "fingerprint 46dd0fcf04f1426d2a34d8aaa19c08dd\n"
                         f"created registry {self.registry_path}\n")
        self.assertEqual(r.err, "fleetkey: warning: created a TEST master key from --test-seed: never provision "
                                "real devices with it\n")
        self.assertEqual(stat.S_IMODE(os.stat(self.home).st_mode), 0o700)
        self.assertEqual(stat.S_IMODE(os.stat(self.key_path).st_mode), 0o600)
        if not fk.PG_STATE:  # a file (on PostgreSQL the server's business)
            self.assertEqual(stat.S_IMODE(os.stat(self.registry_path).st_mode), 0o600)
        self.assertEqual(self.rows("SELECT version, fingerprint, test_key, status FROM master_keys"),
                         [(1, "46dd0fcf04f1426d2a34d8aaa19c08dd", 1, "current")])
        self.assertEqual(self.rows("SELECT actor, action, subject FROM audit"), [("tester", "init", "master:1")])
        marker = "SELECT application_id FROM fleetkey_registry" if fk.PG_STATE else "PRAGMA application_id"
        self.assertEqual(self.db().execute(marker).fetchone()[0], 0x464B5247)

    def test_init_json(self):
        r = self.fk("--json", "init", "--no-passphrase", "--test-seed", fk.TEST_SEED)
        self.assertEqual(r.json(), {"home": self.home, "registry": self.registry_path, "master_key": self.key_path,
                                    "version": 1, "fingerprint": "46dd0fcf04f1426d2a34d8aaa19c08dd",
                                    "encrypted": False, "test_key": True, "created": True})

    def test_key_file_layout(self):
        self.init_test_key()
        lines = self.read(self.key_path).splitlines()
        self.assertEqual(lines[0], "# fleetkey master key file: keep it secret, keep it safe. Layout: fleetkey-formats(5).")
        self.assertEqual(lines[1:6], ["format: fleetkey-master-key 1", "encryption: none", "test-key: yes",
                                      "current-version: 1", "fingerprint: 46dd0fcf04f1426d2a34d8aaa19c08dd"])
        self.assertTrue(lines[6].startswith("checksum: "))
        self.assertTrue(lines[7].startswith("payload: "))

    def test_encrypted_init_with_passphrase_file(self):
        pf = self.write_private("pass", "correct horse battery staple\n")
        r = self.fk("--passphrase-file", pf, "init", "--kdf", "interactive")
        self.assertIn("(encrypted)", r.out)
        text = self.read(self.key_path)
        self.assertIn("encryption: xchacha20poly1305\nkdf: argon2id13\nkdf-opslimit: 2\nkdf-memlimit: 67108864\n", text)
        self.assertNotIn("checksum", text)
        # The passphrase opens it, from each source.
        self.fk("--passphrase-file", pf, "device", "add", "SN-1")
        self.fk("device", "add", "SN-2", env={"FLEETKEY_PASSPHRASE_FILE": pf})
        self.fk("device", "add", "SN-3", env={"FLEETKEY_PASSPHRASE": "correct horse battery staple"})
        self.assertEqual(self.rows("SELECT id FROM devices ORDER BY id"), [("SN-1",), ("SN-2",), ("SN-3",)])

    def test_prompt_asks_twice_with_echo_off(self):
        rc, out = self.run_on_pty(["init", "--kdf", "interactive"], ["tty secret", "tty secret"])
        self.assertEqual(rc, 0, out)
        self.assertIn("New passphrase for the master key: ", out)
        self.assertIn("Repeat passphrase: ", out)
        self.assertNotIn("tty secret", out)
        self.assertIn("encryption: xchacha20poly1305", self.read(self.key_path))
        # The same passphrase, typed once, opens it.
        rc, out = self.run_on_pty(["device", "add", "SN-1"], ["tty secret"])
        self.assertEqual(rc, 0, out)
        self.assertIn("registered device SN-1", out)

    def test_prompt_mismatch_creates_nothing(self):
        rc, out = self.run_on_pty(["init"], ["one", "two"])
        self.assertEqual(rc, fk.KEY, out)
        self.assertIn("fleetkey: error: the passphrases do not match", out)
        self.assertFalse(os.path.exists(self.home))

    def test_missing_passphrase_without_terminal_creates_nothing(self):
        r = self.fails(fk.KEY, "init")
        self.assertIn("there is no terminal to ask", r.err)
        self.assertFalse(os.path.exists(self.home))

    def test_empty_passphrase_refused(self):
        pf = self.write_private("pass", "\n")
        r = self.fails(fk.KEY, "--passphrase-file", pf, "init")
        self.assertIn("empty passphrase", r.err)
        self.assertFalse(os.path.exists(self.home))

    def test_group_readable_passphrase_file_refused(self):
        pf = self.write_private("pass", "secret\n", mode=0o640)
        r = self.fails(fk.KEY, "--passphrase-file", pf, "init")
        self.assertIn(f"fix it with: chmod 600 {pf}", r.err)
        self.assertFalse(os.path.exists(self.home))

    def test_symlinked_passphrase_file_checked_at_its_target(self):
        # Followed (secret mounts are symlinks), but the permissions checked are the target's.
        pf = self.write_private("pass", "secret\n", mode=0o644)
        link = os.path.join(self.tmp, "link")
        os.symlink(pf, link)
        r = self.fails(fk.KEY, "--passphrase-file", link, "init")
        self.assertEqual(
            r.err,
            f"fleetkey: error: passphrase file {link} is accessible by group or others (mode 0644); "
            f"fix it with: chmod 600 {link}\n",
        )
        self.assertFalse(os.path.exists(self.home))
        os.chmod(pf, 0o600)
        self.fk("--passphrase-file", link, "init", "--kdf", "interactive")
        self.fk("--passphrase-file", pf, "device", "add", "SN-1")

    def test_oversized_passphrase_file_refused(self):
        pf = self.write_private("pass", "secret\n" + "x" * 65536)
        r = self.fails(fk.KEY, "--passphrase-file", pf, "init")
        self.assertEqual(r.err, f"fleetkey: error: passphrase file {pf} is larger than 65536 bytes\n")
        self.assertFalse(os.path.exists(self.home))
        # Up to the limit, the first line is the passphrase.
        big = self.write_private("big", "secret\n" + "x" * (65536 - 7))
        small = self.write_private("small", "secret")
        self.fk("--passphrase-file", big, "init", "--kdf", "interactive")
        self.fk("--passphrase-file", small, "device", "add", "SN-1")

    def test_bad_test_seed_creates_nothing(self):
        for seed in ["xyz", "0", "", "00" * 65]:
            with self.subTest(seed=seed):
                self.fails(fk.USAGE, "init", "--no-passphrase", "--test-seed", seed)
                self.assertFalse(os.path.exists(self.registry_path))

    def test_second_init_refused_and_changes_nothing(self):
        self.init_test_key()
        key_before = self.read(self.key_path)
        snap = self.snapshot()
        r = self.fails(fk.CONFLICT, "init", "--no-passphrase")
        self.assertIn("already exists (use --force", r.err)
        self.assertEqual(self.read(self.key_path), key_before)
        self.assertEqual(self.snapshot(), snap)

    def test_force_replaces_everything(self):
        # On SQLite a new file; on PostgreSQL the same database emptied in place (fleetkey-postgresql(7)).
        self.init_test_key()
        self.fk("device", "add", "SN-1")
        self.fk("user", "add", "alice")
        self.fk("user", "grant", "alice", "--device", "SN-1", "--role", "owner")
        self.fk("token", "revoke", "abcdef0123", "--reason", "x")
        self.fk("device", "state", "SN-1")
        old_key = self.read(self.key_path)
        r = self.fk("init", "--no-passphrase", "--force")
        self.assertRegex(r.out, f"^{re.escape(f'created master key v1 (unencrypted) in {self.key_path}')}\n"
                                f"fingerprint [0-9a-f]{{32}}\n{re.escape(f'created registry {self.registry_path}')}\n$")
        self.assertEqual(r.err, "")
        self.assertNotEqual(self.read(self.key_path), old_key)
        for table in ("devices", "users", "grants", "revocations"):
            self.assertEqual(self.rows(f"SELECT count(*) FROM {table}"), [(0,)], table)
        self.assertEqual(self.rows("SELECT version, test_key, status FROM master_keys"), [(1, 0, "current")])
        self.assertEqual(self.rows("SELECT id, seq, action, subject FROM audit"), [(1, 1, "init", "master:1")])
        self.assertEqual(self.rows("SELECT counter, global_seq FROM state"), [(1, 1)])
        self.assertEqual(sorted(f for f in os.listdir(self.home) if f.startswith("master.key")), ["master.key"])
        # A registry as new: its chain verifies from seq 1, and it takes the old ids again.
        self.assertRegex(self.fk("audit", "verify").out, "^audit chain ok: 1 rows\n")
        self.fk("device", "add", "SN-1")
        self.assertEqual(self.fk("--json", "device", "state", "SN-1").json()["seq"], 1)

    def test_force_when_the_key_file_is_gone(self):
        # The registry is there, the key file not (another station's home, say): --force makes both anew.
        self.init_test_key()
        self.fk("device", "add", "SN-1")
        os.unlink(self.key_path)
        self.fails(fk.CONFLICT, "init", "--no-passphrase")
        self.fk("init", "--no-passphrase", "--force")
        self.assertEqual(self.rows("SELECT count(*) FROM devices"), [(0,)])
        if fk.PG_STATE:
            self.assertEqual(os.listdir(self.home), ["master.key"])
        self.fk("device", "add", "SN-1")

    def test_failed_force_changes_nothing(self):
        # The new key file cannot be created: the old registry and key file must survive.
        self.init_test_key()
        self.fk("device", "add", "SN-1")
        snap = self.snapshot()
        key_file = self.read(self.key_path)
        files = sorted(os.listdir(self.home))
        target = os.path.join(self.tmp, "missing", "master.key")
        r = self.fails(fk.FAILURE, "--master-key", target, "init", "--no-passphrase", "--force")
        self.assertEqual(r.err, f"fleetkey: error: cannot create {target}: No such file or directory\n")
        self.assertEqual(self.snapshot(), snap)
        self.assertEqual(self.read(self.key_path), key_file)
        self.assertEqual(sorted(os.listdir(self.home)), files)
        self.assertEqual(self.rows("SELECT id FROM devices"), [("SN-1",)])

    def test_empty_paths_and_a_home_that_is_a_file_are_refused(self):
        for option in ("--home", "--registry", "--master-key"):
            r = self.fails(fk.USAGE, option, "", "init", "--no-passphrase")
            self.assertEqual(r.err, f"fleetkey: error: {option} must not be empty\n")
        plain = os.path.join(self.tmp, "plainfile")
        with open(plain, "w") as f:
            f.write("data\n")
        os.chmod(plain, 0o644)
        r = self.fails(fk.FAILURE, "--home", plain, "init", "--no-passphrase")
        self.assertEqual(r.err, f"fleetkey: error: home {plain} is not a directory\n")
        self.assertEqual(os.stat(plain).st_mode & 0o777, 0o644)
        # An existing home keeps its mode when init fails, and becomes private when it succeeds.
        shared = os.path.join(self.tmp, "shared")
        os.mkdir(shared, 0o755)
        os.chmod(shared, 0o755)
        self.fails(fk.FAILURE, "--home", shared, "--master-key", os.path.join(self.tmp, "no", "k"), "init",
                   "--no-passphrase")
        self.assertEqual(os.stat(shared).st_mode & 0o777, 0o755)
        self.fk("--home", shared, "init", "--no-passphrase")
        self.assertEqual(os.stat(shared).st_mode & 0o777, 0o700)

    def test_relative_xdg_data_home_is_ignored(self):
        env = {"HOME": os.path.join(self.tmp, "h"), "XDG_DATA_HOME": "relative"}
        e = {k: v for k, v in self.env.items() if k != "FLEETKEY_HOME"}
        e.update(env)
        r = subprocess.run([fk.BIN, "-v", "master", "list"], env=e, capture_output=True, text=True, cwd=self.tmp)
        self.assertEqual(r.returncode, fk.REGISTRY, r)
        self.assertIn(f"home {os.path.join(self.tmp, 'h', '.local/share/fleetkey')},", r.stderr)

    def test_same_seed_same_keys_anywhere(self):
        self.init_test_key()
        self.fk("device", "add", "SN-0001")
        other = os.path.join(self.tmp, "other")
        self.fk("--home", other, "init", "--no-passphrase", "--test-seed", fk.TEST_SEED)
        self.fk("--home", other, "device", "add", "SN-0001")
        a = self.fk("device", "key", "SN-0001").out
        b = self.fk("--home", other, "device", "key", "SN-0001").out
        self.assertEqual(a, "ef419cd3c7fb3a1da680469c58f84d10df682604c6469f07208313f21d79d33b\n")
        self.assertEqual(a, b)

    def test_random_keys_differ(self):
        self.init_plain()
        other = os.path.join(self.tmp, "other")
        self.fk("--home", other, "init", "--no-passphrase")
        a = self.fk("--json", "master", "list").json()
        b = self.fk("--json", "--home", other, "master", "list").json()
        self.assertRegex(a["fingerprint"], r"^[0-9a-f]{32}$")
        self.assertNotEqual(a["fingerprint"], b["fingerprint"])
        self.assertFalse(a["test_key"])

    def test_home_from_xdg(self):
        env = {k: v for k, v in self.env.items() if k != "FLEETKEY_HOME"}
        env["XDG_DATA_HOME"] = os.path.join(self.tmp, "xdg")
        self.env = env
        r = self.fk("--json", "init", "--no-passphrase")
        self.assertEqual(r.json()["home"], os.path.join(self.tmp, "xdg", "fleetkey"))


if __name__ == "__main__":
    fk.main()
