#!/usr/bin/python3
"""Writes N distinct valid tokens, one a line, MACed with a key from `fleetkey token key`.

Independent of fleetkey's encoder: CWTs follow fleetkey-tokens(5) byte by byte (tag 17,
protected {1: alg, 4: kid}, claims {2: sub, 4: exp, 5: nbf, 6: iat, 7: cti, 9: scope}) and
are MACed over RFC 9052's MAC_structure with Python's hmac; JWTs are HS256 over the
documented header.

usage: gen_tokens.py FORMAT KEY_HEX KID COUNT IAT > tokens.txt     (FORMAT: cwt or jwt)
"""
import base64
import hashlib
import hmac
import json
import os
import struct
import sys


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def cbor_head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    if n < 0x100:
        return bytes([major << 5 | 24, n])
    if n < 0x10000:
        return bytes([major << 5 | 25]) + struct.pack(">H", n)
    if n < 0x100000000:
        return bytes([major << 5 | 26]) + struct.pack(">I", n)
    return bytes([major << 5 | 27]) + struct.pack(">Q", n)


def bstr(b):
    return cbor_head(2, len(b)) + b


def tstr(s):
    b = s.encode()
    return cbor_head(3, len(b)) + b


def main():
    fmt, key_hex, kid, count, iat = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    key = bytes.fromhex(key_hex)
    exp = iat + 86400
    out = sys.stdout
    seed = os.urandom(8)
    if fmt == "cwt":
        protected = b"\xa2\x01\x05\x04" + bstr(kid.encode())
        mac_prefix = b"\x84\x64MAC0" + bstr(protected) + b"\x40"
        prefix = b"\xd1\x84" + bstr(protected) + b"\xa0"
        mac = hmac.new(key, digestmod=hashlib.sha256)
        lines = []
        for i in range(count):
            cti = hashlib.sha256(seed + struct.pack(">Q", i)).digest()[:16]
            claims = (b"\xa6" + b"\x02" + tstr(f"user-{i}") + b"\x04" + cbor_head(0, exp) + b"\x05" + cbor_head(0, iat)
                      + b"\x06" + cbor_head(0, iat) + b"\x07" + bstr(cti) + b"\x09" + tstr("reader"))
            payload = bstr(claims)
            m = mac.copy()
            m.update(mac_prefix + payload)
            lines.append(b64(prefix + payload + bstr(m.digest())))
            if len(lines) == 10000:
                out.write("\n".join(lines) + "\n")
                lines = []
        out.write("".join(line + "\n" for line in lines))
    elif fmt == "jwt":
        header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}, separators=(",", ":")).encode())
        mac = hmac.new(key, digestmod=hashlib.sha256)
        lines = []
        for i in range(count):
            jti = hashlib.sha256(seed + struct.pack(">Q", i)).hexdigest()[:32]
            claims = json.dumps({"sub": f"user-{i}", "scope": "reader", "iat": iat, "nbf": iat, "exp": exp, "jti": jti},
                                separators=(",", ":")).encode()
            signing_input = header + "." + b64(claims)
            m = mac.copy()
            m.update(signing_input.encode())
            lines.append(signing_input + "." + b64(m.digest()))
            if len(lines) == 10000:
                out.write("\n".join(lines) + "\n")
                lines = []
        out.write("".join(line + "\n" for line in lines))
    else:
        sys.exit("format must be cwt or jwt")


main()
