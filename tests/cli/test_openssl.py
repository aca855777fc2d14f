"""Keys recomputed with `openssl kdf ... HKDF`, following fleetkey-formats(5) step by step."""
import re
import struct
import subprocess

import fk


def openssl_hkdf(mode, key_hex, salt, info_hex=None, length=32):
    args = ["openssl", "kdf", "-keylen", str(length), "-kdfopt", "digest:SHA256", "-kdfopt", f"hexkey:{key_hex}",
            "-kdfopt", f"mode:{mode}"]
    if salt is not None:
        args += ["-kdfopt", f"salt:{salt}"]
    if info_hex is not None:
        args += ["-kdfopt", f"hexinfo:{info_hex}"]
    args.append("HKDF")
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()
    return out.replace(":", "").lower()


def info(*fields):
    out = b""
    for f in fields:
        f = struct.pack(">Q", f) if isinstance(f, int) else f.encode()
        out += struct.pack(">H", len(f)) + f
    return out.hex()


class OpensslTest(fk.FleetTest):
    def test_man_page_worked_example_is_what_openssl_computes(self):
        man = self.read(f"{fk.SOURCE_DIR}/man/fleetkey-formats.5")
        example = {}
        for name in ["MK[1]", "K_dev", "K_user", "K_purpose", "PRK[1]"]:
            m = re.search(re.escape(name) + r"\s+= ([0-9a-f]{64})", man)
            self.assertIsNotNone(m, name)
            example[name] = m.group(1)
        seed_prk = openssl_hkdf("EXTRACT_ONLY", fk.TEST_SEED, "fleetkey/v1 test-seed")
        mk = openssl_hkdf("EXPAND_ONLY", seed_prk, None, info("master", 1))
        self.assertEqual(mk, example["MK[1]"])
        self.assertEqual(openssl_hkdf("EXTRACT_ONLY", mk, "fleetkey/v1"), example["PRK[1]"])
        kdev = openssl_hkdf("EXTRACT_AND_EXPAND", mk, "fleetkey/v1", info("device", "SN-0001"))
        self.assertEqual(kdev, example["K_dev"])
        prk_dev = openssl_hkdf("EXTRACT_ONLY", kdev, "fleetkey/v1")
        self.assertEqual(openssl_hkdf("EXPAND_ONLY", prk_dev, None, info("user", "alice", 1)), example["K_user"])
        self.assertEqual(openssl_hkdf("EXPAND_ONLY", prk_dev, None, info("purpose", "enc")), example["K_purpose"])

    def test_fleetkey_agrees_with_openssl_for_many_ids(self):
        self.init_test_key()
        seed_prk = openssl_hkdf("EXTRACT_ONLY", fk.TEST_SEED, "fleetkey/v1 test-seed")
        mk = openssl_hkdf("EXPAND_ONLY", seed_prk, None, info("master", 1))
        for dev in ["SN-0001", "a", "x" * 128, "café-Ω", "with space", "-leading-dash"]:
            with self.subTest(dev=dev):
                self.fk("device", "add", "--", dev)
                want = openssl_hkdf("EXTRACT_AND_EXPAND", mk, "fleetkey/v1", info("device", dev))
                self.assertEqual(self.fk("device", "key", "--", dev).out, want + "\n")


if __name__ == "__main__":
    fk.main()
