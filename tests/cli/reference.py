"""An independent Python implementation of fleetkey's key hierarchy, written from
fleetkey-formats(5) on Python's hmac and hashlib: the oracle the CLI tests compare against."""
import hashlib
import hmac
import struct

SALT = b"fleetkey/v1"
TEST_SEED_SALT = b"fleetkey/v1 test-seed"


def hkdf_extract(salt, ikm):
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def hkdf_expand(prk, info, length=32):
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]


def field(x):
    """uint16_be(len) || x; integers as 8 bytes big-endian, strings as UTF-8."""
    if isinstance(x, int):
        x = struct.pack(">Q", x)
    elif isinstance(x, str):
        x = x.encode()
    return struct.pack(">H", len(x)) + x


def info(label, *fields):
    return field(label) + b"".join(field(f) for f in fields)


def test_master_key(seed, version=1):
    return hkdf_expand(hkdf_extract(TEST_SEED_SALT, seed), info("master", version))


def device_key(master_key, device):
    return hkdf_expand(hkdf_extract(SALT, master_key), info("device", device))


def device_prk(k_dev):
    return hkdf_extract(SALT, k_dev)


def fingerprint(key):
    return hashlib.sha256(b"fleetkey/v1 fingerprint" + key).digest()[:16].hex()
