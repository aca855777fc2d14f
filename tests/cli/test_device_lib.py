"""The device library (device/) against an independent Python oracle.

The C lock of device/examples runs as a subprocess; a phone written here with Python's hmac and
python3-cryptography's ChaCha20Poly1305 talks to it as fleetkey-device(7) says: the handshake,
the session keys, sealed frames, the replay window. Then the C phone drives the C lock through
device/examples/demo.sh, the scenario of `make run`.
"""
import base64
import hashlib
import hmac
import os
import struct
import subprocess
import sys
import unittest

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

import fk

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(fk.BIN)), "device")
sys.path.insert(0, os.path.join(fk.SOURCE_DIR, "device", "tests"))
from state_doc import make_state  # noqa: E402

DEV = "LOCK-7"


def field(x):
    x = x.encode() if isinstance(x, str) else x
    return struct.pack(">H", len(x)) + x


def info(*xs):
    return b"".join(field(x) for x in xs)


def expand(prk, inf, n=32):
    return hmac.new(prk, inf + b"\x01", hashlib.sha256).digest()[:n]


class Lock:
    def __init__(self, test, key_file, state_dir, now):
        self.p = subprocess.Popen([os.path.join(EXAMPLES, "fk_lock_example"), key_file, DEV, "1", state_dir, str(now)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        test.addCleanup(self.close)

    def ask(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        return self.p.stdout.readline().strip()

    def close(self):
        if self.p.poll() is None:
            self.p.stdin.close()
            self.p.wait(timeout=30)
        self.p.stdout.close()
        self.p.stderr.close()


class DeviceLibTest(fk.FleetTest):
    def setUp(self):
        super().setUp()
        self.run_fk("init", "--no-passphrase", "--test-seed", fk.TEST_SEED)
        self.assertEqual(self.run_fk("device", "add", DEV).rc, 0)
        self.k_dev = bytes.fromhex(self.run_fk("device", "key", DEV).out.strip())
        self.key_file = os.path.join(self.tmp, "k_dev")
        with open(self.key_file, "w") as f:
            f.write(self.k_dev.hex())
        self.state_dir = os.path.join(self.tmp, "lock")
        os.mkdir(self.state_dir)
        self.run_fk("user", "add", "alice")
        grant = self.run_fk("--json", "user", "grant", "alice", "--device", DEV, "--role", "owner").json()
        self.token = base64.urlsafe_b64decode(grant["token"] + "=" * (-len(grant["token"]) % 4))
        self.k_user = base64.b64decode(grant["user_key"])
        self.now = int(subprocess.check_output(["date", "+%s"]).decode())
        self.state = make_state(self.k_dev, DEV, DEV, 1, self.now, self.now + 3600, 0, {"alice": 1}, [], [], 0)

    def handshake(self, lock, n_phone):
        challenge = bytes.fromhex(lock.ask("hello").split()[1])
        self.assertEqual(len(challenge), 17)
        self.assertEqual(challenge[0], 1)
        n_lock = challenge[1:]
        mac_p = hmac.new(self.k_user, info("fleetkey/v1 handshake", DEV, n_lock, n_phone, self.token),
                         hashlib.sha256).digest()
        m2 = b"\x02" + n_phone + struct.pack(">H", len(self.token)) + self.token + mac_p
        return n_lock, mac_p, m2

    def test_python_phone_against_c_lock(self):
        lock = Lock(self, self.key_file, self.state_dir, self.now)
        self.assertEqual(lock.ask("state " + self.state.hex()), "ok")
        n_phone = os.urandom(16)
        n_lock, mac_p, m2 = self.handshake(lock, n_phone)
        answer = lock.ask("auth " + m2.hex()).split()
        self.assertEqual(answer[0], "welcome")
        m3 = bytes.fromhex(answer[1])
        want = hmac.new(self.k_user, info("fleetkey/v1 handshake lock", DEV, n_lock, n_phone, mac_p),
                        hashlib.sha256).digest()
        self.assertEqual(m3, b"\x03" + want)
        prk = hmac.new(n_lock + n_phone, self.k_user, hashlib.sha256).digest()
        p2l = ChaCha20Poly1305(expand(prk, info("session", "phone-to-lock", mac_p)))
        l2p = ChaCha20Poly1305(expand(prk, info("session", "lock-to-phone", mac_p)))

        def seal(ctr, pt):
            hdr = struct.pack(">Q", ctr)
            return hdr + p2l.encrypt(b"\0" * 4 + hdr, pt, hdr)

        def opened(answer, ctr):
            kind, hexframe = answer.split()
            self.assertEqual(kind, "frame")
            frame = bytes.fromhex(hexframe)
            self.assertEqual(frame[:8], struct.pack(">Q", ctr))
            return l2p.decrypt(b"\0" * 4 + frame[:8], frame[8:], frame[:8])

        self.assertEqual(opened(lock.ask("frame " + seal(0, b"open").hex()), 0), b"opened")
        self.assertEqual(lock.ask("frame " + seal(0, b"open").hex()), "refused replayed")
        tampered = bytearray(seal(1, b"open"))
        tampered[9] ^= 1
        self.assertEqual(lock.ask("frame " + tampered.hex()), "refused bad_mac")
        self.assertEqual(opened(lock.ask("frame " + seal(100, b"open").hex()), 1), b"opened")
        self.assertEqual(opened(lock.ask("frame " + seal(37, b"open").hex()), 2), b"opened")  # 63 back: in
        self.assertEqual(lock.ask("frame " + seal(36, b"open").hex()), "refused replayed")  # 64 back: out
        self.assertEqual(lock.ask("frame " + seal(1, b"open").hex()), "refused replayed")
        # The recorded response: no challenge outstanding, then a fresh one.
        self.assertEqual(lock.ask("auth " + m2.hex()), "refused replayed")
        lock.ask("hello")
        self.assertEqual(lock.ask("auth " + m2.hex()), "refused bad_mac")
        # The token without K_user: a MAC under another key.
        _, _, m2 = self.handshake(lock, n_phone)
        self.assertEqual(lock.ask("auth " + (m2[:-32] + bytes(32)).hex()), "refused bad_mac")
        # A state document is refused again, and an older one too, after a restart of the lock.
        lock.close()
        lock = Lock(self, self.key_file, self.state_dir, self.now)
        self.assertEqual(lock.ask("state " + self.state.hex()), "refused replayed")
        with open(os.path.join(self.state_dir, "persist"), "rb") as f:
            persist = f.read()
        self.assertEqual(persist, b"FKD\x01" + struct.pack(">QQQ", 1, self.now, self.now))

    def test_no_state_document_fails_closed(self):
        lock = Lock(self, self.key_file, self.state_dir, self.now)
        _, _, m2 = self.handshake(lock, os.urandom(16))
        self.assertEqual(lock.ask("auth " + m2.hex()), "refused stale")

    def test_demo(self):
        demo = os.path.join(fk.SOURCE_DIR, "device", "examples", "demo.sh")
        p = subprocess.run([demo, fk.BIN, EXAMPLES], capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn('phone: lock answers "opened"', p.stdout)
        self.assertIn("phone: lock says: refused bad_mac", p.stdout)
        self.assertIn("phone: lock says: refused revoked", p.stdout)
        self.assertIn("phone: lock says: refused replayed", p.stdout)
        self.assertTrue(p.stdout.endswith("demo: ok\n"))


if __name__ == "__main__":
    unittest.main()
