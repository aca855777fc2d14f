#!/usr/bin/env python3
"""A state document as /work/spec/state.md specifies it, made with Python's hmac and cbor2.

Stands in for `fleetkey device state` (issue 15) until that command is on main: then the vector
generator and the device demo should call the CLI instead, and this file goes.

    state_doc.py --key HEX --device D --seq N --iat T [--max-age S] [--revoked-device]
                 [--user NAME=MIN_EPOCH]... [--revoked-id HEX]... [--retired N]... [--pairing N] OUT
"""
import argparse
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
    prk = hmac.new(b"fleetkey/v1", k_dev, hashlib.sha256).digest()
    k_rev = _expand(prk, _field("revocations"), 32)
    uids = {_expand(prk, _field("state-user") + _field(u), 8): e for u, e in epochs.items()}
    payload = cbor2.dumps({0: 1, 1: aud or dev, 2: seq, 3: iat, 4: exp, 5: status,
                           6: dict(sorted(uids.items())), 7: sorted(revoked), 8: sorted(retired), 9: pairing})
    protected = bytes([0xa2, 0x01, 0x05, 0x04]) + cbor2.dumps(f"v{version}/{kid_dev}".encode())
    tag = hmac.new(k_rev, cbor2.dumps(["MAC0", protected, b"", payload]), hashlib.sha256).digest()
    return cbor2.dumps(cbor2.CBORTag(17, [protected, {}, payload, tag]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--key", required=True, help="K_dev in hex")
    ap.add_argument("--device", required=True)
    ap.add_argument("--version", type=int, default=1)
    ap.add_argument("--seq", type=int, required=True)
    ap.add_argument("--iat", type=int, required=True)
    ap.add_argument("--max-age", type=int, default=72 * 3600)
    ap.add_argument("--revoked-device", action="store_true")
    ap.add_argument("--user", action="append", default=[])
    ap.add_argument("--revoked-id", action="append", default=[])
    ap.add_argument("--retired", action="append", type=int, default=[])
    ap.add_argument("--pairing", type=int, default=0)
    ap.add_argument("out")
    a = ap.parse_args()
    epochs = {u.split("=", 1)[0]: int(u.split("=", 1)[1]) for u in a.user}
    doc = make_state(bytes.fromhex(a.key), a.device, a.device, a.seq, a.iat, a.iat + a.max_age,
                     1 if a.revoked_device else 0, epochs, [bytes.fromhex(x) for x in a.revoked_id], a.retired,
                     a.pairing, version=a.version)
    with open(a.out, "wb") as f:
        f.write(doc)


if __name__ == "__main__":
    main()
