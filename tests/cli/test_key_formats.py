"""device key and user key --format c and psk: the exact bytes fleetkey(1), KEY FORMATS, specifies.

The expected text is built here from the rules of the man page, around keys derived by reference.py
(Python's hmac and hashlib), never by fleetkey; the C output is also compiled and run when a C
compiler is installed, and the example in the man page is checked against the binary.
"""
import base64
import hashlib
import os
import re
import shutil
import struct
import subprocess

import fk
import reference

SEED = bytes.fromhex(fk.TEST_SEED)
# Names that need escaping in the C comment: a multibyte character, quotes, a backslash (here
# followed by * and /, which are escaped, so it stays a lone backslash before \x2a), and /* and */.
DEVICE = 'T\u00fcr "7"\\*/'
USER = "Zo\u00eb/*"


def k_dev(device, mk):
    return reference.device_key(mk, device)


def k_user(device, user, epoch, mk):
    return reference.hkdf_expand(reference.device_prk(k_dev(device, mk)), reference.info("user", user, epoch))


def k_purpose(device, purpose, mk):
    return reference.hkdf_expand(reference.device_prk(k_dev(device, mk)), reference.info("purpose", purpose))


def comment_name(name):
    """A device id or user name in the C comment: each byte from 0x20 to 0x7e but * and / as it is,
    every other byte as \\x and two lower-case hex digits."""
    return "".join(chr(b) if 0x20 <= b <= 0x7E and b not in b"*/" else "\\x%02x" % b for b in name.encode())


def c_text(key, kind, device, version, test_key, user=None, epoch=None, purpose=None):
    """--format c, from fleetkey(1)."""
    name = f"fleetkey_{kind}_key"
    if purpose is not None:
        name += "_" + purpose.replace(".", "_").replace("-", "_")
    head = f'/* fleetkey {kind} key for device "{comment_name(device)}"'
    if user is not None:
        head += f', user "{comment_name(user)}" epoch {epoch}'
    if purpose is not None:
        head += f', purpose "{purpose}"'
    head += f", master key v{version}, fingerprint {reference.fingerprint(key)}"
    head += ", TEST KEY */\n" if test_key else " */\n"
    rows = ["    " + ", ".join("0x%02x" % b for b in key[i:i + 8]) for i in range(0, len(key), 8)]
    return (head + f"static const unsigned char {name}[{len(key)}] = {{\n" + ",\n".join(rows)
            + f"\n}};\nstatic const unsigned int {name}_len = {len(key)};\n")


def psk_split(line):
    """The identity and the key of a --format psk line: the key is after the last colon."""
    identity, colon, key = line.rstrip("\n").rpartition(":")
    assert colon and re.fullmatch(r"[0-9a-f]{64}", key), line
    return identity, bytes.fromhex(key)


def master_keys(path):
    """{version: MK} from an unencrypted master key file, read as fleetkey-formats(5) lays it out."""
    with open(path) as f:
        lines = f.read().splitlines()
    fields = dict(line.split(": ", 1) for line in lines[1:])
    assert fields["encryption"] == "none", fields
    plain = base64.b64decode(fields["payload"], validate=True)
    assert hashlib.sha256(plain).hexdigest() == fields["checksum"]
    magic, version, _flags, _current, count = struct.unpack_from(">4sBBIH", plain)
    assert (magic, version) == (b"FKMK", 1)
    keys, at = {}, 12
    for _ in range(count):
        v, _created = struct.unpack_from(">IQ", plain, at)
        keys[v] = plain[at + 12:at + 44]
        at += 44
    return keys


