"""pair: PINs and Matter codes against an independent Python implementation of fleetkey-pairing(5),
QR renderings read back by zbarimg and compared module by module, decode, --rotate and production runs."""
import csv
import os
import re
import resource
import shutil
import signal
import stat
import struct
import subprocess
import unittest
import zlib

import fk
import reference
from reference import hkdf_expand, hkdf_extract, info

SEED = bytes.fromhex(fk.TEST_SEED)
MATTER_VECTORS = [  # connectedhomeip setup payload tests
    dict(vendor=0xFFF1, product=0x8000, flow=0, discovery=2, discriminator=3840, passcode=20202021,
         qr="MT:Y.K9042C00KA0648G00", manual="34970112332"),
    dict(vendor=0, product=0, flow=0, discovery=4, discriminator=3840, passcode=20202021,
         qr="MT:00000CQM00KA0648G00", manual="34970112332"),
]
INVALID_PASSCODES = [0, 11111111, 22222222, 33333333, 44444444, 55555555, 66666666, 77777777, 88888888,
                     99999999, 12345678, 87654321]


# --- the reference implementation, written from fleetkey-pairing(5) and fleetkey-formats(5) ---

def device_prk(device, seed=SEED):
    return reference.device_prk(reference.device_key(reference.test_master_key(seed), device))


def sample(prk, label, counter, bound, accept):
    stream = hkdf_expand(prk, info(label, counter), 8160)
    limit = (2**64 // bound) * bound
    for at in range(0, len(stream), 8):
        w = int.from_bytes(stream[at:at + 8], "big")
        if w < limit and accept(w % bound):
            return w % bound
    raise AssertionError("stream exhausted")


def trivial(pin):
    d = [int(c) for c in pin]
    steps = {(b - a) % 10 for a, b in zip(d, d[1:])}
    return len(steps) == 1 and steps <= {0, 1, 9}


VERHOEFF_D = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5], [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
              [3, 4, 0, 1, 2, 8, 9, 5, 6, 7], [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
              [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3], [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
              [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]]
VERHOEFF_P = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4]]
for _ in range(6):
    VERHOEFF_P.append([VERHOEFF_P[1][VERHOEFF_P[-1][i]] for i in range(10)])
VERHOEFF_INV = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9]


def verhoeff(digits):
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = VERHOEFF_D[c][VERHOEFF_P[(i + 1) % 8][int(ch)]]
    return str(VERHOEFF_INV[c])


def pin(device, counter, digits=8):
    v = sample(device_prk(device), "pairing", counter, 10**digits, lambda v: not trivial("%0*d" % (digits, v)))
    p = "%0*d" % (digits, v)
    return p + verhoeff(p)


def bad_passcode(p):
    return p == 0 or p > 99999998 or p % 11111111 == 0 or p in (12345678, 87654321)


def passcode(device, counter):
    return sample(device_prk(device), "pairing-matter-passcode", counter, 10**8, lambda v: not bad_passcode(v))


def discriminator(device, counter):
    return sample(device_prk(device), "pairing-matter-discriminator", counter, 4096, lambda v: True)


B38 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-."


def matter_qr(vendor, product, flow, discovery, discriminator, passcode):
    v = (vendor << 3) | (product << 19) | (flow << 35) | (discovery << 37) | (discriminator << 45) | (passcode << 57)
    data = v.to_bytes(11, "little")
    out = ""
    for i in range(0, 11, 3):
        chunk = data[i:i + 3]
        n = int.from_bytes(chunk, "little")
        for _ in range({3: 5, 2: 4, 1: 2}[len(chunk)]):
            out += B38[n % 38]
            n //= 38
    return "MT:" + out


def matter_manual(vendor, product, flow, discriminator, passcode, **_):
    short = discriminator >> 8
    long_code = flow != 0
    s = "%d%05d%04d" % ((4 if long_code else 0) | short >> 2, (short & 3) << 14 | passcode & 0x3FFF, passcode >> 14)
    if long_code:
        s += "%05d%05d" % (vendor, product)
    return s + verhoeff(s)


# --- QR read-back helpers ---

def write_pgm(path, matrix, scale=4, margin=4):
    n = len(matrix)
    side = (n + 2 * margin) * scale
    px = bytearray()
    for y in range(side):
        for x in range(side):
            my, mx = y // scale - margin, x // scale - margin
            px.append(0 if 0 <= mx < n and 0 <= my < n and matrix[my][mx] else 255)
    with open(path, "wb") as f:
        f.write(b"P5 %d %d 255\n" % (side, side) + bytes(px))


def qrencode_matrix(payload, level="M"):
    """The matrix from the qrencode command (same mode choice: case-sensitive, automatic)."""
    lines = subprocess.run(["qrencode", "-t", "ASCII", "-m", "0", "-l", level, payload], capture_output=True,
                           text=True, check=True).stdout.splitlines()
    return [[line[i:i + 2] == "##" for i in range(0, len(line), 2)] for line in lines]


def parse_utf8(text, margin):
    """Half blocks back to modules: drawn halves are light, blank halves dark; strips the quiet zone."""
    rows = []
    for line in text.splitlines():
        upper, lower = [], []
        for ch in line:
            assert ch in " \u2580\u2584\u2588", repr(ch)
            upper.append(ch not in "\u2580\u2588")  # dark when not drawn
            lower.append(ch not in "\u2584\u2588")
        rows += [upper, lower]
    side = len(rows[0])
    rows = rows[:side]  # an odd height leaves a blank lower half
    for y, row in enumerate(rows):
        for x, dark in enumerate(row):
            if x < margin or y < margin or x >= side - margin or y >= side - margin:
                assert not dark, f"quiet zone not light at {x},{y}"
    return [row[margin:side - margin] for row in rows[margin:side - margin]]


def parse_ansi(text, margin):
    rows = []
    for line in text.splitlines():
        upper, lower = [], []
        fg = bg = None
        for m in re.finditer(r"\x1b\[(\d+);(\d+)m|\x1b\[0m|(\u2580)", line):
            if m.group(1):
                fg, bg = int(m.group(1)), int(m.group(2))
            elif m.group(3):
                upper.append(fg == 30)
                lower.append(bg == 40)
        rows += [upper, lower]
    side = len(rows[0])
    rows = rows[:side]
    return [row[margin:side - margin] for row in rows[margin:side - margin]]


def parse_svg(text):
    side = int(re.search(r'viewBox="0 0 (\d+) \d+"', text).group(1))
    m = [[False] * side for _ in range(side)]
    for x, y, run, back in re.findall(r"M(\d+) (\d+)h(\d+)v1h-(\d+)z", re.search(r' d="([^"]*)"', text).group(1)):
        assert run == back
        for i in range(int(run)):
            m[int(y)][int(x) + i] = True
    return m


