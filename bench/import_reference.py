#!/usr/bin/python3
"""The straightforward import a user would write, as the benchmark's reference: Python's csv
module, HKDF-Expand from Python's hmac (fleetkey-formats(5): info = u16be(6) "device" u16be(len)
id), the fingerprint from hashlib, and sqlite3 executemany in one transaction into a registry
made by `fleetkey init`.

    import_reference.py DEVICES.csv REGISTRY.db MASTER_KEY_HEX
"""
import csv
import datetime
import hashlib
import hmac
import sqlite3
import sys


def main(csv_path, db_path, master_hex):
    prk = hmac.new(b"fleetkey/v1", bytes.fromhex(master_hex), hashlib.sha256).digest()
    created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def rows():
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            for row in csv.DictReader(f):
                device = row["id"].encode()
                info = b"\x00\x06device" + len(device).to_bytes(2, "big") + device
                key = hmac.new(prk, info + b"\x01", hashlib.sha256).digest()
                fp = hashlib.sha256(b"fleetkey/v1 fingerprint" + key).digest()[:16].hex()
                yield row["id"], row.get("model") or None, "{}", 1, fp, created

    con = sqlite3.connect(db_path, timeout=10)
    con.execute("PRAGMA journal_mode = WAL")
    with con:
        con.executemany("INSERT INTO devices (id, model, labels, key_version, fingerprint, status, pairing_counter, "
                        "created) VALUES (?, ?, ?, ?, ?, 'active', 0, ?)", rows())
    con.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
