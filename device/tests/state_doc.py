"""A state document as man/fleetkey-state.5 specifies it, made with Python's hmac and cbor2.

The independent oracle of `fleetkey device state`: gen_vectors.py checks that every document the
CLI issues for the device library's vectors is byte-identical to make_state() for the same inputs,
and crafts with it the negative documents the CLI never issues (another device's, a wrong
audience, an older seq, an expired one). tests/cli/test_device_lib.py uses it for its Python phone.
"""
import hashlib
import hmac
import struct

import cbor2


def _field(x):
    x = x.encode() if isinstance(x, str) else x
    return struct.pack(">H", len(x)) + x


def _expand(prk, info, n):
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:n]


def make_state(k_dev, dev, kid_dev, seq, iat, exp, status, epochs, revoked, retired, pairing, aud=None, version=1):
    """The document of device dev (kid "v{version}/{kid_dev}") with payload member 1 = aud or dev;
    epochs maps user names to min_epoch, revoked holds token ids as bytes."""
    prk = hmac.new(b"fleetkey/v1", k_dev, hashlib.sha256).digest()
    k_rev = _expand(prk, _field("revocations"), 32)
    uids = {_expand(prk, _field("state-user") + _field(u), 8): e for u, e in epochs.items()}
    payload = cbor2.dumps({0: 1, 1: aud or dev, 2: seq, 3: iat, 4: exp, 5: status,
                           6: dict(sorted(uids.items())), 7: sorted(revoked), 8: sorted(retired), 9: pairing})
    protected = bytes([0xa2, 0x01, 0x05, 0x04]) + cbor2.dumps(f"v{version}/{kid_dev}".encode())
    tag = hmac.new(k_rev, cbor2.dumps(["MAC0", protected, b"", payload]), hashlib.sha256).digest()
    return cbor2.dumps(cbor2.CBORTag(17, [protected, {}, payload, tag]))
