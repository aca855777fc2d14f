"""fleetkey master backup | restore: Shamir shares of the key ring, checked against an independent Python
implementation of fleetkey-formats(5), MASTER KEY SHARES (log/antilog tables where fleetkey multiplies bit by
bit; Python's base64 and hashlib)."""
import base64
import hashlib
import itertools
import os
import re
import secrets
import stat

import fk
from fk import CONFLICT, KEY, USAGE

# GF(2^8) with the AES polynomial 0x11b, by tables of powers of the generator 3.
EXP, LOG = [0] * 512, [0] * 256
_v = 1
for _i in range(255):
    EXP[_i] = EXP[_i + 255] = _v
    LOG[_v] = _i
    _v ^= (_v << 1) ^ (0x11b if _v & 0x80 else 0)  # times 3 = times 2 XOR itself
    _v &= 0xff


def gf_mul(a, b):
    return 0 if a == 0 or b == 0 else EXP[LOG[a] + LOG[b]]


def gf_div(a, b):
    assert b != 0
    return 0 if a == 0 else EXP[LOG[a] + 255 - LOG[b]]


def combine(points):
    """points: [(x, y bytes)] -> the bytes at x = 0, by Lagrange interpolation."""
    out = bytearray(len(points[0][1]))
    for i, (xi, yi) in enumerate(points):
        li = 1
        for m, (xm, _) in enumerate(points):
            if m != i:
                li = gf_mul(li, gf_div(xm, xm ^ xi))
        for j, b in enumerate(yi):
            out[j] ^= gf_mul(b, li)
    return bytes(out)


def split(secret, n, k):
    coeffs = [[secrets.randbelow(256) for _ in range(k - 1)] for _ in secret]
    shares = []
    for x in range(1, n + 1):
        y = bytearray()
        for s, cs in zip(secret, coeffs):
            acc, power = s, 1
            for c in cs:
                power = gf_mul(power, x)
                acc ^= gf_mul(c, power)
            y.append(acc)
        shares.append((x, bytes(y)))
    return shares


def share_bytes(backup_id, k, n, x, y):
    body = bytes([1]) + backup_id + bytes([k, n, x]) + len(y).to_bytes(2, "big") + y
    return body + hashlib.sha256(body).digest()[:4]


def b32(data):
    return base64.b32encode(data).decode().rstrip("=")


def parse(text):
    """A share file's text -> dict, as the page says a reader does."""
    chars = "".join(line for line in text.splitlines() if not line.lstrip(" \t").startswith("#"))
    chars = re.sub(r"[ \t\r-]", "", chars).upper()
    data = base64.b32decode(chars + "=" * (-len(chars) % 8))
    body, check = data[:-4], data[-4:]
    assert hashlib.sha256(body).digest()[:4] == check
    length = int.from_bytes(body[12:14], "big")
    assert body[0] == 1 and len(body) == 14 + length
    return {"id": body[1:9].hex(), "k": body[9], "n": body[10], "x": body[11], "y": body[14:], "b32": chars}


def paper(data, comment="# a share\n"):
    """The layout master backup prints: groups of 4, 8 a line."""
    chars = b32(data)
    groups = [chars[i:i + 4] for i in range(0, len(chars), 4)]
    return comment + "".join(" ".join(groups[i:i + 8]) + "\n" for i in range(0, len(groups), 8))


