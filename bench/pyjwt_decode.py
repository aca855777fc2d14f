#!/usr/bin/python3
"""PyJWT's rate on the same JWTs: decode and verify (HS256, exp, nbf, iat) every line in one process.

usage: pyjwt_decode.py KEY_HEX FILE [COUNT]     prints the wall-clock and CPU-time rates
"""
import sys
import time

import jwt

key = bytes.fromhex(sys.argv[1])
limit = int(sys.argv[3]) if len(sys.argv) > 3 else None
with open(sys.argv[2]) as f:
    tokens = [line.rstrip("\n") for _, line in zip(range(limit) if limit else iter(int, 1), f)]
start = time.perf_counter()
cpu_start = time.process_time()
valid = 0
for t in tokens:
    jwt.decode(t, key, algorithms=["HS256"])
    valid += 1
elapsed = time.perf_counter() - start
cpu = time.process_time() - cpu_start
print(f"{valid} tokens in {elapsed:.2f} s: {valid / elapsed:,.0f} tokens/s; "
      f"CPU {cpu:.2f} s = {cpu / valid * 1e6:.2f} us/token -> {valid / cpu:,.0f} tokens/s on one idle core")