class KeyFormatTest(fk.FleetTest):
    def setUp(self):
        super().setUp()
        self.mk = reference.test_master_key(SEED)

    def key(self, *args):
        return self.fk(*args).out

    def test_man_page_example_is_what_fleetkey_prints(self):
        page = self.read(os.path.join(fk.SOURCE_DIR, "man/fleetkey.1"))
        block = page.split('.\\" key-format-c-begin\n', 1)[1].split('.\\" key-format-c-end', 1)[0]
        example = "".join(line.replace("\\-", "-").replace("\\e", "\\") + "\n"
                          for line in block.splitlines() if not line.startswith("."))
        self.init_test_key()
        self.fk("device", "add", "SN-0001")
        self.assertEqual(example, c_text(k_dev("SN-0001", self.mk), "device", "SN-0001", 1, True))
        self.assertEqual(self.key("device", "key", "SN-0001", "--format", "c"), example)

    def test_c_device_key(self):
        self.init_test_key()
        self.fk("device", "add", DEVICE)
        key = k_dev(DEVICE, self.mk)
        out = self.key("device", "key", DEVICE, "--format", "c")
        self.assertEqual(out, c_text(key, "device", DEVICE, 1, True))
        # The template and the escaping, written out once by hand.
        self.assertEqual(out.splitlines()[0], rf'/* fleetkey device key for device "T\xc3\xbcr "7"\\x2a\x2f", '
                                              rf'master key v1, fingerprint {reference.fingerprint(key)}, TEST KEY */')
        self.assertEqual(out.splitlines()[1:3], ["static const unsigned char fleetkey_device_key[32] = {",
                                                 "    " + ", ".join("0x%02x" % b for b in key[:8]) + ","])
        self.assertEqual(out.splitlines()[-2:], ["};", "static const unsigned int fleetkey_device_key_len = 32;"])

    def test_c_purpose_subkey(self):
        self.init_test_key()
        self.fk("device", "add", DEVICE)
        key = k_purpose(DEVICE, "fw.sig-v2", self.mk)
        out = self.key("device", "key", DEVICE, "--purpose", "fw.sig-v2", "--format", "c")
        self.assertEqual(out, c_text(key, "device", DEVICE, 1, True, purpose="fw.sig-v2"))
        self.assertEqual(out.splitlines()[0], rf'/* fleetkey device key for device "T\xc3\xbcr "7"\\x2a\x2f", '
                                              rf'purpose "fw.sig-v2", master key v1, fingerprint '
                                              rf'{reference.fingerprint(key)}, TEST KEY */')
        self.assertIn("static const unsigned char fleetkey_device_key_fw_sig_v2[32] = {\n", out)

    def test_c_user_key_at_epoch_2(self):
        self.init_test_key()
        self.fk("master", "rotate")  # the device's version, 2, is the one named
        self.fk("device", "add", DEVICE)
        self.fk("user", "add", USER)
        self.fk("user", "grant", USER, "--device", DEVICE, "--role", "owner")
        self.fk("user", "grant", USER, "--device", DEVICE, "--role", "guest")  # replaces it: epoch 2
        key = k_user(DEVICE, USER, 2, reference.test_master_key(SEED, 2))
        out = self.key("user", "key", USER, "--device", DEVICE, "--format", "c")
        self.assertEqual(out, c_text(key, "user", DEVICE, 2, True, user=USER, epoch=2))
        self.assertEqual(out.splitlines()[0], rf'/* fleetkey user key for device "T\xc3\xbcr "7"\\x2a\x2f", '
                                              rf'user "Zo\xc3\xab\x2f\x2a" epoch 2, master key v2, fingerprint '
                                              rf'{reference.fingerprint(key)}, TEST KEY */')
        self.assertIn("static const unsigned char fleetkey_user_key[32] = {\n", out)
        self.assertTrue(out.endswith("\n};\nstatic const unsigned int fleetkey_user_key_len = 32;\n"))

    def test_c_key_of_a_real_master_key_is_not_marked(self):
        self.init_plain()
        self.fk("device", "add", "SN-1")
        [mk] = master_keys(self.key_path).values()
        out = self.key("device", "key", "SN-1", "--format", "c")
        self.assertEqual(out, c_text(k_dev("SN-1", mk), "device", "SN-1", 1, False))
        self.assertNotIn("TEST KEY", out)

    @fk.unittest.skipUnless(shutil.which("cc"), "no C compiler")
    def test_c_output_compiles_to_the_key(self):
        # Whatever the names hold, the comment ends where fleetkey ends it: strict C99 (trigraphs on)
        # and C++ compile it without a warning, and the array holds the key.
        self.init_test_key()
        names = [DEVICE, 'q"\\', "a??/b", "*/x/*", "\\"]
        outs = []
        for d in names:
            self.fk("device", "add", d)
            outs.append((self.key("device", "key", d, "--format", "c"), k_dev(d, self.mk)))
        self.fk("user", "add", USER)
        self.fk("user", "grant", USER, "--device", names[1], "--role", "owner")
        outs.append((self.key("user", "key", USER, "--device", names[1], "--format", "c"),
                     k_user(names[1], USER, 1, self.mk)))
        outs.append((self.key("device", "key", names[2], "--purpose", "a-b.c", "--format", "c"),
                     k_purpose(names[2], "a-b.c", self.mk)))
        for i, (text, key) in enumerate(outs):
            name = re.search(r"unsigned char (\w+)\[", text).group(1)
            src = os.path.join(self.tmp, f"k{i}.c")
            with open(src, "w") as f:
                f.write(text + '#include <stdio.h>\nint main(void) {\n    unsigned int i;\n'
                        f'    for (i = 0; i < {name}_len; ++i) printf("%02x", {name}[i]);\n'
                        '    printf("\\n");\n    return 0;\n}\n')
            exe = os.path.join(self.tmp, f"k{i}")
            for cmd in (["cc", "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-o", exe, src],
                        ["cc", "-x", "c++", "-std=c++11", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", src]):
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
                self.assertEqual((r.returncode, r.stderr), (0, ""), text)
            self.assertEqual(subprocess.run([exe], capture_output=True, text=True, check=True).stdout,
                             key.hex() + "\n")

    def test_psk_identity_may_hold_colons(self):
        self.init_test_key()
        self.fk("device", "add", "x:y:z")
        key = k_dev("x:y:z", self.mk)
        out = self.key("device", "key", "x:y:z", "--format", "psk")
        self.assertEqual(out, f"x:y:z:{key.hex()}\n")
        self.assertEqual(psk_split(out), ("x:y:z", key))
        self.assertNotEqual(out.split(":", 1)[0], "x:y:z")  # split at the first colon: wrong
        self.fk("user", "add", "a:b")
        self.fk("user", "grant", "a:b", "--device", "x:y:z", "--role", "owner")
        key = k_user("x:y:z", "a:b", 1, self.mk)
        out = self.key("user", "key", "a:b", "--device", "x:y:z", "--format", "psk")
        self.assertEqual(out, f"a:b:{key.hex()}\n")
        self.assertEqual(psk_split(out), ("a:b", key))
        # The identity is as it is, not escaped as in the C comment.
        self.fk("device", "add", DEVICE)
        out = self.key("device", "key", DEVICE, "--format", "psk")
        self.assertEqual(out.encode(), DEVICE.encode() + b":" + k_dev(DEVICE, self.mk).hex().encode() + b"\n")


if __name__ == "__main__":
    fk.main()
