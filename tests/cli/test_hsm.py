"""The master key in a PKCS#11 token (init --pkcs11, master import-to-hsm), against SoftHSM2 with a token in
the test's own directory: every derived value byte-identical to the key file's, the HSM reference format
(fleetkey-formats(5), HSM REFERENCE) checked independently, and the failures (wrong PIN, missing object,
missing module) one line each with exit 5, changing nothing."""
import base64
import os
import shutil
import stat
import unittest

import fk
import reference as ref

NOW = "2026-11-22T00:00:00Z"
URI = fk.HSM_URI


class HsmTest(fk.FleetTest):
    def setUp(self):
        super().setUp()
        self.env.update(fk.make_softhsm_token(self.tmp))
        self.env["FLEETKEY_PKCS11_PIN"] = fk.HSM_PIN

    def other_home(self, name):
        return {"FLEETKEY_HOME": os.path.join(self.tmp, name)}

    def workload(self, env):
        """The commands whose outputs must not depend on where the master key lives."""
        outs = []
        for args in (
            ("device", "add", "SN-1", "--model", "lock-v2"),
            ("device", "key", "SN-1"),
            ("device", "key", "SN-1", "--purpose", "enc"),
            ("device", "add", "SN-2"),
            ("user", "add", "alice"),
            ("--json", "user", "grant", "alice", "--device", "SN-1", "--role", "owner", "--ttl", "30d", "--now", NOW),
            ("user", "key", "alice", "--device", "SN-1"),
            ("token", "mint", "--sub", "svc", "--role", "reader", "--now", NOW),
            ("token", "mint", "--sub", "alice", "--role", "owner", "--aud", "SN-1", "--format", "jwt", "--now", NOW),
            ("pair", "SN-1", "--qr", "none"),
            ("pair", "SN-2", "--scheme", "matter", "--vendor-id", "65521", "--product-id", "32768", "--qr", "none"),
            ("device", "state", "SN-1", "--now", NOW),
            ("master", "rotate"),
            ("device", "add", "SN-3"),
            ("device", "key", "SN-3"),
            ("token", "mint", "--sub", "svc", "--role", "reader", "--now", NOW),
        ):
            r = self.fk("-q", *args, env=env)
            if args[0] == "master":
                continue  # says the new fingerprint: compared through master list below
            outs.append((args, r.out))
        keys = self.fk("--json", "master", "list", env=env).jsonl()
        outs.append(("master list", [{k: v for k, v in key.items() if k != "created"} for key in keys]))
        return outs

    def test_byte_identical_to_the_key_file(self):
        sw, hsm = self.other_home("sw"), self.other_home("hsm")
        self.fk("init", "--no-passphrase", "--test-seed", fk.TEST_SEED, env=sw)
        self.fk("init", "--no-passphrase", "--test-seed", fk.TEST_SEED, env=hsm)
        r = self.fk("master", "import-to-hsm", URI, env=hsm)
        self.assertRegex(r.out, r"^imported master key version 1 into PKCS#11 token \"fleetkey\" \(pkcs11:token=fleetkey;"
                         r"object=fleetkey-[0-9a-f]{8}\?module-path=/usr/lib/softhsm/libsofthsm2.so\)\n.*master.key now "
                         r"refers to the token\n$")
        a, b = self.workload(sw), self.workload(hsm)
        self.assertEqual(a, b)
        # And the same as the independent implementation.
        mk = ref.test_master_key(bytes.fromhex(fk.TEST_SEED))
        self.assertEqual(a[1][1], ref.device_key(mk, "SN-1").hex() + "\n")

    def test_init_pkcs11_is_byte_identical(self):
        sw, hsm = self.other_home("sw"), self.other_home("hsm")
        self.fk("init", "--no-passphrase", "--test-seed", fk.TEST_SEED, env=sw)
        r = self.fk("init", "--test-seed", fk.TEST_SEED, "--pkcs11", URI, env=hsm)
        self.assertIn("created master key v1 in the PKCS#11 token, TEST KEY (reference in ", r.out)
        self.assertEqual(self.workload(sw), self.workload(hsm))

    def test_random_key_imported_keeps_every_key(self):
        self.init_plain()
        self.fk("device", "add", "SN-1")
        self.fk("master", "rotate")
        self.fk("device", "add", "SN-2")
        before = [self.fk("device", "key", d).out for d in ("SN-1", "SN-2")]
        copy = os.path.join(self.tmp, "copy")
        shutil.copytree(self.home, copy)
        self.fk("master", "import-to-hsm", URI)
        self.assertEqual([self.fk("device", "key", d).out for d in ("SN-1", "SN-2")], before)
        # Both versions went into the token; the copy's key file still derives the same keys (with the
        # registry, which on PostgreSQL is not in the home that was copied).
        registry = ("--registry", self.registry_path) if fk.PG_STATE else ()
        self.assertEqual([self.fk(*registry, "device", "key", d, env={"FLEETKEY_HOME": copy}).out
                          for d in ("SN-1", "SN-2")], before)
        audit = self.fk("--json", "audit", "list", "--action", "master.import_to_hsm").jsonl()
        self.assertEqual(len(audit), 1)
        self.assertEqual(audit[0]["subject"], "master")
        self.assertEqual(audit[0]["details"]["token"], "fleetkey")
        self.assertEqual(audit[0]["details"]["versions"], [1, 2])

    def test_reference_file(self):
        self.fk("init", "--test-seed", fk.TEST_SEED, "--pkcs11", URI.replace("token=", "object=lab;token="))
        self.fk("-q", "master", "rotate")
        st = os.stat(self.key_path)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        lines = self.read(self.key_path).splitlines()
        self.assertEqual(lines[0], "# fleetkey master key file: the master key is in a PKCS#11 token. Layout: "
                                   "fleetkey-formats(5).")
        self.assertEqual(lines[1:5], ["format: fleetkey-hsm-reference 1",
                                      "uri: pkcs11:token=fleetkey;object=lab?module-path=/usr/lib/softhsm/libsofthsm2.so",
                                      "test-key: yes", "current-version: 2"])
        seed = bytes.fromhex(fk.TEST_SEED)
        registry = dict(self.rows("SELECT version, fingerprint FROM master_keys"))
        for v, line in zip((1, 2), lines[5:7]):
            version, created, fingerprint, check = line.removeprefix("version: ").split(" ")
            mk = ref.test_master_key(seed, v)
            prk = ref.hkdf_extract(ref.SALT, mk)
            self.assertEqual((int(version), fingerprint), (v, ref.fingerprint(mk)))
            self.assertEqual(registry[v], fingerprint)
            self.assertEqual(check, ref.hkdf_expand(prk, ref.info("hsm-check"))[:16].hex())
            self.assertGreater(int(created), 1700000000)
        self.assertEqual(lines[7:], [f"test-seed: {fk.TEST_SEED}"])
        self.assertNotIn(fk.HSM_PIN, self.read(self.key_path).replace(fk.TEST_SEED, ""))

    def test_master_commands(self):
        self.fk("init", "--pkcs11", URI)
        self.fk("device", "add", "SN-1")
        self.fk("master", "rotate")
        self.fk("device", "add", "SN-2")
        keys = self.fk("--json", "master", "list").jsonl()
        self.assertEqual([(k["version"], k["status"]) for k in keys], [(1, "active"), (2, "current")])
        self.fk("master", "retire", "1")
        self.fails(fk.KEY, "device", "key", "SN-1")
        self.fk("device", "key", "SN-2")
        # master list needs neither the token nor its PIN.
        self.fk("master", "list", env={"FLEETKEY_PKCS11_PIN": "", "SOFTHSM2_CONF": "/nonexistent"})
        r = self.fails(fk.KEY, "master", "passwd")
        self.assertEqual(r.err, f"fleetkey: error: master passwd: the master key of {self.home} is in a PKCS#11 token; "
                         "it has no passphrase, and the token's PIN is the token's business (change it with the "
                         "token's own tools)\n")
        r = self.fails(fk.KEY, "master", "backup", "--shares", "3", "--threshold", "2")
        self.assertIn("cannot leave the token (not extractable): take the backup before master import-to-hsm", r.err)
        r = self.fails(fk.KEY, "agent", "start")
        self.assertIn("no agent is needed", r.err)
        self.fails(fk.CONFLICT, "master", "import-to-hsm", URI)

    def test_pin_file(self):
        self.fk("init", "--pkcs11", URI)
        env = {"FLEETKEY_PKCS11_PIN": ""}
        r = self.fails(fk.KEY, "device", "add", "SN-1", env=env)
        self.assertEqual(r.err, "fleetkey: error: PKCS#11 token \"fleetkey\" needs its PIN and stdin is not a "
                                "terminal: use --pin-file, FLEETKEY_PKCS11_PIN_FILE or FLEETKEY_PKCS11_PIN\n")
        pin = self.write_private("pin", fk.HSM_PIN + "\n")
        self.fk("--pin-file", pin, "device", "add", "SN-1", env=env)
        self.fk("device", "key", "SN-1", env={**env, "FLEETKEY_PKCS11_PIN_FILE": pin})
        os.chmod(pin, 0o640)
        self.fails(fk.KEY, "--pin-file", pin, "device", "key", "SN-1", env=env)

    def test_wrong_pin_changes_nothing(self):
        self.fk("init", "--pkcs11", URI)
        self.fk("device", "add", "SN-1")
        snap, key_file = self.snapshot(), self.read(self.key_path)
        r = self.fails(fk.KEY, "device", "add", "SN-2", env={"FLEETKEY_PKCS11_PIN": "0000"})
        self.assertEqual(r.err, "fleetkey: error: wrong PIN for PKCS#11 token \"fleetkey\"\n")
        self.fails(fk.KEY, "master", "rotate", env={"FLEETKEY_PKCS11_PIN": "0000"})
        self.assertEqual((self.snapshot(), self.read(self.key_path)), (snap, key_file))

    def test_import_failures_change_nothing(self):
        self.init_plain()
        self.fk("device", "add", "SN-1")
        snap, key_file = self.snapshot(), self.read(self.key_path)
        self.fails(fk.KEY, "master", "import-to-hsm", URI, env={"FLEETKEY_PKCS11_PIN": "0000"})
        r = self.fails(fk.KEY, "master", "import-to-hsm", "pkcs11:token=fleetkey?module-path=/nonexistent/p11.so")
        self.assertRegex(r.err, r"^fleetkey: error: cannot load PKCS#11 module /nonexistent/p11.so: ")
        r = self.fails(fk.KEY, "master", "import-to-hsm", "pkcs11:token=fleetkey")
        self.assertEqual(r.err, "fleetkey: error: no PKCS#11 module: add ?module-path=FILE to the URI or set "
                                "FLEETKEY_PKCS11_MODULE\n")
        r = self.fails(fk.KEY, "master", "import-to-hsm", URI.replace("fleetkey", "other", 1))
        self.assertEqual(r.err, "fleetkey: error: no PKCS#11 token matches pkcs11:token=other;object=fleetkey-"
                         + r.err.split("object=fleetkey-")[1][:8] + f"?module-path={fk.SOFTHSM_MODULE} in "
                         f"{fk.SOFTHSM_MODULE}\n")
        r = self.fails(fk.USAGE, "master", "import-to-hsm", URI + "&pin-value=1234")
        self.assertIn("the PIN comes from --pin-file", r.err)
        self.fails(fk.USAGE, "master", "import-to-hsm", "pkcs11:token=fleetkey;id=%01")
        # Another home holds the label already: refused before anything is written.
        labelled = URI.replace("token=", "object=taken;token=")
        self.fk("init", "--pkcs11", labelled, env=self.other_home("other"))
        r = self.fails(fk.CONFLICT, "master", "import-to-hsm", labelled)
        self.assertEqual(r.err, "fleetkey: error: PKCS#11 token \"fleetkey\" holds an object labelled \"taken/v1\" "
                                "already: name another prefix with object= in the URI\n")
        self.assertEqual((self.snapshot(), self.read(self.key_path)), (snap, key_file))
        # After all that, the token holds no leftover: the import succeeds.
        self.fk("master", "import-to-hsm", URI.replace("token=", "object=mine;token="))
        self.fk("device", "key", "SN-1")

    def test_missing_object_and_module(self):
        self.fk("init", "--pkcs11", URI.replace("token=", "object=k;token="))
        self.fk("device", "add", "SN-1")
        snap, text = self.snapshot(), self.read(self.key_path)
        with open(self.key_path, "w") as f:
            f.write(text.replace("object=k", "object=gone"))
        r = self.fails(fk.KEY, "device", "add", "SN-2")
        self.assertEqual(r.err, "fleetkey: error: PKCS#11 token \"fleetkey\" has no object \"gone/v1\" (master key "
                                "version 1)\n")
        self.fk("-q", "init", "--pkcs11", URI.replace("token=", "object=gone;token="),
                env=self.other_home("other"))
        r = self.fails(fk.KEY, "device", "add", "SN-2")
        self.assertEqual(r.err, "fleetkey: error: object \"gone/v1\" in PKCS#11 token \"fleetkey\" is not master key "
                                "version 1 of this home (another check value)\n")
        with open(self.key_path, "w") as f:
            f.write(text.replace(fk.SOFTHSM_MODULE, "/nonexistent/p11.so"))
        r = self.fails(fk.KEY, "device", "add", "SN-2")
        self.assertRegex(r.err, r"^fleetkey: error: cannot load PKCS#11 module /nonexistent/p11.so: ")
        self.assertEqual(self.snapshot(), snap)

    def test_interrupted_force_puts_the_committed_reference_in_place(self):
        # test_hardening's InterruptedForceTest with the key in the token: init --pkcs11 --force killed
        # between its commit and the rename leaves the new reference at MASTER_KEY.init.
        self.fk("init", "--pkcs11", URI)
        old = self.read(self.key_path)
        self.fk("init", "--pkcs11", URI, "--force")
        new = self.read(self.key_path)
        os.rename(self.key_path, self.key_path + ".init")
        os.rename(self.write_private("old.key", old), self.key_path)
        self.assertTrue(self.fk("device", "add", "SN-1").out.startswith("registered device SN-1"))
        self.assertEqual(self.read(self.key_path), new)
        self.assertFalse(os.path.exists(self.key_path + ".init"))

    def test_init_failure_creates_nothing(self):
        r = self.fails(fk.KEY, "init", "--pkcs11", URI, env={"FLEETKEY_PKCS11_PIN": "0000"})
        self.assertEqual(r.err, "fleetkey: error: wrong PIN for PKCS#11 token \"fleetkey\"\n")
        self.assertFalse(os.path.exists(self.key_path) or os.path.exists(self.registry_path))
        self.fails(fk.KEY, "init", "--pkcs11", "pkcs11:token=fleetkey?module-path=/nonexistent/p11.so")
        self.assertFalse(os.path.exists(self.key_path) or os.path.exists(self.registry_path))
        if fk.PG_STATE:  # the database holds no table either
            self.assertEqual(self.rows("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"), [(0,)])

    def test_pair_all_in_threads(self):
        # A production run derives in several threads at once, each in a session of its own.
        sw, hsm = self.other_home("sw"), self.other_home("hsm")
        ids = self.write_private("ids.csv", "id\n" + "".join(f"D{i}\n" for i in range(200)))
        for env in (sw, hsm):
            self.fk("-q", "init", "--no-passphrase", "--test-seed", fk.TEST_SEED, env=env)
        self.fk("-q", "master", "import-to-hsm", URI, env=hsm)
        labels = {}
        for name, env in (("sw", sw), ("hsm", hsm)):
            self.fk("-q", "device", "import", ids, env=env)
            out = os.path.join(self.tmp, f"labels-{name}")
            self.fk("-q", "pair", "--all", "-o", out, "--qr", "svg", "--jobs", "4", env=env)
            labels[name] = {f: self.read(os.path.join(out, f)) for f in sorted(os.listdir(out))}
        self.assertEqual(len(labels["sw"]), 201)
        self.assertEqual(labels["sw"], labels["hsm"])

    def test_import_many_devices(self):
        # device import goes through the token in batches, from several threads.
        self.fk("init", "--test-seed", fk.TEST_SEED, "--pkcs11", URI)
        rows = "".join(f"SN-{i:05d}\n" for i in range(3000))
        src = self.write_private("devices.csv", "id\n" + rows)
        out = os.path.join(self.tmp, "keys.csv")
        self.fk("-q", "device", "import", src, "--keys-out", out)
        mk = ref.test_master_key(bytes.fromhex(fk.TEST_SEED))
        lines = self.read(out).splitlines()
        self.assertEqual(len(lines), 3001)
        for line in lines[1::250]:
            device, key = line.split(",")[:2]
            self.assertEqual(base64.b64decode(key), ref.device_key(mk, device))


if __name__ == "__main__":
    unittest.main()
