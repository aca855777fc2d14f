"""pair --scheme matter: the SPAKE2+ verifier, salt and iteration count (fleetkey-pairing(5), MATTER
SPAKE2+ VERIFIER), against an independent implementation on python3-cryptography (PBKDF2 and P-256
scalar multiplication); the factory CSV files of a production run; what is refused, with nothing written."""
import base64
import csv
import io
import os
import stat

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

import fk
from reference import hkdf_expand, info
from test_pair import device_prk, discriminator, matter_manual, matter_qr, passcode

# The order of P-256 (SEC 2, secp256r1).
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
CHIP_TEST_VERIFIER = ("uWFwqugDNGiEck/po7KHwwMwwqZgN10XuyBajPGuyzUEV/iree4lOrao5GuwnlQ65CJzbeUB49s31EH+NEkg0JVI5MGCQG"
                      "MMT/SRPFNRODm3wH/MBiehuFc6FJ/NH6Rmzw==")
VID, PID = ["--vendor-id", "0xFFF1"], ["--product-id", "0x8000"]


def spake2p_verifier(pc, salt, iterations):
    """w0 || L, as fleetkey-pairing(5) and connectedhomeip's Spake2pVerifier say."""
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=80, salt=salt, iterations=iterations)
    ws = kdf.derive(pc.to_bytes(4, "little"))
    w0 = int.from_bytes(ws[:40], "big") % P256_N
    w1 = int.from_bytes(ws[40:], "big") % P256_N
    point = ec.derive_private_key(w1, ec.SECP256R1()).public_key()
    return w0.to_bytes(32, "big") + point.public_bytes(serialization.Encoding.X962,
                                                       serialization.PublicFormat.UncompressedPoint)


def salt_of(device, counter):
    return hkdf_expand(device_prk(device), info("pairing-matter-salt", counter), 32)


def b64(data):
    return base64.b64encode(data).decode()


