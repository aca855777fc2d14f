"""fleetkey device add | list | show | revoke | key."""
import base64
import json
import subprocess

import fk

KDEV = "ef419cd3c7fb3a1da680469c58f84d10df682604c6469f07208313f21d79d33b"  # fleetkey-formats(5) worked example
KDEV_FP = "8cd660a9aea4d2726388577ff31c2279"
KENC = "69f36dc9aa92c36aa3668372c469a156fb56eb4e35f550718e0eb27d6db7906c"


class DeviceTest(fk.FleetTest):
    def setUp(self):
        super().setUp()
        self.init_test_key()

    def test_add_output_and_registry(self):
        r = self.fk("device", "add", "SN-0001", "--model", "lock-v2", "--label", "line=3", "--label", "color=red")
        self.assertEqual(r.out, f"registered device SN-0001 (master key v1, fingerprint {KDEV_FP})\n")
        self.assertEqual(r.err, fk.TEST_KEY_WARNING)
        row = self.rows("SELECT id, model, labels, key_version, fingerprint, status, pairing_counter, revoked "
                        "FROM devices")
        self.assertEqual(row, [("SN-0001", "lock-v2", '{"color":"red","line":"3"}', 1, KDEV_FP, "active", 0, None)])
        audit = self.rows("SELECT actor, action, subject, details FROM audit WHERE action = 'device.add'")
        self.assertEqual(audit, [("tester", "device.add", "SN-0001",
                                  json.dumps({"fingerprint": KDEV_FP, "key_version": 1}, separators=(",", ":")))])

    def test_add_json(self):
        j = self.fk("--json", "device", "add", "SN-0001", "--model", "m").json()
        self.assertRegex(j.pop("created"), fk.ISO_TIME)
        self.assertEqual(j, {"id": "SN-0001", "model": "m", "labels": {}, "status": "active", "key_version": 1,
                             "fingerprint": KDEV_FP, "pairing_counter": 0, "revoked": None, "revoke_reason": None,
                             "added": True})

    def test_duplicate_refused_and_unchanged(self):
        self.fk("device", "add", "SN-1")
        snap = self.snapshot()
        r = self.fails(fk.CONFLICT, "device", "add", "SN-1", "--model", "other")
        self.assertEqual(r.err, fk.TEST_KEY_WARNING +
                         'fleetkey: error: device "SN-1" is already registered (use --if-missing to skip)\n')
        self.assertEqual(self.snapshot(), snap)

    def test_if_missing(self):
        self.fk("device", "add", "SN-1")
        snap = self.snapshot()
        r = self.fk("device", "add", "SN-1", "--if-missing")
        self.assertEqual(r.out, "device SN-1 is already registered\n")
        self.assertEqual(self.snapshot(), snap)
        self.assertFalse(self.fk("--json", "device", "add", "SN-1", "--if-missing").json()["added"])

    def test_malformed_ids_refused_and_unchanged(self):
        snap = self.snapshot()
        for bad in ["", "x" * 129, "a\nb", "tab\there", "del\x7f", "\u0085c1"]:
            with self.subTest(id=bad):
                r = self.fails(fk.USAGE, "device", "add", bad)
                self.assertIn("device id must be", r.err)
                self.assertEqual(self.snapshot(), snap)
        self.fk("device", "add", "x" * 128)
        self.fk("device", "add", "café ünïcode Ω")

    def test_invalid_utf8_id_refused(self):
        snap = self.snapshot()
        p = subprocess.run([fk.BIN.encode(), b"device", b"add", b"SN-\xff"], env=self.env, capture_output=True,
                           stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, fk.USAGE)
        self.assertIn(b"printable UTF-8", p.stderr)
        self.assertEqual(self.snapshot(), snap)

    def test_bad_labels_refused(self):
        snap = self.snapshot()
        for bad in ["novalue", "=v", "bad key=v", "k=" + "v" * 257, "k=a\nb"]:
            with self.subTest(label=bad):
                self.fails(fk.USAGE, "device", "add", "SN-1", "--label", bad)
        self.fails(fk.USAGE, "device", "add", "SN-1", "--label", "k=1", "--label", "k=2")
        self.assertEqual(self.snapshot(), snap)

    def test_list_show(self):
        self.fk("device", "add", "SN-2", "--model", "lock")
        self.fk("device", "add", "SN-1")
        self.fk("device", "revoke", "SN-2", "--reason", "stolen")
        lines = self.fk("device", "list").out.splitlines()
        self.assertEqual(lines[0], "ID                       MODEL            STATUS   KEY  CREATED")
        self.assertRegex(lines[1], r"^SN-1                     -                active   v1   \S+Z$")
        self.assertRegex(lines[2], r"^SN-2                     lock             revoked  v1   \S+Z$")
        self.assertEqual([d["id"] for d in self.fk("--json", "device", "list").jsonl()], ["SN-1", "SN-2"])
        self.assertEqual([d["id"] for d in self.fk("--json", "device", "list", "--status", "revoked").jsonl()],
                         ["SN-2"])
        self.assertEqual(self.fk("--json", "device", "list", "--status", "active").jsonl()[0]["id"], "SN-1")
        out = self.fk("device", "show", "SN-2").out
        self.assertRegex(out, r"^id:           SN-2\nmodel:        lock\nlabels:       -\nstatus:       revoked\n"
                              r"key version:  1\nfingerprint:  [0-9a-f]{32}\ncreated:      \S+Z\n"
                              r"revoked:      \S+Z \(stolen\)\nstate seq:    2\ngrants:       0\n$")
        j = self.fk("--json", "device", "show", "SN-2").json()
        self.assertEqual((j["status"], j["revoke_reason"]), ("revoked", "stolen"))
        self.fails(fk.USAGE, "device", "list", "--status", "lost")

    def test_unknown_device(self):
        snap = self.snapshot()
        for args in (["show", "nope"], ["key", "nope"], ["revoke", "nope", "--reason", "x"]):
            with self.subTest(args=args):
                r = self.fails(fk.NOT_FOUND, "device", *args)
                self.assertTrue(r.err.endswith('fleetkey: error: device "nope" is not registered\n'))
                self.assertEqual(self.snapshot(), snap)

    def test_revoke(self):
        self.fk("device", "add", "SN-1")
        self.assertEqual(self.fk("device", "revoke", "SN-1", "--reason", "stolen").out, "revoked device SN-1\n")
        self.assertEqual(self.rows("SELECT kind, device, reason FROM revocations"), [("device", "SN-1", "stolen")])
        self.assertEqual(self.rows("SELECT action, details FROM audit WHERE subject = 'SN-1' ORDER BY id")[-1],
                         ("device.revoke", '{"reason":"stolen"}'))
        snap = self.snapshot()
        self.fails(fk.CONFLICT, "device", "revoke", "SN-1", "--reason", "again")
        r = self.fails(fk.CONFLICT, "device", "key", "SN-1")
        self.assertIn("is revoked", r.err)
        self.assertEqual(self.snapshot(), snap)
        self.fails(fk.USAGE, "device", "revoke", "SN-1")  # --reason is required

    def test_revoke_reason_refused_and_unchanged(self):
        self.fk("device", "add", "SN-1")
        snap = self.snapshot()
        for bad in ["", "x" * 1025, "line\nbreak", "nul\x01"]:
            with self.subTest(reason=bad[:10]):
                r = self.fails(fk.USAGE, "device", "revoke", "SN-1", "--reason", bad)
                self.assertTrue(r.err.endswith("fleetkey: error: --reason must be 1 to 1024 bytes of printable text\n"))
                self.assertEqual(self.snapshot(), snap)
        self.fk("device", "revoke", "SN-1", "--reason", "x" * 1024)
        self.assertEqual(self.rows("SELECT status, length(revoke_reason) FROM devices"), [("revoked", 1024)])

    def test_key_formats(self):
        self.fk("device", "add", "SN-0001")
        raw = bytes.fromhex(KDEV)
        self.assertEqual(self.fk("device", "key", "SN-0001").out, KDEV + "\n")
        self.assertEqual(self.fk("device", "key", "SN-0001", "--format", "hex").out, KDEV + "\n")
        self.assertEqual(self.fk("device", "key", "SN-0001", "--format", "base64").out,
                         base64.b64encode(raw).decode() + "\n")
        self.assertEqual(self.fk("device", "key", "SN-0001", "--format", "psk").out, f"SN-0001:{KDEV}\n")
        c = self.fk("device", "key", "SN-0001", "--format", "c").out
        self.assertEqual(c.splitlines()[0],
                         f'/* fleetkey device key for device "SN-0001", master key v1, fingerprint {KDEV_FP}, '
                         'TEST KEY */')
        self.assertIn("static const unsigned char fleetkey_device_key[32] = {\n    0xef, 0x41, 0x9c,", c)
        self.assertTrue(c.endswith("};\nstatic const unsigned int fleetkey_device_key_len = 32;\n"))
        body = c[c.index("{") + 1:c.index("}")]
        self.assertEqual(bytes(int(x, 16) for x in body.replace(",", " ").split()), raw)
        rows = [", ".join("0x%02x" % b for b in raw[i:i + 8]) for i in range(0, 32, 8)]
        self.assertEqual(c.splitlines()[1:], ["static const unsigned char fleetkey_device_key[32] = {"]
                         + ["    " + r + ("," if i < 3 else "") for i, r in enumerate(rows)]
                         + ["};", "static const unsigned int fleetkey_device_key_len = 32;"])
        expected = {"kind": "device", "device": "SN-0001", "purpose": None, "key_version": 1,
                    "fingerprint": KDEV_FP, "test_key": True, "key": base64.b64encode(raw).decode()}
        self.assertEqual(json.loads(self.fk("device", "key", "SN-0001", "--format", "json").out), expected)
        self.assertEqual(self.fk("--json", "device", "key", "SN-0001").json(), expected)
        self.fails(fk.USAGE, "device", "key", "SN-0001", "--format", "pem")
        # A key that cannot be written (a full disk) is an error. Keys bypass stdio's buffer (no copy
        # left in it), so the failure is seen at the write itself.
        with open("/dev/full", "w") as full:
            proc = subprocess.run([fk.BIN, "device", "key", "SN-0001"], stdout=full, stderr=subprocess.PIPE,
                                  env=self.env, text=True, timeout=60)
        self.assertEqual((proc.returncode, proc.stderr.replace(fk.TEST_KEY_WARNING, "")),
                         (1, "fleetkey: error: cannot write to stdout: No space left on device\n"))

    def test_purpose_subkeys(self):
        self.fk("device", "add", "SN-0001")
        self.assertEqual(self.fk("device", "key", "SN-0001", "--purpose", "enc").out, KENC + "\n")
        mac = self.fk("device", "key", "SN-0001", "--purpose", "mac").out
        self.assertNotEqual(mac, KENC + "\n")
        self.assertNotEqual(mac, KDEV + "\n")
        c = self.fk("device", "key", "SN-0001", "--purpose", "enc", "--format", "c").out
        self.assertIn("fleetkey_device_key_enc[32]", c)
        for bad in ["", "ENC", "a b", "x" * 33]:
            self.fails(fk.USAGE, "device", "key", "SN-0001", "--purpose", bad)
        self.assertEqual(len(self.fk("device", "key", "SN-0001", "--purpose", "a-z_0.9" + "x" * 25).out), 65)
        # --help states the limit the validator applies.
        help_text = " ".join(self.fk("device", "key", "--help").out.split())
        self.assertIn("--purpose NAME Derive the subkey for NAME (e.g. enc, mac) instead of K_dev; NAME is 1-32 "
                      "characters of a-z 0-9 _ . -", help_text)

    def test_every_error_is_one_line(self):
        """Messages quote raw input; control characters, C1 controls, line separators and invalid
        UTF-8 are escaped once, where the error is printed, so that an error is always one line."""
        self.fk("device", "add", "SN-1")
        self.fk("user", "add", "bob")
        snap = self.snapshot()
        cases = [
            (fk.USAGE, ["device", "add", "Q", "--label", "a\nb"], 'label "a\\nb" is not KEY=VALUE'),
            (fk.USAGE, ["device", "add", "Q", "--label", "a\u0085b\u2028"], 'label "a\\u0085b\\u2028" is not '
                                                                         "KEY=VALUE"),
            (fk.USAGE, ["device", "add", "Q", "--model", "m", "--label", "\x1b[31mred\t\r"],
             'label "\\x1b[31mred\\t\\r" is not KEY=VALUE'),
            (fk.USAGE, ["user", "grant", "bob", "--device", "SN-1", "--role", "a\nb"],
             'role "a\\nb" must be 1 to 64 characters of a-z A-Z 0-9 _ . : -'),
            (fk.USAGE, ["device", "key", "SN-1", "--purpose", "x\ny"],
             'purpose "x\\ny" must be 1 to 32 characters of a-z 0-9 _ . -'),
            (fk.USAGE, ["token", "mint", "--sub", "bob", "--role", "r", "--ttl", "1\n2"],
             '--ttl: invalid duration "1\\n2" (examples: 90s, 15m, 12h, 30d, 2w, 1d12h)'),
            (fk.USAGE, ["token", "verify", "x", "--now", "1\n2"],
             '--now: invalid time "1\\n2" (expected YYYY-MM-DDTHH:MM:SSZ or @UNIXSECONDS)'),
            (fk.USAGE, ["device", "add", "Q", "--bogus\nx"],
             "The following argument was not expected: --bogus\\nx (see fleetkey device add --help)"),
            (fk.USAGE, ["pair", "decode", "FK1:1\n2:x"], 'bad pairing code: the code "1\\n2" must be decimal digits'),
            # "\udcff" reaches argv as the byte 0xFF (invalid UTF-8).
            (fk.NOT_FOUND, ["device", "import", "/nonexistent/a\n\udcff\udcc3.csv"],
             "cannot read /nonexistent/a\\n\\xff\\xc3.csv: No such file or directory"),
        ]
        for code, args, message in cases:
            with self.subTest(args=args):
                r = self.fails(code, *args)
                err = r.err[len(fk.TEST_KEY_WARNING):] if r.err.startswith(fk.TEST_KEY_WARNING) else r.err
                self.assertEqual(err, f"fleetkey: error: {message}\n")
        self.assertEqual(self.snapshot(), snap)

    def test_unknown_and_missing_commands_are_named(self):
        """CLI11 alone says "A subcommand is required" for all of these."""
        cases = [
            (["bogus"], "unknown command: bogus (see fleetkey --help)"),
            (["-q", "--home", self.home, "bogus", "x"], "unknown command: bogus (see fleetkey --help)"),
            (["device", "bogus"], "unknown command: device bogus (see fleetkey device --help)"),
            (["device", "--json", "ad"], "unknown command: device ad (see fleetkey device --help)"),
            (["device"], "device needs a command: add, import, list, show, revoke, key, state (see fleetkey device --help)"),
            (["-q"], "fleetkey needs a command: init, master, device, user, token, pair, audit, agent, "
                     "registry, completion (see fleetkey --help)"),
            (["bogus", "device"], "unknown command: bogus (see fleetkey --help)"),  # bogus is not device's
            (["--hme", "/tmp/x", "device"], "The following argument was not expected: --hme (see fleetkey --help)"),
            (["device", "--", "list"],
             "device needs a command: add, import, list, show, revoke, key, state (see fleetkey device --help)"),
            (["device", "add"], "ID is required (see fleetkey device add --help)"),
            # Only the top-level help lists the global options.
            (["device", "add", "X", "--home"], "--home: 1 required DIR missing (see fleetkey --help)"),
            (["token", "mint", "--sub", "bob"], "--role is required (see fleetkey token mint --help)"),
        ]
        snap = self.snapshot()
        for args, message in cases:
            with self.subTest(args=args):
                r = self.fails(fk.USAGE, *args)
                err = r.err[len(fk.TEST_KEY_WARNING):] if r.err.startswith(fk.TEST_KEY_WARNING) else r.err
                self.assertEqual(err, f"fleetkey: error: {message}\n")
        self.assertEqual(self.snapshot(), snap)

    def test_key_export_is_audited_without_the_key(self):
        self.fk("device", "add", "SN-0001")
        self.fk("device", "key", "SN-0001")
        self.assertEqual(self.rows("SELECT action, details FROM audit WHERE action = 'device.key.export'"),
                         [("device.key.export", json.dumps({"fingerprint": KDEV_FP, "purpose": None},
                                                           separators=(",", ":")))])

    def test_quiet_and_global_options_after_the_command(self):
        self.assertEqual(self.fk("device", "add", "SN-1", "-q").out, "")
        self.assertEqual(self.fk("device", "show", "SN-1", "--json").json()["id"], "SN-1")
        r = self.fk("-v", "device", "show", "SN-1")
        self.assertTrue(r.err.startswith(f"fleetkey: home {self.home}, registry {self.registry_path}, master key "
                                         f"{self.key_path}\n"), r.err)

    def test_global_options_before_the_group(self):
        # Only the command group argv names is built; every way of writing the global options before
        # it must still find the group, and a value that happens to be a group name is not one.
        self.fk("device", "add", "SN-1")
        for globals_ in (["--json"], ["-q", "-v"], ["--home", self.home], ["--home=" + self.home],
                         ["--registry", self.registry_path, "--json"], ["-vv"], ["--home", "device"]):
            r = self.run_fk(*globals_, "device", "show", "SN-1")
            if globals_ == ["--home", "device"]:  # a relative home named "device": no registry there
                self.assertEqual(r.rc, fk.REGISTRY, r)
                continue
            self.assertEqual(r.rc, fk.OK, (globals_, r))
            self.assertIn("SN-1", r.out)
        # Unknown options and misplaced names are usage errors, as before.
        self.fails(fk.USAGE, "--bogus", "device", "show", "SN-1")
        self.fails(fk.USAGE, "device", "frobnicate")
        self.fails(fk.USAGE, "devices", "show", "SN-1")


if __name__ == "__main__":
    fk.main()
