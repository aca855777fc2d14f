"""SOURCE_DATE_EPOCH with a test key (fleetkey(1), SCRIPTING, Fixtures): every time fleetkey writes is that
time, so that two identical CI runs give byte-identical outputs; a real key ignores it."""
import os
import time

import fk

EPOCH = "1795305600"  # 2026-11-22T00:00:00Z


class FixturesTest(fk.FleetTest):
    def run_ci(self, home, env_extra):
        """One CI job: a test-key home, devices, users, grants, a revocation; returns every exported output."""
        env = {"FLEETKEY_HOME": os.path.join(self.tmp, home), **env_extra}
        keys = os.path.join(self.tmp, home + "-keys.jsonl")
        state = os.path.join(self.tmp, home + "-state.bin")
        csv = os.path.join(self.tmp, "devices.csv")  # the same input path: the audit trail records it
        with open(csv, "w") as f:
            f.write("id,model\nLOCK-1,door\nLOCK-2,door\n")
        self.fk("-q", "init", "--no-passphrase", "--test-seed", fk.TEST_SEED, env=env)
        self.fk("-q", "device", "import", csv, "--keys-out", keys, env=env)
        self.fk("-q", "user", "add", "alice", env=env)
        out = {
            "grant": self.fk("-q", "--json", "user", "grant", "alice", "--device", "LOCK-1", "--role", "owner",
                             env=env).out,
            "token": self.fk("-q", "--json", "token", "mint", "--sub", "svc", "--aud", "LOCK-2", "--role", "service",
                             env=env).out,
        }
        self.fk("-q", "user", "revoke", "alice", "--device", "LOCK-1", "--reason", "left", env=env)
        self.fk("-q", "device", "state", "LOCK-1", "-o", state, env=env)
        out["devices"] = self.fk("-q", "--json", "device", "list", env=env).out
        out["users"] = self.fk("-q", "--json", "user", "show", "alice", env=env).out
        out["audit"] = self.fk("-q", "--json", "audit", "list", env=env).out
        for name, path in (("keys", keys), ("state", state), ("master_key", os.path.join(env["FLEETKEY_HOME"],
                                                                                         "master.key"))):
            with open(path, "rb") as f:
                out[name] = f.read()
        return out

    def test_two_runs_are_byte_identical(self):
        a = self.run_ci("a", {"SOURCE_DATE_EPOCH": EPOCH})
        time.sleep(1.1)
        b = self.run_ci("b", {"SOURCE_DATE_EPOCH": EPOCH})
        for name in a:
            self.assertEqual(a[name], b[name], name)
        # Every time written is SOURCE_DATE_EPOCH's.
        self.assertIn('"created":"2026-11-22T00:00:00Z"', a["devices"])
        self.assertIn('"expires":"2026-12-22T00:00:00Z"', a["grant"])
        for line in a["audit"].splitlines():
            self.assertIn('"at":"2026-11-22T00:00:00Z"', line)

    def test_without_it_runs_differ(self):
        a = self.run_ci("a", {})
        time.sleep(1.1)
        b = self.run_ci("b", {})
        self.assertNotEqual(a["audit"], b["audit"])

    def test_a_real_key_ignores_it(self):
        self.init_plain()
        self.fk("device", "add", "SN-1", env={"SOURCE_DATE_EPOCH": EPOCH})
        created = self.fk("--json", "device", "show", "SN-1").json()["created"]
        self.assertNotEqual(created, "2026-11-22T00:00:00Z")
        self.assertRegex(created, fk.ISO_TIME)

    def test_malformed_value_is_refused(self):
        for value in ("soon", "12x", "-"):
            r = self.fails(fk.USAGE, "init", "--no-passphrase", "--test-seed", fk.TEST_SEED,
                           env={"SOURCE_DATE_EPOCH": value})
            self.assertEqual(r.err, "fleetkey: error: SOURCE_DATE_EPOCH must be a number of seconds since "
                                    f"1970-01-01T00:00:00Z (got \"{value}\")\n")
            self.assertFalse(os.path.exists(self.home))


if __name__ == "__main__":
    fk.main()