class PairMatterTest(fk.FleetTest):
    def setUp(self):
        super().setUp()
        self.init_test_key()
        self.fk("device", "add", "SN-42")

    def path(self, name):
        return os.path.join(self.tmp, name)

    def pair_json(self, *args):
        r = self.fk("--json", "pair", *args)
        self.assertEqual(r.err, fk.TEST_KEY_WARNING)
        return r.json()

    def test_the_oracle_gives_connectedhomeips_test_verifier(self):
        self.assertEqual(b64(spake2p_verifier(20202021, b"SPAKE2P Key Salt", 1000)), CHIP_TEST_VERIFIER)

    def test_man_page_worked_example_and_output(self):
        """fleetkey-pairing(5)'s worked example (salt, verifier) and OUTPUT section, recomputed."""
        with open(os.path.join(fk.SOURCE_DIR, "man", "fleetkey-pairing.5"), encoding="utf-8") as f:
            page = f.read()
        block = page.split(".\\\" worked-example-begin\n", 1)[1].split(".\\\" worked-example-end", 1)[0]
        ex = dict(line.split(None, 1) for line in block.splitlines() if not line.startswith("."))
        device, counter, iterations = ex["device"], int(ex["counter"]), int(ex["iterations"])
        self.assertEqual(salt_of(device, counter).hex(), ex["salt"])
        self.assertEqual(b64(spake2p_verifier(int(ex["passcode"]), bytes.fromhex(ex["salt"]), iterations)),
                         ex["verifier"])
        j = self.pair_json(device, "--scheme", "matter", *VID, *PID, "--qr", "none")
        self.assertEqual((j["iterations"], base64.b64decode(j["salt"]).hex(), j["verifier"]),
                         (iterations, ex["salt"], ex["verifier"]))
        output = page.split(".SH OUTPUT\n", 1)[1].split(".nf\n.ft CR\n", 1)[1].split(".ft\n", 1)[0]
        r = self.fk("pair", device, "--scheme", "matter", *VID, *PID, "--qr", "none")
        self.assertEqual(r.out.replace(ex["verifier"], "(132 characters of base64)"), output)

    def test_json_and_human_output(self):
        pc, disc, salt = passcode("SN-42", 0), discriminator("SN-42", 0), salt_of("SN-42", 0)
        verifier = b64(spake2p_verifier(pc, salt, 10000))  # the default iteration count
        j = self.pair_json("SN-42", "--scheme", "matter", *VID, *PID, "--qr", "none")
        self.assertEqual(j, {"device": "SN-42", "scheme": "matter", "counter": 0, "version": 0, "vendor_id": 0xFFF1,
                             "product_id": 0x8000, "flow": 0, "discovery": 2, "discriminator": disc, "passcode": "%08d" % pc,
                             "iterations": 10000, "salt": b64(salt), "verifier": verifier,
                             "manual_code": matter_manual(0xFFF1, 0x8000, 0, disc, pc),
                             "manual_code_grouped": j["manual_code_grouped"],
                             "payload": matter_qr(0xFFF1, 0x8000, 0, 2, disc, pc), "file": None})
        r = self.fk("pair", "SN-42", "--scheme", "matter", *VID, *PID, "--qr", "none", "--iterations", "1000")
        self.assertEqual(r.out, "device:        SN-42\n"
                                "counter:       0\n"
                                "vendor id:     65521 (0xFFF1)\n"
                                "product id:    32768 (0x8000)\n"
                                "flow:          0 (standard)\n"
                                "discovery:     2 (BLE)\n"
                                f"discriminator: {disc}\n"
                                f"passcode:      {pc:08d}\n"
                                "iterations:    1000\n"
                                f"salt:          {b64(salt)}\n"
                                f"verifier:      {b64(spake2p_verifier(pc, salt, 1000))}\n"
                                f"manual code:   {j['manual_code_grouped']}\n"
                                f"payload:       {j['payload']}\n")
        # -q prints the manual code only, as before.
        r = self.fk("-q", "pair", "SN-42", "--scheme", "matter", *VID, *PID, "--qr", "none")
        self.assertEqual(r.out, j["manual_code_grouped"] + "\n")

    def test_rotate_gives_a_new_salt_and_verifier(self):
        seen = set()
        for counter in range(1, 4):
            j = self.pair_json("SN-42", "--rotate", "--scheme", "matter", *VID, *PID, "--iterations", "1000",
                               "--qr", "none")
            self.assertEqual(j["counter"], counter)
            salt = salt_of("SN-42", counter)
            self.assertEqual((j["passcode"], j["salt"]), ("%08d" % passcode("SN-42", counter), b64(salt)))
            self.assertEqual(j["verifier"], b64(spake2p_verifier(int(j["passcode"]), salt, 1000)))
            seen.add(j["salt"])
        self.assertEqual(len(seen), 3)

    def test_passcode_file_and_iteration_bounds(self):
        path = self.write_private("pc", "20202021\n")
        salt = salt_of("SN-42", 0)
        for iterations in (1000, 100000):
            j = self.pair_json("SN-42", "--scheme", "matter", *VID, *PID, "--passcode-file", path, "--iterations",
                               str(iterations), "--qr", "none")
            self.assertEqual((j["passcode"], j["iterations"]), ("20202021", iterations))
            self.assertEqual(j["verifier"], b64(spake2p_verifier(20202021, salt, iterations)))

    def test_production_run_against_the_oracle(self):
        ids = ["SN-42"] + ["LOCK-%03d" % i for i in range(47)] + ["with,comma"]
        for d in ids[1:]:
            self.fk("device", "add", d)
        out = self.path("run")
        r = self.fk("--json", "pair", "--all", "-o", out, "--scheme", "matter", *VID, *PID, "--iterations", "1000",
                    "--jobs", "2")
        names = ["spake2p.csv", "esp-matter-config.csv", "esp-matter-master.csv"]
        self.assertEqual(r.json(), {"count": len(ids), "dir": out, "manifest": out + "/manifest.csv",
                                    "scheme": "matter", "iterations": 1000,
                                    "matter_files": [out + "/" + n for n in names]})
        order = sorted(ids, key=lambda d: d.encode())
        manifest = list(csv.reader(io.StringIO(self.read(out + "/manifest.csv"), newline="")))
        self.assertEqual(manifest[0], ["device", "passcode", "manual_code", "payload", "file", "discriminator",
                                       "iterations", "salt", "verifier"])
        self.assertEqual([row[0] for row in manifest[1:]], order)
        spake = "Index,PIN Code,Iteration Count,Salt,Verifier\n"
        master = "discriminator,iteration-count,salt,verifier\n"
        passcodes = set()
        for i, (d, row) in enumerate(zip(order, manifest[1:])):
            pc, disc, salt = passcode(d, 0), discriminator(d, 0), salt_of(d, 0)
            verifier = b64(spake2p_verifier(pc, salt, 1000))
            self.assertEqual(row[1:2] + row[5:], ["%08d" % pc, str(disc), "1000", b64(salt), verifier], d)
            spake += "%d,%08d,1000,%s,%s\n" % (i, pc, b64(salt), verifier)
            master += "%d,1000,%s,%s\n" % (disc, b64(salt), verifier)
            passcodes.add(pc)
        self.assertEqual(len(passcodes), len(ids))
        self.assertEqual(self.read(out + "/spake2p.csv"), spake)
        self.assertEqual(self.read(out + "/esp-matter-master.csv"), master)
        self.assertEqual(self.read(out + "/esp-matter-config.csv"),
                         "chip-factory,namespace,\ndiscriminator,data,u32\niteration-count,data,u32\n"
                         "salt,data,string\nverifier,data,string\n")
        for name in os.listdir(out):
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(out, name)).st_mode), 0o600, name)
        self.assertEqual(sorted(n for n in os.listdir(out) if n.endswith(".csv")), sorted(names + ["manifest.csv"]))
        # The audit row names the count and the iterations, never a passcode, salt or verifier.
        details = self.rows("SELECT details FROM audit WHERE action = 'device.pair.batch'")
        self.assertEqual(len(details), 1)
        self.assertIn('"iterations":1000', details[0][0])
        self.assertNotIn(manifest[1][8], details[0][0])
        # The note names every file.
        r = self.fk("pair", "--all", "-o", out, "--force", "--scheme", "matter", *VID, *PID, "--iterations", "1000")
        self.assertEqual(r.out, f"wrote {len(ids)} labels, {out}/manifest.csv, {out}/spake2p.csv, "
                                f"{out}/esp-matter-config.csv and {out}/esp-matter-master.csv\n")

    def test_refusals_write_nothing(self):
        self.fk("device", "add", "SN-43")
        label = self.path("label.svg")
        out = self.path("run")
        before = self.snapshot()
        base = ["pair", "--scheme", "matter", *VID, *PID]
        for value in ("999", "100001", "0", "-1", "1e4", "ten"):
            for where in (["SN-42", "-o", label], ["--all", "-o", out]):
                r = self.fails(fk.USAGE, *base, *where, "--iterations", value)
                if value in ("999", "100001", "0", "-1"):
                    self.assertEqual(r.err, f"fleetkey: error: --iterations {value} is out of range (1000-100000)\n")
                self.assertFalse(os.path.exists(label) or os.path.exists(out), (value, where))
        for bad in ("0", "11111111", "12345678", "87654321", "99999999", "100000000"):
            path = self.write_private("pc-" + bad, bad + "\n")
            r = self.fails(fk.USAGE, *base, "SN-42", "-o", label, "--passcode-file", path)
            self.assertIn("--passcode-file refused", r.err)
            self.assertFalse(os.path.exists(label))
        self.assertEqual(self.snapshot(), before)
        r = self.fails(fk.USAGE, "pair", "SN-42", "--iterations", "1000")
        self.assertIn("--iterations need --scheme matter", r.err)
        # A run that fails part-way (a bad discriminator label) leaves no label and no factory file.
        self.fk("device", "add", "SN-44", "--label", "discriminator=4096")
        before = self.snapshot()
        r = self.fails(fk.USAGE, *base, "--all", "-o", out, "--iterations", "1000")
        self.assertIn("discriminator", r.err)
        self.assertFalse(os.path.exists(out))
        self.assertEqual(self.snapshot(), before)


if __name__ == "__main__":
    fk.main()