class BackupTest(fk.FleetTest):
    def key_ring(self, path=None):
        """The plaintext of an unencrypted key file: its payload."""
        text = self.read(path or self.key_path)
        return base64.b64decode(re.search(r"^payload: (\S+)$", text, re.M).group(1))

    def backup(self, *args):
        out = self.fk("master", "backup", *args).out
        return [parse(block) for block in out.split("\n\n")], out

    def share_files(self, n=3, k=2, *extra, pre=()):
        d = os.path.join(self.tmp, "shares")
        self.fk(*pre, "master", "backup", "--shares", str(n), "--threshold", str(k), "-o", d, *extra)
        return d, [os.path.join(d, f"share-{i}.txt") for i in range(1, n + 1)]

    def test_any_threshold_shares_give_the_key_ring_in_python(self):
        self.init_test_key()
        self.fk("master", "rotate")
        self.fk("master", "rotate")
        ring = self.key_ring()
        self.assertEqual(len(ring), 4 + 1 + 1 + 4 + 2 + 3 * 44 + 2 + 32)
        shares, out = self.backup("--shares", "5", "--threshold", "3")
        self.assertEqual([s["x"] for s in shares], [1, 2, 3, 4, 5])
        self.assertEqual({(s["id"], s["k"], s["n"], len(s["y"])) for s in shares},
                         {(shares[0]["id"], 3, 5, len(ring))})
        for subset in itertools.combinations(shares, 3):
            self.assertEqual(combine([(s["x"], s["y"]) for s in subset]), ring)
        for subset in itertools.combinations(shares, 2):
            self.assertNotEqual(combine([(s["x"], s["y"]) for s in subset]), ring)
        self.assertEqual(combine([(s["x"], s["y"]) for s in shares]), ring)
        # The layout, exactly: a comment, then groups of 4, 8 a line, blocks separated by a blank line.
        blocks = out.split("\n\n")
        for s, block in zip(shares, blocks):
            data = share_bytes(bytes.fromhex(s["id"]), 3, 5, s["x"], s["y"])
            comment = (f"# fleetkey master key share {s['x']} of 5, backup {s['id']}: any 3 of the 5 shares "
                       f"restore the key\n")
            self.assertEqual(block + ("" if block.endswith("\n") else "\n"), paper(data, comment))
        self.assertTrue(out.endswith("\n") and not out.endswith("\n\n"))
        # A fresh backup has another id and other shares.
        again, _ = self.backup("--shares", "5", "--threshold", "3")
        self.assertNotEqual(again[0]["id"], shares[0]["id"])
        self.assertNotEqual(again[0]["y"], shares[0]["y"])

    def test_json_lines(self):
        self.init_test_key()
        lines = self.fk("--json", "master", "backup", "--shares", "3", "--threshold", "2").jsonl()
        self.assertEqual([(j["index"], j["shares"], j["threshold"]) for j in lines], [(1, 3, 2), (2, 3, 2), (3, 3, 2)])
        self.assertEqual([list(j) for j in lines], [["backup", "index", "shares", "threshold", "share"]] * 3)
        parsed = [parse(j["share"]) for j in lines]
        self.assertEqual({p["id"] for p in parsed}, {lines[0]["backup"]})
        self.assertEqual(combine([(p["x"], p["y"]) for p in parsed[1:]]), self.key_ring())

    @fk.sqlite_only("restores into a home without a registry; a PostgreSQL location always names one")
    def test_python_shares_restore_in_fleetkey(self):
        """Shares made by the Python implementation, written in lower case with dashes, restore the ring."""
        self.init_test_key()
        self.fk("master", "rotate")
        ring = self.key_ring()
        backup_id = secrets.token_bytes(8)
        files = []
        for x, y in split(ring, 4, 3):
            text = "# typed from paper\n" + "-".join(re.findall(".{1,5}", b32(share_bytes(backup_id, 3, 4, x, y))))
            files.append(self.write_private(f"py-{x}", text.lower() + "\n\n"))
        other = os.path.join(self.tmp, "other")
        r = self.fk("--home", other, "master", "restore", "--no-passphrase", files[3], files[0], files[2])
        key2 = os.path.join(other, "master.key")
        self.assertEqual(self.key_ring(key2), ring)
        fp = self.fk("--json", "master", "list").jsonl()[1]["fingerprint"]
        self.assertEqual(r.out, f"restored 2 master key versions from backup {backup_id.hex()} to {key2} "
                                f"(unencrypted, TEST KEY)\ncurrent version 2, fingerprint {fp}\n")
        self.assertEqual(stat.S_IMODE(os.stat(key2).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(other).st_mode), 0o700)

    @fk.unittest.skipUnless(fk.PG_STATE, "PostgreSQL only: the twin of test_python_shares_restore_in_fleetkey")
    def test_python_shares_restore_in_fleetkey_on_postgresql(self):
        """A PostgreSQL location always names a registry: a database without one is refused (exit 6, nothing
        written), the fleet's own registry checks the ring."""
        self.init_test_key()
        self.fk("master", "rotate")
        ring = self.key_ring()
        backup_id = secrets.token_bytes(8)
        files = []
        for x, y in split(ring, 4, 3):
            text = "# typed from paper\n" + "-".join(re.findall(".{1,5}", b32(share_bytes(backup_id, 3, 4, x, y))))
            files.append(self.write_private(f"py-{x}", text.lower() + "\n\n"))
        other = os.path.join(self.tmp, "other")
        empty = fk.pg_new_database(self)
        r = self.fails(fk.REGISTRY, "--home", other, "--registry", empty, "master", "restore", "--no-passphrase",
                       files[3], files[0], files[2])
        self.assertEqual(r.err, f"fleetkey: error: no registry at {empty} (run fleetkey init, or pass --registry)\n")
        self.assertFalse(os.path.exists(os.path.join(other, "master.key")))
        r = self.fk("--home", other, "--registry", self.registry_path, "master", "restore", "--no-passphrase",
                    files[3], files[0], files[2])
        key2 = os.path.join(other, "master.key")
        self.assertEqual(self.key_ring(key2), ring)
        fp = self.fk("--json", "master", "list").jsonl()[1]["fingerprint"]
        self.assertEqual(r.out, f"restored 2 master key versions from backup {backup_id.hex()} to {key2} "
                                f"(unencrypted, TEST KEY)\ncurrent version 2, fingerprint {fp} (matches the registry)\n")
        self.assertEqual(self.rows("SELECT action FROM audit ORDER BY id DESC LIMIT 1"), [("master.restore",)])

    def test_round_trip_with_the_registry_and_qr_codes(self):
        pf = self.write_private("pass", "pw\n")
        self.fk("--passphrase-file", pf, "init", "--kdf", "interactive")
        self.fk("--passphrase-file", pf, "device", "add", "SN-1")
        before = self.fk("--passphrase-file", pf, "device", "key", "SN-1").out
        d, files = self.share_files(4, 2, "--qr", "png", pre=("--passphrase-file", pf))
        # Without the passphrase there is no backup.
        self.fails(KEY, "master", "backup", "--shares", "2", "--threshold", "2")
        self.assertEqual(sorted(os.listdir(d)), sorted([f"share-{i}.{e}" for i in range(1, 5) for e in ("txt", "png")]))
        self.assertEqual(stat.S_IMODE(os.stat(d).st_mode), 0o700)
        for name in os.listdir(d):
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(d, name)).st_mode), 0o600)
        texts = [parse(self.read(f)) for f in files]
        self.assertEqual(fk.zbar(*(f[:-3] + "png" for f in files)), [t["b32"] for t in texts])
        os.rename(self.key_path, self.key_path + ".old")
        self.fails(KEY, "master", "restore", files[1])  # one share of two
        self.assertFalse(os.path.exists(self.key_path))
        # A scanned QR code, saved as it is, is a share file.
        scanned = self.write_private("scanned", fk.zbar(files[3][:-3] + "png")[0] + "\n")
        pf2 = self.write_private("pass2", "new pw\n")
        r = self.fk("--passphrase-file", pf2, "master", "restore", "--kdf", "interactive", files[1], scanned)
        self.assertRegex(r.out, rf"^restored 1 master key version from backup {texts[0]['id']} to {self.key_path} "
                                r"\(encrypted\)\ncurrent version 1, fingerprint [0-9a-f]{32} \(matches the registry\)\n$")
        self.assertIn("encryption: xchacha20poly1305\n", self.read(self.key_path))
        self.assertEqual(self.fk("--passphrase-file", pf2, "device", "key", "SN-1").out, before)
        self.fails(KEY, "--passphrase-file", pf, "device", "key", "SN-1")
        events = self.rows("SELECT action, subject, details FROM audit WHERE action LIKE 'master.%'")
        self.assertEqual([(a, s) for a, s, _ in events], [("master.backup", "master"), ("master.restore", "master")])
        fp = self.fk("--json", "master", "list").jsonl()[0]["fingerprint"]
        self.assertEqual(events[-2][2], f'{{"backup":"{texts[0]["id"]}","fingerprint":"{fp}","shares":4,'
                                        f'"threshold":2,"versions":1}}')
        self.assertEqual(events[-1][2], f'{{"backup":"{texts[0]["id"]}","encrypted":true,"fingerprint":"{fp}",'
                                        f'"versions":1}}')

    def test_svg_qr_codes(self):
        self.init_test_key()
        _, files = self.share_files(2, 2, "--qr", "svg")
        self.assertIn("<svg", self.read(files[0][:-3] + "svg"))

    def test_refusals(self):
        self.init_test_key()
        snap = self.snapshot()
        for args, code, msg in [
            (["--shares", "3", "--threshold", "1"], USAGE, "--threshold must be at least 2"),
            (["--shares", "2", "--threshold", "3"], USAGE, "--threshold must be at least 2"),
            (["--shares", "256", "--threshold", "3"], USAGE, "--shares at most 255"),
            (["--shares", "3", "--threshold", "2", "--qr", "png"], USAGE, "--qr needs -o DIR"),
            (["--shares", "3", "--threshold", "2", "-o", self.home], CONFLICT, "already exists"),
            (["--shares", "3", "--threshold", "2", "-o", os.path.join(self.tmp, "no", "dir")], fk.FAILURE,
             "cannot create"),
        ]:
            r = self.fails(code, "master", "backup", *args)
            self.assertIn(msg, r.err)
        self.assertEqual(self.snapshot(), snap)  # no master.backup event for a backup that failed
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "no")))

    def test_restore_refusals(self):
        self.init_test_key()
        _, files = self.share_files(3, 2)
        d2 = os.path.join(self.tmp, "second")
        self.fk("master", "backup", "--shares", "3", "--threshold", "2", "-o", d2)
        second = [os.path.join(d2, f"share-{i}.txt") for i in (1, 2, 3)]
        # An existing key file is never replaced.
        r = self.fails(CONFLICT, "master", "restore", files[0], files[1])
        self.assertIn("already exists", r.err)
        os.rename(self.key_path, self.key_path + ".old")
        id1, id2 = parse(self.read(files[0]))["id"], parse(self.read(second[0]))["id"]
        r = self.fails(KEY, "master", "restore", "--no-passphrase", files[0], second[1])
        self.assertEqual(r.err, f"fleetkey: error: {files[0]} is from backup {id1} and {second[1]} from backup {id2}: "
                                "shares of different backups do not combine\n")
        r = self.fails(KEY, "master", "restore", "--no-passphrase", files[0])
        self.assertEqual(r.err, f"fleetkey: error: backup {id1} needs 2 shares to restore the master key, 1 given\n")
        r = self.fails(KEY, "master", "restore", "--no-passphrase", files[0], files[0])
        self.assertEqual(r.err, f"fleetkey: error: {files[0]} and {files[0]} are both share 1: 2 different shares are "
                                "needed\n")
        # One character mistyped, anywhere: refused by the checksum (or as not base32 at all).
        text = self.read(files[1])
        lines = text.split("\n")
        for pos in range(0, len(lines[1]), 3):
            if lines[1][pos] == " ":
                continue
            bad = list(lines[1])
            bad[pos] = "A" if bad[pos] != "A" else "B"
            path = os.path.join(self.tmp, f"typo-{pos}")
            if os.path.exists(path):
                os.unlink(path)
            self.write_private(f"typo-{pos}", "\n".join([lines[0], "".join(bad)] + lines[2:]))
            r = self.fails(KEY, "master", "restore", "--no-passphrase", files[0], path)
            self.assertEqual(r.err, f"fleetkey: error: {path}: the share is mistyped or damaged (its checksum does not "
                                    "match)\n")
        dropped = self.write_private("dropped", text[:-3] + "\n")
        r = self.fails(KEY, "master", "restore", "--no-passphrase", files[0], dropped)
        self.assertIn("mistyped or damaged", r.err)
        junk = self.write_private("junk", "hello, world\n")
        r = self.fails(KEY, "master", "restore", "--no-passphrase", files[0], junk)
        self.assertIn("not a fleetkey master key share", r.err)
        empty = self.write_private("empty", "# nothing\n")
        r = self.fails(KEY, "master", "restore", "--no-passphrase", empty)
        self.assertIn("no share in it", r.err)
        os.chmod(files[2], 0o644)
        self.fails(KEY, "master", "restore", "--no-passphrase", files[0], files[2])
        self.fails(USAGE, "master", "restore", "--no-passphrase")  # no share, no terminal
        self.assertFalse(os.path.exists(self.key_path))
        # Shares of another fleet's key do not belong to this registry: nothing is written.
        other = os.path.join(self.tmp, "other")
        self.fk("--home", other, "init", "--no-passphrase")
        od = os.path.join(self.tmp, "other-shares")
        self.fk("--home", other, "master", "backup", "--shares", "2", "--threshold", "2", "-o", od)
        snap = self.snapshot()
        r = self.fails(KEY, "master", "restore", "--no-passphrase", *(os.path.join(od, f"share-{i}.txt") for i in (1, 2)))
        self.assertIn(f"does not belong to registry {self.registry_path} (version 1 has another fingerprint)", r.err)
        self.assertFalse(os.path.exists(self.key_path))
        self.assertEqual(self.snapshot(), snap)
        # The right shares still work after all that.
        self.fk("master", "restore", "--no-passphrase", files[1], files[0])
        self.assertEqual(self.read(self.key_path), self.read(self.key_path + ".old"))

    def test_restore_typed_on_a_terminal(self):
        self.init_test_key()
        shares, _ = self.backup("--shares", "3", "--threshold", "2")
        os.rename(self.key_path, self.key_path + ".old")
        rc, out = self.run_on_pty(["master", "restore", "--kdf", "interactive"],
                                  [shares[2]["b32"].lower(), shares[0]["b32"], "pw", "pw"])
        self.assertEqual(rc, 0, out)
        self.assertIn("Share 1 of 2 or more (base32, spaces ignored): ", out)
        self.assertIn("Share 2 of 2 (base32, spaces ignored): ", out)
        for s in shares:
            self.assertNotIn(s["b32"], out)  # typed with echo off
        pf = self.write_private("pass", "pw\n")
        self.fk("--passphrase-file", pf, "device", "add", "SN-1")


if __name__ == "__main__":
    fk.main()
