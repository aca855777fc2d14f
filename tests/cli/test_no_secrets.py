"""No key fleetkey derives, nor the master key, appears in the registry files: raw, hex or base64."""
import base64
import glob
import os
import subprocess

import fk
from reference import device_key, device_prk, hkdf_expand, info, test_master_key


def encodings(key):
    """Every text form of a key that could leak, and its 16-byte prefix in raw form."""
    forms = [key, key.hex().encode(), key.hex().upper().encode(), base64.b64encode(key),
             base64.urlsafe_b64encode(key).rstrip(b"=")]
    forms.append(key[:16])
    forms.append(key[:12].hex().encode())
    return forms


class NoSecretsTest(fk.FleetTest):
    def test_registry_holds_no_key_bytes(self):
        self.init_test_key()
        self.fk("master", "rotate")
        devices = [f"SN-{i:04}" for i in range(20)]
        for d in devices:
            self.fk("device", "add", d, "--label", "line=1")
        self.fk("user", "add", "alice")
        for d in devices[:5]:
            self.fk("user", "grant", "alice", "--device", d, "--role", "owner")
            self.fk("user", "key", "alice", "--device", d)
            self.fk("device", "key", d, "--purpose", "enc")
        self.fk("user", "revoke", "alice", "--device", devices[0], "--reason", "test")
        self.fk("device", "revoke", devices[1], "--reason", "test")

        keys = {}
        seed = bytes.fromhex(fk.TEST_SEED)
        for v in (1, 2):
            keys[f"MK{v}"] = test_master_key(seed, v)
            keys[f"PRK{v}"] = device_prk(keys[f"MK{v}"])  # the same extract step, on the master key
        for (d, v) in self.rows("SELECT id, key_version FROM devices"):
            kdev = device_key(keys[f"MK{v}"], d)
            # The test proves its own oracle right before relying on it.
            self.assertEqual(self.fk("device", "key", d).out.strip() if d != devices[1] else kdev.hex(), kdev.hex())
            keys[f"K_dev({d})"] = kdev
            prk_dev = device_prk(kdev)
            keys[f"PRK_dev({d})"] = prk_dev
            keys[f"K_enc({d})"] = hkdf_expand(prk_dev, info("purpose", "enc"))
            for e in (1, 2):
                keys[f"K_user({d},alice,{e})"] = hkdf_expand(prk_dev, info("user", "alice", e))
        self.assertEqual(self.fk("user", "key", "alice", "--device", devices[2]).out.strip(),
                         keys[f"K_user({devices[2]},alice,1)"].hex())

        if fk.PG_STATE:
            # The PostgreSQL run: everything the database holds, as pg_dump writes it.
            dump = subprocess.run([os.path.join(self.pg_state["bin"], "pg_dump"), "-h", self.pg_state["socket"], "-U",
                                   self.pg_state["user"], self.pg_dbname], capture_output=True, check=True).stdout
            blobs = {"pg_dump": dump}
        else:
            files = [p for p in glob.glob(self.registry_path + "*") if os.path.isfile(p)]
            self.assertIn(self.registry_path, files)
            blobs = {p: self.read(p, "rb") for p in files}
        self.assertGreater(sum(len(b) for b in blobs.values()), 10000)
        for name, key in keys.items():
            for form in encodings(key):
                for path, blob in blobs.items():
                    self.assertNotIn(form, blob, f"{name} appears in {path}")
        # Seed too: a test key's seed is as good as its master key.
        for path, blob in blobs.items():
            self.assertNotIn(seed, blob)
            self.assertNotIn(fk.TEST_SEED.encode(), blob)


if __name__ == "__main__":
    fk.main()