def svg_from_matrix(matrix, scale=8, margin=4):
    """The SVG fleetkey-pairing(5) RENDERINGS specifies, byte for byte, from a module matrix."""
    n = len(matrix)
    side = n + 2 * margin
    path = ""
    for y, row in enumerate(matrix):
        x = 0
        while x < n:
            if not row[x]:
                x += 1
                continue
            run = 1
            while x + run < n and row[x + run]:
                run += 1
            path += "M%d %dh%dv1h-%dz" % (x + margin, y + margin, run, run)
            x += run
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
            'shape-rendering="crispEdges">\n'
            '<rect width="%d" height="%d" fill="#fff"/>\n'
            '<path fill="#000" d="%s"/>\n'
            '</svg>\n' % (side * scale, side * scale, side, side, side, side, path))


def png_scanlines(matrix, scale=8, margin=4):
    """The inflated IDAT data fleetkey-pairing(5) RENDERINGS specifies: each pixel row as the filter byte 2
    (Up) and its bytes minus the bytes above; pixels 0 dark, 1 light, the padding bits after the last
    pixel 1."""
    n = len(matrix)
    side = (n + 2 * margin) * scale
    stride = (side + 7) // 8
    module_rows = []
    for my in range(n + 2 * margin):
        bits = ""
        for mx in range(n + 2 * margin):
            y, x = my - margin, mx - margin
            dark = 0 <= x < n and 0 <= y < n and matrix[y][x]
            bits += ("0" if dark else "1") * scale
        bits += "1" * (stride * 8 - side)
        module_rows.append(int(bits, 2).to_bytes(stride, "big"))
    out, above = bytearray(), bytes(stride)
    for y in range(side):
        row = module_rows[y // scale]
        out += b"\x02" + bytes((a - b) & 0xFF for a, b in zip(row, above))
        above = row
    return bytes(out)


def png_chunks(data):
    """[(type, data)] of a PNG file, after checking its signature and each chunk's CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = [], 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        assert struct.unpack(">I", data[at + 8 + length:at + 12 + length])[0] == zlib.crc32(kind + body)
        chunks.append((kind.decode(), body))
        at += 12 + length
    return chunks


def csv_field(text):
    """A manifest field as fleetkey-pairing(5) PRODUCTION RUNS says."""
    if any(c in text for c in ',"\r\n') or text.startswith(" ") or text.endswith(" "):
        return '"' + text.replace('"', '""') + '"'
    return text


def label_name(device, extension):
    """NAME of fleetkey-pairing(5) PRODUCTION RUNS (ids short enough not to be cut)."""
    out = ""
    for i, b in enumerate(device.encode()):
        c = chr(b)
        safe = c.isascii() and (c.isalnum() or c in "_-.") and not (i == 0 and c == ".")
        out += c if safe else "%%%02X" % b
    return out + extension


class PairTest(fk.FleetTest):
    def setUp(self):
        super().setUp()
        self.init_test_key()
        self.fk("device", "add", "SN-42")

    def path(self, name):
        return os.path.join(self.tmp, name)

    def passcode_file(self, content, mode=0o600):
        """A file holding `content`, for --passcode-file; a new name each time."""
        self._passcode_files = getattr(self, "_passcode_files", 0) + 1
        return self.write_private("passcode-%d" % self._passcode_files, content, mode)

    def pair_json(self, *args):
        r = self.fk("--json", "pair", *args)
        self.assertEqual(r.err, fk.TEST_KEY_WARNING)
        return r.json()

    @unittest.skipUnless(fk.static_binary() and shutil.which("cc"), "needs a static fleetkey and a C compiler")
    def test_a_static_fleetkey_refuses_a_libqrencode_built_for_another_glibc(self):
        # The release build loads libqrencode, and with it the shared libc, only if that libc is the
        # version its own static glibc is. A stand-in library says it is glibc 0.0.
        fake = self.path("fake")
        os.mkdir(fake)
        with open(os.path.join(fake, "fake.c"), "w") as f:
            f.write('const char* gnu_get_libc_version(void) { return "0.0"; }\n'
                    "void* QRcode_encodeString(void) { return 0; }\nvoid QRcode_free(void) {}\n")
        subprocess.run(["cc", "-shared", "-fPIC", "-o", os.path.join(fake, "libqrencode.so.4"),
                        os.path.join(fake, "fake.c")], check=True)
        before = self.snapshot()
        r = self.fails(fk.FAILURE, "pair", "SN-42", "--qr", "utf8", env={"LD_LIBRARY_PATH": fake})
        self.assertRegex(r.err, r"fleetkey: error: cannot use libqrencode\.so\.4: fleetkey was linked statically "
                                r"with glibc 2\.[0-9]+ and this system has glibc 0\.0 \(rebuild fleetkey here\)\n$")
        self.assertEqual(self.snapshot(), before)
        # Without the stand-in, the system's libqrencode draws the code.
        self.assertIn("\u2588", self.fk("pair", "SN-42", "--qr", "utf8").out)

    # --- native scheme ---

    def test_pin_matches_reference_implementation(self):
        for digits in (6, 8, 12):
            j = self.pair_json("SN-42", "--pin-digits", str(digits))
            expected = pin("SN-42", 0, digits)
            self.assertEqual(j["pin"], expected)
            self.assertEqual(j["pin_digits"], digits)
            self.assertEqual(j["payload"], f"FK1:{expected}:SN-42")
            groups = [expected[i:i + 4] for i in range(0, digits, 4)] + [expected[-1]]
            groups[-2] = expected[(digits - 1) // 4 * 4:digits]  # the last group stops before the check digit
            self.assertEqual(j["pin_grouped"], "-".join(groups))
            self.assertEqual(j["counter"], 0)
            self.assertIsNone(j["file"])

    def test_human_output_and_quiet(self):
        p = pin("SN-42", 0)
        r = self.fk("pair", "SN-42", "--qr", "none")
        grouped = f"{p[0:4]}-{p[4:8]}-{p[8]}"
        self.assertEqual(r.out, f"device:        SN-42\ncounter:       0\nPIN:           {grouped}\n"
                                f"payload:       FK1:{p}:SN-42\n")
        self.assertEqual(self.fk("-q", "pair", "SN-42", "--qr", "none").out, grouped + "\n")

    def test_pin_digits_out_of_range(self):
        before = self.snapshot()
        for n in ("5", "13"):
            r = self.fails(fk.USAGE, "pair", "SN-42", "--pin-digits", n)
            self.assertIn(f"--pin-digits {n} is out of range (6-12)", r.err)
        self.assertEqual(self.snapshot(), before)

    def test_rotate_bumps_counter_with_audit_and_never_stores_the_pin(self):
        first = self.pair_json("SN-42")["pin"]
        j = self.pair_json("SN-42", "--rotate")
        self.assertEqual(j["counter"], 1)
        self.assertEqual(j["pin"], pin("SN-42", 1))
        self.assertNotEqual(j["pin"], first)
        self.assertEqual(self.pair_json("SN-42")["pin"], pin("SN-42", 1))  # stays until the next rotation
        self.assertEqual(self.rows("SELECT pairing_counter FROM devices WHERE id = 'SN-42'"), [(1,)])
        events = self.rows("SELECT action, subject, details FROM audit WHERE action LIKE 'device.pair%' ORDER BY id")
        self.assertEqual(events, [("device.pair", "SN-42", '{"counter":0,"scheme":"fleetkey"}'),
                                  ("device.pair.rotate", "SN-42", '{"counter":1,"scheme":"fleetkey"}'),
                                  ("device.pair", "SN-42", '{"counter":1,"scheme":"fleetkey"}')])
        self.fk("pair", "SN-42", "--rotate", "--scheme", "matter", "--vendor-id", "1", "--product-id", "2")
        db = self.registry_bytes()
        for secret in (first, j["pin"], pin("SN-42", 1)[:-1], str(passcode("SN-42", 2))):
            self.assertNotIn(secret.encode(), db)

    def test_unknown_and_revoked_devices(self):
        self.fails(fk.NOT_FOUND, "pair", "SN-404")
        self.fk("device", "revoke", "SN-42", "--reason", "lost")
        before = self.snapshot()
        r = self.fails(fk.CONFLICT, "pair", "SN-42", "--rotate")
        self.assertIn('device "SN-42" is revoked', r.err)
        self.assertEqual(self.snapshot(), before)

    def test_device_named_decode(self):
        self.fk("device", "add", "decode")
        j = self.pair_json("--", "decode")
        self.assertEqual(j["device"], "decode")
        self.assertEqual(j["pin"], pin("decode", 0))

    def test_decode_refuses_pairs_own_arguments(self):
        for args, given in ((["SN-42", "--rotate"], "DEVICE"), (["--all", "-o", self.path("zz")], "--output")):
            r = self.fails(fk.USAGE, "pair", *args, "decode", "770369578")
            self.assertEqual(r.err, f"fleetkey: error: pair decode takes none of pair's own arguments and options "
                                    f"({given} given)\n")
        self.assertFalse(os.path.exists(self.path("zz")))

    def test_man_page_worked_example(self):
        """fleetkey-pairing(5)'s worked example, recomputed here and by fleetkey."""
        with open(os.path.join(fk.SOURCE_DIR, "man", "fleetkey-pairing.5"), encoding="utf-8") as f:
            page = f.read()
        block = page.split(".\\\" worked-example-begin\n", 1)[1].split(".\\\" worked-example-end", 1)[0]
        ex = dict(line.split(None, 1) for line in block.splitlines() if not line.startswith("."))
        self.assertEqual(ex["test-seed"], fk.TEST_SEED)  # the seed every test home uses
        device, counter = ex["device"], int(ex["counter"])
        seed = bytes.fromhex(ex["test-seed"])
        mk = hkdf_expand(hkdf_extract(b"fleetkey/v1 test-seed", seed), info("master", 1), 32)
        k_dev = hkdf_expand(hkdf_extract(b"fleetkey/v1", mk), info("device", device), 32)
        self.assertEqual(k_dev.hex(), ex["K_dev"])
        self.assertEqual(device_prk(device).hex(), ex["PRK_dev"])
        self.assertEqual(info("pairing", counter).hex(), ex["info"])
        self.assertEqual(hkdf_expand(device_prk(device), info("pairing", counter), 8).hex(), ex["w0"])
        self.assertEqual(pin(device, counter), ex["code"])
        self.assertEqual(ex["PIN"] + verhoeff(ex["PIN"]), ex["code"])
        j = self.pair_json(device)
        self.assertEqual((j["pin"], j["pin_grouped"], j["payload"]), (ex["code"], ex["shown"], ex["payload"]))
        j = self.pair_json(device, "--scheme", "matter", "--vendor-id", "0xFFF1", "--product-id", "0x8000")
        self.assertEqual((j["passcode"], j["discriminator"]), ("%08d" % int(ex["passcode"]), int(ex["discrim"])))
        self.assertEqual((j["payload"], j["manual_code"]), (ex["matter-qr"], ex["manual"]))
        self.assertEqual(matter_qr(0xFFF1, 0x8000, 0, 2, int(ex["discrim"]), int(ex["passcode"])), ex["matter-qr"])

    # --- QR renderings ---

    def test_png_decodes_to_the_payload(self):
        cases = [("a.png", []), ("b.png", ["--ec", "H", "--scale", "3", "--margin", "1"]),
                 ("c.png", ["--ec", "L", "--scale", "12"]), ("d.label", ["--qr", "png"])]
        expected = f"FK1:{pin('SN-42', 0)}:SN-42"
        for name, extra in cases:
            j = self.pair_json("SN-42", "-o", self.path(name), *extra)
            self.assertEqual(j["file"], self.path(name))
            self.assertEqual(fk.zbar(self.path(name)), [expected], name)
            with open(self.path(name), "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

    def test_existing_output_file(self):
        out = self.path("x.png")
        self.fk("pair", "SN-42", "-o", out)
        self.assertEqual(fk.zbar(out), [f"FK1:{pin('SN-42', 0)}:SN-42"])
        before = self.snapshot()
        self.fails(fk.CONFLICT, "pair", "SN-42", "-o", out, "--rotate")
        self.assertEqual(self.snapshot(), before)  # no rotation without its label
        self.fk("pair", "SN-42", "-o", out, "--rotate", "--force")
        self.assertEqual(fk.zbar(out), [f"FK1:{pin('SN-42', 1)}:SN-42"])
        self.fails(fk.USAGE, "pair", "SN-42", "--qr", "png")  # png needs -o

    def test_an_output_name_that_cannot_be_created_fails_before_the_registry_changes(self):
        # The label is named only after the registry commit, so every reason the name could fail is
        # checked first: the pairing counter and the audit trail stay as they were.
        os.mkdir(self.path("dir.svg"))
        before = self.snapshot()
        r = self.fails(fk.USAGE, "pair", "SN-42", "--rotate", "-o", "")
        self.assertEqual(r.err, fk.TEST_KEY_WARNING + 'fleetkey: error: "" does not name a file\n')
        long_name = self.path("A" * 256 + ".svg")
        r = self.fails(fk.USAGE, "pair", "SN-42", "--rotate", "-o", long_name)
        self.assertEqual(r.err,
                         fk.TEST_KEY_WARNING + f"fleetkey: error: file name longer than 255 bytes: {long_name}\n")
        r = self.fails(fk.FAILURE, "pair", "SN-42", "--rotate", "--force", "-o", self.path("dir.svg"))
        self.assertEqual(r.err, fk.TEST_KEY_WARNING
                         + f"fleetkey: error: cannot replace {self.path('dir.svg')}: it is a directory\n")
        self.assertEqual(self.snapshot(), before)
        self.fk("pair", "SN-42", "--rotate", "-o", self.path("A" * 251 + ".svg"))  # 255 bytes is a name

    def test_utf8_matches_the_matrix_module_by_module(self):
        payload = f"FK1:{pin('SN-42', 0)}:SN-42"
        for level in ("L", "M", "Q", "H"):
            for margin in ("0", "1", "2", "4"):
                r = self.fk("pair", "SN-42", "--ec", level, "--margin", margin)
                art = r.out.split("\n\n", 1)[1]
                matrix = parse_utf8(art, int(margin))
                self.assertEqual(matrix, qrencode_matrix(payload, level), f"ec {level} margin {margin}")
        # And a scanner reads the terminal drawing itself.
        write_pgm(self.path("utf8.pgm"), matrix)
        self.assertEqual(fk.zbar(self.path("utf8.pgm")), [payload])

    def test_ansi_matches_the_matrix(self):
        payload = f"FK1:{pin('SN-42', 0)}:SN-42"
        r = self.fk("pair", "SN-42", "--qr", "ansi")
        art = r.out.split("\n\n", 1)[1]
        self.assertEqual(parse_ansi(art, 2), qrencode_matrix(payload))
        out = self.path("code.txt")
        self.fk("pair", "SN-42", "--qr", "ansi", "--margin", "3", "-o", out)
        with open(out, encoding="utf-8") as f:
            self.assertEqual(parse_ansi(f.read(), 3), qrencode_matrix(payload))

    def test_svg_matches_the_matrix_and_scans(self):
        payload = f"FK1:{pin('SN-42', 0)}:SN-42"
        out = self.path("label.svg")
        self.fk("pair", "SN-42", "-o", out, "--scale", "5")
        with open(out) as f:
            svg = f.read()
        self.assertIn('width="145" height="145" viewBox="0 0 29 29"', svg)  # version 1: (21 + 2*4) * 5
        m = parse_svg(svg)
        inner = [row[4:-4] for row in m[4:-4]]
        self.assertEqual(inner, qrencode_matrix(payload))
        write_pgm(self.path("svg.pgm"), inner)
        self.assertEqual(fk.zbar(self.path("svg.pgm")), [payload])
        # Byte for byte as the man page gives it, rebuilt from qrencode's matrix.
        self.assertEqual(svg, svg_from_matrix(qrencode_matrix(payload), scale=5))
        for level, scale, margin in (("M", None, None), ("L", "1", "0"), ("H", "3", "1"), ("Q", "64", "64")):
            out = self.path("label-%s.svg" % level)
            self.fk("pair", "SN-42", "-o", out, "--ec", level, *(["--scale", scale] if scale else []),
                    *(["--margin", margin] if margin else []))
            with open(out, "rb") as f:
                self.assertEqual(f.read().decode("utf-8"),
                                 svg_from_matrix(qrencode_matrix(payload, level), int(scale or 8), int(margin or 4)))

    # --- Matter ---

    def test_matter_vectors(self):
        for v in MATTER_VECTORS:
            out = self.path("m%d.png" % v["discovery"])
            j = self.pair_json("SN-42", "--scheme", "matter", "--vendor-id", str(v["vendor"]), "--product-id",
                               hex(v["product"]), "--flow", str(v["flow"]), "--discovery", str(v["discovery"]),
                               "--discriminator", str(v["discriminator"]), "--passcode-file",
                               self.passcode_file("%d\n" % v["passcode"]), "-o", out)
            self.assertEqual(j["payload"], v["qr"])
            self.assertEqual(j["manual_code"], v["manual"])
            self.assertEqual(j["manual_code_grouped"], "3497-011-2332")
            self.assertEqual((j["vendor_id"], j["product_id"], j["discriminator"], j["passcode"]),
                             (v["vendor"], v["product"], v["discriminator"], "%08d" % v["passcode"]))
            self.assertEqual(fk.zbar(out), [v["qr"]])
            self.assertEqual(matter_qr(v["vendor"], v["product"], v["flow"], v["discovery"], v["discriminator"],
                                       v["passcode"]), v["qr"])  # the reference agrees with the vectors too

    def test_matter_derived_passcode_and_discriminator(self):
        self.fk("device", "add", "LOCK-1", "--label", "vendor_id=0xFFF1", "--label", "product_id=32769")
        for counter, extra in ((0, []), (1, ["--rotate"])):
            j = self.pair_json("LOCK-1", "--scheme", "matter", *extra)
            pc, disc = passcode("LOCK-1", counter), discriminator("LOCK-1", counter)
            self.assertEqual((j["passcode"], j["discriminator"], j["vendor_id"], j["product_id"], j["discovery"]),
                             ("%08d" % pc, disc, 0xFFF1, 32769, 2))
            self.assertEqual(j["payload"], matter_qr(0xFFF1, 32769, 0, 2, disc, pc))
            self.assertEqual(j["manual_code"], matter_manual(0xFFF1, 32769, 0, disc, pc))
        # Options override labels; a flow other than standard gives the 21-digit code.
        j = self.pair_json("LOCK-1", "--scheme", "matter", "--vendor-id", "7", "--flow", "2", "--discovery", "6")
        self.assertEqual(j["manual_code"], matter_manual(7, 32769, 2, j["discriminator"], int(j["passcode"])))
        self.assertEqual(len(j["manual_code"]), 21)
        self.assertEqual(j["payload"], matter_qr(7, 32769, 2, 6, j["discriminator"], int(j["passcode"])))

    def test_matter_refusals(self):
        before = self.snapshot()
        base = ["pair", "SN-42", "--scheme", "matter", "--vendor-id", "1", "--product-id", "2"]
        for bad in INVALID_PASSCODES + [100000000]:
            r = self.fails(fk.USAGE, *base, "--passcode-file", self.passcode_file(str(bad)))
            self.assertRegex(r.err, r"--passcode-file refused: passcode %d is " % bad)
        r = self.fails(fk.USAGE, "pair", "SN-42", "--scheme", "matter", "--product-id", "2")
        self.assertIn('--scheme matter needs --vendor-id (or a vendor_id label on device "SN-42")', r.err)
        self.fails(fk.USAGE, *base, "--discriminator", "4096")
        self.fails(fk.USAGE, *base, "--flow", "3")
        self.fails(fk.USAGE, *base, "--discovery", "0")
        self.fails(fk.USAGE, *base, "--vendor-id", "0x10000")
        self.fails(fk.USAGE, *base, "--vendor-id", "12z")
        r = self.fails(fk.USAGE, "pair", "SN-42", "--vendor-id", "1")
        self.assertIn("need --scheme matter", r.err)
        self.assertEqual(self.snapshot(), before)

    def test_passcode_comes_from_a_private_file_never_from_argv(self):
        base = ["pair", "SN-42", "--scheme", "matter", "--vendor-id", "0xFFF1", "--product-id", "0x8000",
                "--discriminator", "3840", "--qr", "none"]
        # The first line only, CR LF or LF, decimal or hexadecimal.
        for content in ("20202021\n", "20202021", "20202021\r\nsecond line\n", "0x1344225\n"):
            j = self.pair_json(*base[1:], "--passcode-file", self.passcode_file(content))
            self.assertEqual((j["passcode"], j["payload"], j["manual_code"]),
                             ("20202021", "MT:Y.K9042C00KA0648G00", "34970112332"), content)
        before = self.snapshot()
        # Group- or world-readable: refused like a passphrase file, and nothing changes.
        for mode in (0o640, 0o604):
            path = self.passcode_file("20202021\n", mode)
            r = self.fails(fk.KEY, *base, "--passcode-file", path)
            self.assertEqual(r.err, "fleetkey: error: passcode file %s is accessible by group or others (mode %04o); "
                             "fix it with: chmod 600 %s\n" % (path, mode, path))
        r = self.fails(fk.KEY, *base, "--passcode-file", self.path("missing"))
        self.assertIn("passcode file %s" % self.path("missing"), r.err)
        r = self.fails(fk.USAGE, *base, "--passcode-file", self.passcode_file("\n20202021\n"))
        self.assertIn("holds no passcode on its first line", r.err)
        # A first line that is not a number is not quoted: it may be a mistyped secret.
        r = self.fails(fk.USAGE, *base, "--passcode-file", self.passcode_file("2020 2021\n"))
        self.assertTrue(r.err.endswith("fleetkey: error: --passcode-file refused: its first line is not a number "
                                       "(decimal, or hexadecimal with 0x) from 1 to 99999998\n"), r.err)
        self.assertNotIn("2020", r.err)
        r = self.fails(fk.USAGE, "pair", "SN-42", "--passcode-file", self.passcode_file("20202021\n"))
        self.assertIn("--passcode-file, --flow, --discovery and --iterations need --scheme matter", r.err)
        # The option that put the passcode on the command line is gone.
        r = self.fails(fk.USAGE, *base, "--passcode", "20202021")
        self.assertIn("--passcode", r.err)
        self.assertEqual(self.snapshot(), before)
        help_text = self.fk("pair", "--help").out
        self.assertIn("--passcode-file FILE", help_text)
        self.assertNotIn("--passcode N", help_text)

    def test_png_is_up_filtered_rle_as_the_man_page_says(self):
        for scale, window_bits in (("32", [13]), ("2", list(range(8, 13)))):  # a small image: a smaller window
            out = self.path("f%s.png" % scale)
            self.fk("pair", "SN-42", "-o", out, "--scale", scale)
            with open(out, "rb") as f:
                data = f.read()
            chunks, at = {}, 8
            while at < len(data):
                length, kind = struct.unpack(">I4s", data[at:at + 8])
                chunks[kind] = chunks.get(kind, b"") + data[at + 8:at + 8 + length]
                at += 12 + length
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
            self.assertEqual((depth, colour, interlace), (1, 0, 0))  # 1-bit greyscale, not interlaced
            idat = chunks[b"IDAT"]
            self.assertIn((idat[0] >> 4) + 8, window_bits)  # zlib's CINFO
            self.assertEqual(idat[1] >> 6, 0)  # FLEVEL 0: the fastest compression
            raw = zlib.decompress(idat)
            stride = (width + 7) // 8 + 1
            self.assertEqual(len(raw), stride * height)
            self.assertEqual({raw[y * stride] for y in range(height)}, {2})  # every row: the Up filter
        page = " ".join(self.read(os.path.join(fk.SOURCE_DIR, "man/fleetkey-pairing.5")).split())
        self.assertIn("Every row uses the Up filter (PNG filter type 2)", page)
        self.assertIn("They are not specified byte for byte", page)
        self.assertIn("level 1, the Z_RLE strategy, window bits 13 (libpng lowers them for an image that fits a "
                      "smaller window) and memory level 5", page)
        self.assertNotIn("no filtering", page)

    def test_png_chunks_header_and_inflated_rows_are_as_documented(self):
        """fleetkey-pairing(5) RENDERINGS png: IHDR, IDAT..., IEND; IHDR's fields; IDAT chunks of 8192 bytes
        but the last; and the inflated data rebuilt from qrencode's matrix, padding bits included. The
        compressed bytes themselves are zlib's and are not compared."""
        long_id = "D" * 128
        self.fk("device", "add", long_id)
        cases = [("SN-42", "M", 8, None), ("SN-42", "M", 1, 0), ("SN-42", "L", 3, 1), ("SN-42", "Q", 5, 7),
                 ("SN-42", "H", 32, None), (long_id, "H", 64, None)]
        for device, level, scale, margin in cases:
            with self.subTest(device=device[:8], level=level, scale=scale, margin=margin):
                out = self.path("c-%s-%d.png" % (level, scale))
                self.fk("pair", device, "-o", out, "--ec", level, "--scale", str(scale),
                        *(["--margin", str(margin)] if margin is not None else []))
                with open(out, "rb") as f:
                    chunks = png_chunks(f.read())
                kinds = [k for k, _ in chunks]
                self.assertEqual(kinds, ["IHDR"] + ["IDAT"] * (len(kinds) - 2) + ["IEND"])
                idats = [body for k, body in chunks if k == "IDAT"]
                self.assertTrue(all(len(body) == 8192 for body in idats[:-1]), [len(b) for b in idats])
                self.assertLessEqual(len(idats[-1]), 8192)
                self.assertEqual(chunks[-1][1], b"")
                matrix = qrencode_matrix(f"FK1:{pin(device, 0)}:{device}", level)
                side = (len(matrix) + 2 * (4 if margin is None else margin)) * scale
                self.assertEqual(chunks[0][1], struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                self.assertEqual(zlib.decompress(b"".join(idats)),
                                 png_scanlines(matrix, scale, 4 if margin is None else margin))
                if device == long_id:
                    self.assertGreater(len(idats), 1)  # the 8192-byte cut is exercised
                if scale % 8:
                    self.assertNotEqual(side % 8, 0)  # and so are the padding bits

    # --- decode ---

    def decode(self, code, *extra):
        r = self.fk("--json", "pair", "decode", code, *extra)
        self.assertEqual(r.err, "")
        return r.json()

    def test_decode_round_trips_everything_pair_emits(self):
        self.fk("device", "add", "weird id/ü:1")
        for device in ("SN-42", "weird id/ü:1"):
            for digits in ("6", "8", "10", "12"):
                j = self.pair_json(device, "--pin-digits", digits)
                d = self.decode(j["payload"])
                self.assertEqual((d["kind"], d["device"], d["pin"], d["pin_digits"]),
                                 ("fleetkey-payload", device, j["pin"], int(digits)))
                hint = ["--scheme", "fleetkey"] if digits == "10" else []
                for typed in (j["pin"], j["pin_grouped"]):
                    d = self.decode(typed, *hint)
                    self.assertEqual((d["kind"], d["pin"], d["pin_grouped"]),
                                     ("fleetkey-pin", j["pin"], j["pin_grouped"]))
            for flow in ("0", "1", "2"):
                j = self.pair_json(device, "--scheme", "matter", "--vendor-id", "65521", "--product-id", "32768",
                                   "--flow", flow)
                d = self.decode(j["payload"])
                self.assertEqual(d["kind"], "matter-qr")
                for k in ("vendor_id", "product_id", "flow", "discovery", "discriminator", "passcode",
                          "manual_code"):
                    self.assertEqual(d[k], j[k], k)
                for typed in (j["manual_code"], j["manual_code_grouped"]):
                    d = self.decode(typed)
                    self.assertEqual((d["kind"], d["passcode"], d["short_discriminator"], d["digits"]),
                                     ("matter-manual", j["passcode"], j["discriminator"] >> 8,
                                      11 if flow == "0" else 21))
                    if flow != "0":
                        self.assertEqual((d["vendor_id"], d["product_id"]), (65521, 32768))

    def test_decode_human(self):
        r = self.fk("pair", "decode", "MT:Y.K9042C00KA0648G00")
        self.assertEqual(r.out, "kind:          Matter QR payload, version 0\n"
                                "vendor id:     65521 (0xFFF1)\n"
                                "product id:    32768 (0x8000)\n"
                                "flow:          0 (standard)\n"
                                "discovery:     2 (BLE)\n"
                                "discriminator: 3840\n"
                                "passcode:      20202021\n"
                                "manual code:   3497-011-2332\n")
        r = self.fk("pair", "decode", "3497-011-2332")
        self.assertEqual(r.out, "kind:          Matter manual code, 11 digits, check digit ok\n"
                                "discriminator: 15 (upper 4 of its 12 bits: 3840-4095)\n"
                                "passcode:      20202021\n")

    def test_decode_explains_bad_codes(self):
        p = pin("SN-42", 0)
        wrong = p[:-1] + str((int(p[-1]) + 1) % 10)
        cases = [
            (wrong, f"bad check digit: {wrong} ends in {wrong[-1]}, the Verhoeff digit of {p[:-1]} is {p[-1]}"),
            (f"FK1:{wrong}:SN-42", f"bad check digit: {wrong} ends in {wrong[-1]}, the Verhoeff digit of "
                                   f"{p[:-1]} is {p[-1]}"),
            ("12345", "wrong length: 5 digits, a fleetkey code has 7-13 (a PIN of 6-12 and a check digit)"),
            (f"FK1:{p}9999999:SN-42", "wrong length: 16 digits, a fleetkey code has 7-13 (a PIN of 6-12 and a "
                                      "check digit)"),
            ("1234-5678-9012-3456-7890-1", "wrong length: 21 digits, a Matter manual code has 11 or 21"
             if False else None),
            (f"FK2:{p}:SN-42", "unknown fleetkey payload version 2 (this fleetkey reads version 1)"),
            (f"QQ1:{p}:SN-42", 'unknown scheme "QQ" (fleetkey payloads start with "FK1:", Matter ones with "MT:")'),
            ("MT:Y.K9042C00KA0648G0", "base38 text of 18 characters has a final group of 3 (5, 4 or 2 expected)"),
            ("34970112333", "bad check digit: 34970112333 ends in 3, the Verhoeff digit of 3497011233 is 2"),
            ("349701123", "wrong length: 9 digits, a Matter manual code has 11 or 21"),
            ("https://example.com", 'not a pairing payload: expected SCHEME VERSION ":" ("FK1:" or "MT:")'),
        ]
        for code, message in cases:
            if message is None:
                continue
            extra = ["--scheme", "matter"] if code == "349701123" else []
            r = self.fails(fk.USAGE, "pair", "decode", code, *extra)
            self.assertEqual(r.err, f"fleetkey: error: bad pairing code: {message}\n", code)

    # --- production runs ---

    def add_devices(self, ids, *labels):
        for d in ids:
            self.fk("device", "add", d, *labels)

    def read_manifest(self, path):
        with open(path, newline="") as f:
            return list(csv.reader(f))

    def test_all_writes_labels_and_manifest(self):
        ids = ["SN-42"] + ["SN-%03d" % i for i in range(12)] + ["a/b c", ".hidden"]
        self.add_devices(ids[1:])
        self.fk("device", "add", "GONE")
        self.fk("device", "revoke", "GONE", "--reason", "scrapped")
        out = self.path("labels")
        r = self.fk("--json", "pair", "--all", "-o", out, "--jobs", "3")  # threads, even for a few devices
        self.assertEqual(r.json(), {"count": len(ids), "dir": out, "manifest": out + "/manifest.csv",
                                    "scheme": "fleetkey"})
        rows = self.read_manifest(out + "/manifest.csv")
        self.assertEqual(rows[0], ["device", "pin", "manual_code", "payload", "file"])
        by_device = {row[0]: row for row in rows[1:]}
        self.assertEqual(sorted(by_device), sorted(ids))  # active devices only
        self.assertEqual(by_device["a/b c"][4], "a%2Fb%20c.png")
        self.assertEqual(by_device[".hidden"][4], "%2Ehidden.png")
        self.assertEqual(sorted(os.listdir(out)), sorted([row[4] for row in rows[1:]] + ["manifest.csv"]))
        files = [os.path.join(out, row[4]) for row in rows[1:]]
        self.assertEqual(fk.zbar(*files), [row[3] for row in rows[1:]])
        for device, code, manual, payload, _ in rows[1:]:
            self.assertEqual(code, pin(device, 0))
            self.assertEqual(manual, code)
            self.assertEqual(payload, f"FK1:{code}:{device}")
            d = self.decode(payload)
            self.assertEqual((d["device"], d["pin"]), (device, code))
        self.assertEqual(self.rows("SELECT action, subject FROM audit WHERE action = 'device.pair.batch'"),
                         [("device.pair.batch", out)])
        # Not into a non-empty directory, unless forced.
        r = self.fails(fk.CONFLICT, "pair", "--all", "-o", out)
        self.assertIn("is not empty", r.err)
        self.fk("pair", "--all", "-o", out, "--force", "--jobs", "1", "--scale", "2", "--ec", "Q")
        self.assertEqual(self.read_manifest(out + "/manifest.csv"), rows)
        self.assertEqual(fk.zbar(*files), [row[3] for row in rows[1:]])

    def test_manifest_bytes_are_as_documented(self):
        """fleetkey-pairing(5) PRODUCTION RUNS: LF line ends, the header, rows in byte order of the ids
        (--all), quoting only for , " CR LF or a space at either end, Matter passcodes in 8 digits."""
        ids = ["SN-42", " lead", 'say "hi", ok', "trail ", "M-2", ".dot", "x/y", "\u00fc", "Z"]
        self.add_devices(ids[1:])
        order = sorted(ids, key=lambda d: d.encode())
        self.assertEqual(order, [" lead", ".dot", "M-2", "SN-42", "Z", 'say "hi", ok', "trail ", "x/y", "\u00fc"])
        out = self.path("fk")
        self.fk("pair", "--all", "-o", out, "--qr", "svg")
        expected = "device,pin,manual_code,payload,file\n"
        for d in order:
            code = pin(d, 0)
            expected += "%s,%s,%s,%s,%s\n" % (csv_field(d), code, code, csv_field(f"FK1:{code}:{d}"),
                                             csv_field(label_name(d, ".svg")))
        for quoted in ('\n" lead",', '\n"say ""hi"", ok",', ',"FK1:%s:say ""hi"", ok",' % pin('say "hi", ok', 0),
                       '\n"trail ",', ',"FK1:%s:trail ",' % pin("trail ", 0), ',%2Edot.svg\n'):
            self.assertIn(quoted, expected)  # the cases the test is about are there
        with open(os.path.join(out, "manifest.csv"), "rb") as f:
            manifest = f.read()
        self.assertEqual(manifest, expected.encode("utf-8"))
        self.assertNotIn(b"\r", manifest)
        self.assertEqual(self.read_manifest(os.path.join(out, "manifest.csv"))[1:],
                         [[d, pin(d, 0), pin(d, 0), f"FK1:{pin(d, 0)}:{d}", label_name(d, ".svg")] for d in order])
        # Matter: the passcode column in 8 digits with leading zeros, the manual code without hyphens.
        self.assertLess(passcode("M-2", 0), 10**7)
        out = self.path("matter")
        self.fk("pair", "--all", "-o", out, "--scheme", "matter", "--vendor-id", "0xFFF1", "--product-id", "0x8000")
        expected = "device,passcode,manual_code,payload,file,discriminator,iterations,salt,verifier\n"
        manifest = self.read(os.path.join(out, "manifest.csv"), "rb").decode("utf-8")
        for d, line in zip(order, manifest.splitlines()[1:]):
            pc, disc = passcode(d, 0), discriminator(d, 0)
            # The SPAKE2+ columns are checked against Python in test_pair_matter.py; here, their place.
            spake = line.rsplit(",", 3)[1:]
            expected += "%s,%08d,%s,%s,%s,%d,%s\n" % (csv_field(d), pc, matter_manual(0xFFF1, 0x8000, 0, disc, pc),
                                                     csv_field(matter_qr(0xFFF1, 0x8000, 0, 2, disc, pc)),
                                                     csv_field(label_name(d, ".png")), disc, ",".join(spake))
            self.assertEqual(spake[0], "10000")
        self.assertIn("\nM-2,0%d," % passcode("M-2", 0), expected)
        self.assertEqual(manifest, expected)

    def test_force_rewrites_labels_0600_and_never_through_a_link(self):
        ids = ["SN-42", "SN-43", "SN-44"]
        self.add_devices(ids[1:])
        out = self.path("labels")
        self.fk("pair", "--all", "-o", out)
        label = os.path.join(out, "SN-43.png")
        os.chmod(label, 0o644)
        with open(label, "wb") as f:
            f.write(b"an old label, longer than it will be: " * 1000)
        self.fk("pair", "--all", "-o", out, "--force")
        self.assertEqual(stat.S_IMODE(os.stat(label).st_mode), 0o600)
        self.assertEqual(fk.zbar(label), [f"FK1:{pin('SN-43', 0)}:SN-43"])
        for name in os.listdir(out):
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(out, name)).st_mode), 0o600, name)
        # A symbolic link (or a second hard link) where a label goes: refused before any file is
        # written, and the file it points to is untouched.
        target = self.path("elsewhere.txt")
        with open(target, "w") as f:
            f.write("not a label\n")
        os.chmod(target, 0o644)
        os.unlink(label)
        os.symlink(target, label)
        listing = {n: self.read(os.path.join(out, n), "rb") for n in os.listdir(out) if n != "SN-43.png"}
        before = self.snapshot()
        r = self.fails(fk.CONFLICT, "pair", "--all", "-o", out, "--force", "--scale", "2")
        self.assertTrue(r.err.endswith(f"fleetkey: error: {label} is not a regular file with one name: a label is "
                                       "never written into it\n"), r.err)
        self.assertEqual(self.read(target), "not a label\n")
        self.assertEqual(stat.S_IMODE(os.stat(target).st_mode), 0o644)
        self.assertTrue(os.path.islink(label))
        self.assertEqual({n: self.read(os.path.join(out, n), "rb") for n in os.listdir(out) if n != "SN-43.png"},
                         listing)
        self.assertEqual(self.snapshot(), before)
        os.unlink(label)
        os.link(target, label)
        r = self.fails(fk.CONFLICT, "pair", "--all", "-o", out, "--force")
        self.assertIn("is not a regular file with one name", r.err)
        self.assertEqual(self.read(target), "not a label\n")
        self.assertEqual(self.snapshot(), before)

    def test_from_file_matter_svg(self):
        ids = ["M-%d" % i for i in range(5)]
        self.add_devices(ids, "--label", "vendor_id=0xFFF1", "--label", "product_id=0x8001")
        listing = self.path("ids.txt")
        with open(listing, "w") as f:
            f.write("M-3\r\nM-1\n\nM-4\n")
        out = self.path("svg")
        self.fk("pair", "--from", listing, "-o", out, "--scheme", "matter", "--qr", "svg", "--discovery", "4")
        rows = self.read_manifest(out + "/manifest.csv")
        self.assertEqual(rows[0], ["device", "passcode", "manual_code", "payload", "file", "discriminator",
                                   "iterations", "salt", "verifier"])
        self.assertEqual([r[0] for r in rows[1:]], ["M-3", "M-1", "M-4"])  # the file's order
        for device, code, manual, payload, name, disc_column, _, _, _ in rows[1:]:
            self.assertEqual(disc_column, str(discriminator(device, 0)))
            pc, disc = passcode(device, 0), discriminator(device, 0)
            self.assertEqual(code, "%08d" % pc)
            self.assertEqual(manual, matter_manual(0xFFF1, 0x8001, 0, disc, pc))
            self.assertEqual(payload, matter_qr(0xFFF1, 0x8001, 0, 4, disc, pc))
            with open(os.path.join(out, name)) as f:
                m = parse_svg(f.read())
            write_pgm(self.path(name + ".pgm"), [row[4:-4] for row in m[4:-4]])
            self.assertEqual(fk.zbar(self.path(name + ".pgm")), [payload])

    def test_failing_production_run_leaves_nothing(self):
        # The bad label is found by a worker thread, after other labels were written.
        ids = ["F-%02d" % i for i in range(40)]
        self.add_devices(ids, "--label", "vendor_id=1", "--label", "product_id=2")
        self.fk("device", "add", "F-99", "--label", "vendor_id=1", "--label", "product_id=2",
                "--label", "discriminator=4096")
        out = self.path("partial")
        before = self.snapshot()
        r = self.run_fk("pair", "--all", "-o", out, "--scheme", "matter", "--vendor-id", "1", "--product-id", "2",
                        "--jobs", "2")
        self.assertEqual((r.rc, r.out), (fk.USAGE, ""))
        self.assertTrue(r.err.endswith('fleetkey: error: label discriminator of device "F-99" 4096 is out of '
                                       'range (0-4095)\n'), r.err)
        self.assertFalse(os.path.exists(out))
        self.assertEqual(self.snapshot(), before)

    def run_on_full_disk(self, limit, *args):
        """Runs fleetkey as if the disk filled up: no file may grow past `limit` bytes, and a write
        past it fails with EFBIG (SIGXFSZ ignored) as on a full disk. SQLite's 32 KiB shared-memory
        file must fit."""
        def limit_file_size():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        proc = subprocess.run([fk.BIN, *args], capture_output=True, env=self.env, stdin=subprocess.DEVNULL,
                              text=True, timeout=300, preexec_fn=limit_file_size)
        return fk.Run(proc)

    def test_full_disk_while_writing_a_label_leaves_nothing(self):
        # Labels of about 29 KB, and about 43 KB for the 128-byte id, which comes last: the run
        # fails part-way through that label, after the others were written.
        big = "Z" + "y" * 127
        self.add_devices(["SN-1", big])
        args = ("pair", "--all", "--qr", "png", "--ec", "H", "--scale", "64", "--margin", "64", "--jobs", "1")
        roomy = self.path("roomy")
        self.fk(*args, "-o", roomy)
        sizes = {n: os.path.getsize(os.path.join(roomy, n)) for n in os.listdir(roomy)}
        self.assertGreater(sizes[big + ".png"], 36 * 1024)
        self.assertLess(max(sizes["SN-1.png"], sizes["SN-42.png"]), 36 * 1024)
        before = self.snapshot()
        for existing in (False, True):
            out = self.path("full-existing" if existing else "full-new")
            if existing:
                os.mkdir(out)
            r = self.run_on_full_disk(36 * 1024, *args, "-o", out)
            self.assertEqual((r.rc, r.out), (fk.FAILURE, ""), r)
            self.assertEqual(r.err, fk.TEST_KEY_WARNING + f"fleetkey: error: cannot write {out}/{big}.png: File too "
                                                          "large\n")
            if existing:
                self.assertEqual(os.listdir(out), [])  # DIR was there before: emptied, kept
            else:
                self.assertFalse(os.path.exists(out))
        self.assertEqual(self.snapshot(), before)

    def test_full_disk_while_writing_the_manifest_leaves_nothing(self):
        # Small labels, but a manifest of about 50 KB.
        ids = ["M-%03d-" % i + "x" * 122 for i in range(120)]
        listing = self.path("ids.csv")
        with open(listing, "w") as f:
            f.write("id\n" + "".join(i + "\n" for i in ids))
        self.fk("device", "import", listing)
        out = self.path("labels")
        before = self.snapshot()
        r = self.run_on_full_disk(36 * 1024, "pair", "--all", "--qr", "png", "--scale", "1", "--margin", "0",
                                  "-o", out)
        self.assertEqual((r.rc, r.out), (fk.FAILURE, ""), r)
        self.assertEqual(r.err, fk.TEST_KEY_WARNING + f"fleetkey: error: cannot write {out}/manifest.csv: File too "
                                                      "large\n")
        self.assertFalse(os.path.exists(out))
        self.assertEqual(self.snapshot(), before)

    def test_production_run_refusals_change_nothing(self):
        listing = self.path("ids.txt")
        with open(listing, "w") as f:
            f.write("SN-42\nSN-404\n")
        out = self.path("never")
        before = self.snapshot()
        r = self.fails(fk.NOT_FOUND, "pair", "--from", listing, "-o", out)
        self.assertIn(f'{listing}:2: device "SN-404" is not registered', r.err)
        with open(listing, "w") as f:
            f.write("SN-42\nSN-42\n")
        self.fails(fk.USAGE, "pair", "--from", listing, "-o", out)
        self.fails(fk.USAGE, "pair", "--all")                                   # no -o DIR
        self.fails(fk.USAGE, "pair", "--all", "-o", out, "--qr", "utf8")
        self.fails(fk.USAGE, "pair", "--all", "-o", out, "--rotate")
        self.fails(fk.USAGE, "pair", "SN-42", "--all", "-o", out)
        r = self.fails(fk.USAGE, "pair", "--all", "-o", out, "--scheme", "matter", "--vendor-id", "1",
                       "--product-id", "1", "--passcode-file", self.passcode_file("20202021\n"))
        self.assertTrue(r.err.endswith("fleetkey: error: --passcode-file gives one passcode: a production run "
                                       "derives one per device\n"), r.err)
        r = self.fails(fk.USAGE, "pair", "--all", "-o", out, "--scheme", "matter")
        self.assertIn("--scheme matter needs --vendor-id", r.err)
        self.assertFalse(os.path.exists(out))
        self.assertEqual(self.snapshot(), before)


class TerminalTest(fk.FleetTest):
    def test_utf8_on_a_terminal_is_black_on_white_and_plain_in_a_pipe(self):
        """On a terminal the half blocks carry explicit colours, so dark and light terminals show
        the same code; piped, the same code comes without escape sequences."""
        self.init_test_key()
        self.fk("device", "add", "SN-0001")
        piped = self.fk("pair", "SN-0001", "--qr", "utf8").out
        self.assertNotIn("\x1b", piped)
        rc, out = self.run_on_pty(["pair", "SN-0001", "--qr", "utf8"])
        self.assertEqual(rc, 0)
        lines = out.replace("\r\n", "\n").splitlines()
        qr_lines = [line for line in lines if line.startswith("\x1b[30;107m")]
        plain_qr = [line for line in piped.splitlines() if line and set(line) <= set(" \u2580\u2584\u2588")]
        self.assertGreater(len(qr_lines), 10)
        self.assertEqual(len(qr_lines), len(plain_qr))
        self.assertTrue(all(line.endswith("\x1b[0m") for line in qr_lines))


if __name__ == "__main__":
    fk.main()
