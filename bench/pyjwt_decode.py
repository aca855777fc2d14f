#!/usr/bin/python3
"""PyJWT's rate on the same JWTs: decode and verify (HS256, exp, nbf, iat) every line in one process.

usage: pyjwt_decode.py KEY_HEX FILE [COUNT]     prints "N tokens in S s: R tokens/s"
"""
import sys
import time

import jwt

key = bytes.fromhex(sys.argv[1])
limit = int(sys.argv[3]) if len(sys.argv) > 3 else None
with open(sys.argv[2]) as f:
    tokens = [line.rstrip("\n") for _, line in zip(range(limit) if limit else iter(int, 1), f)]
start = time.perf_counter()
valid = 0
for t in tokens:
    jwt.decode(t, key, algorithms=["HS256"])
    valid += 1
elapsed = time.perf_counter() - start
print(f"{valid} tokens in {elapsed:.2f} s: {valid / elapsed:,.0f} tokens/s")
