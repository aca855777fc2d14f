#!/usr/bin/python3
"""Keys out to pipes, key encodings, the NVS keys file, device key --from, and -o - (issue 20, "Secrets and
pipes"). Every expected key is derived here by reference.py (Python's hmac), never by fleetkey."""
import base64
import binascii
import csv
import hashlib
import json
import os
import re
import subprocess
import threading

import fk
import reference

SEED = bytes.fromhex(fk.TEST_SEED)
MK = reference.test_master_key(SEED)
IDS = ["SN-0001", "SN-0002", 'SN,"3"']
SUMMARY = re.compile(r"^imported (\d+) devices, skipped (\d+), in \d+\.\d\d s \(\d+ devices/s\)\n$")


def k_dev(device):
    return reference.device_key(MK, device)


def b64(key):
    return base64.b64encode(key).decode()


def jsonl_line(device, encode=b64):
    key = k_dev(device)
    return json.dumps({"id": device, "key": encode(key), "key_version": 1,
                       "fingerprint": reference.fingerprint(key)}, separators=(",", ":")) + "\n"


def csv_field(s):
    return '"' + s.replace('"', '""') + '"' if ("," in s or '"' in s) else s


def key_json(device, encode=b64, purpose=None):
    """device key --json, fleetkey(1) KEY FORMATS."""
    key = k_dev(device)
    if purpose is not None:
        key = reference.hkdf_expand(reference.device_prk(key), reference.info("purpose", purpose))
    return json.dumps({"kind": "device", "device": device, "purpose": purpose, "key_version": 1,
                       "fingerprint": reference.fingerprint(key), "test_key": True, "key": encode(key)},
                      separators=(",", ":")) + "\n"


def sorted_ids(ids):
    return sorted(ids, key=lambda i: i.encode())


class KeysTest(fk.FleetTest):

    def setUp(self):
        super().setUp()
        self.init_test_key()
        self.input = self.write_private("devices.csv", "id\n" + "".join(csv_field(i) + "\n" for i in IDS))

    def strip_warning(self, err):
        return err[len(fk.TEST_KEY_WARNING):] if err.startswith(fk.TEST_KEY_WARNING) else err

    # --- --keys-out to standard output, a FIFO, /dev/fd/N ----------------------------------------------

    def test_keys_out_dash_is_stdout_and_the_summary_goes_to_stderr(self):
        r = self.fk("device", "import", self.input, "--keys-out", "-")
        self.assertEqual(r.out, "".join(jsonl_line(i) for i in sorted_ids(IDS)))
        self.assertRegex(self.strip_warning(r.err), SUMMARY)
        self.assertEqual(SUMMARY.match(self.strip_warning(r.err)).groups(), ("3", "0"))
        # --json: the summary object on stderr; -q: no summary at all. Stdout holds the keys alone.
        again = self.write_private("more.csv", "id\nSN-0004\n")
        r = self.fk("--json", "device", "import", again, "--keys-out", "-", "--keys-out-format", "csv")
        self.assertEqual(r.out, "id,key,key_version,fingerprint\nSN-0004,%s,1,%s\n"
                         % (b64(k_dev("SN-0004")), reference.fingerprint(k_dev("SN-0004"))))
        summary = json.loads(self.strip_warning(r.err))
        self.assertEqual((summary["imported"], summary["keys_out"]), (1, "-"))
        r = self.fk("-q", "device", "import", self.write_private("5.csv", "id\nSN-0005\n"), "--keys-out", "/dev/stdout")
        self.assertEqual((r.out, r.err), (jsonl_line("SN-0005"), ""))
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "-")))

    def test_keys_out_fifo_read_by_a_child_is_written_after_the_commit(self):
        fifo = os.path.join(self.tmp, "keys.fifo")
        os.mkfifo(fifo, 0o600)
        reader = subprocess.Popen(["cat", fifo], stdout=subprocess.PIPE)
        r = self.fk("-q", "device", "import", self.input, "--keys-out", fifo, "--key-format", "hex")
        out, _ = reader.communicate(timeout=60)
        self.assertEqual(out.decode(), "".join(jsonl_line(i, bytes.hex) for i in sorted_ids(IDS)))
        self.assertEqual((r.out, r.err), ("", ""))
        self.assertEqual(oct(os.stat(fifo).st_mode & 0o777), "0o600")  # written in place, not replaced
        # A failing import (an id already registered) writes nothing: the reader sees end of file at once.
        before = self.snapshot()
        reader = subprocess.Popen(["cat", fifo], stdout=subprocess.PIPE)
        r = self.fails(fk.CONFLICT, "-q", "device", "import", self.input, "--keys-out", fifo)
        out, _ = reader.communicate(timeout=60)
        self.assertEqual(out, b"")
        # Ids are checked in byte order: 'SN,"3"' (line 4) comes first.
        self.assertEqual(r.err, f'fleetkey: error: {self.input}: line 4: device "SN,"3"" is already registered '
                                "(use --skip-existing to skip it)\n")
        self.assertEqual(self.snapshot(), before)

    def test_keys_out_dev_fd_is_the_inherited_descriptor(self):
        rfd, wfd = os.pipe()
        got = []
        t = threading.Thread(target=lambda: got.append(os.fdopen(rfd, "rb").read()))
        t.start()
        proc = subprocess.run([fk.BIN, "-q", "device", "import", self.input, "--keys-out", f"/dev/fd/{wfd}",
                               "--keys-out-format", "nvs"], env=self.env, pass_fds=(wfd,), capture_output=True,
                              stdin=subprocess.DEVNULL, timeout=120)
        os.close(wfd)
        t.join(60)
        self.assertEqual((proc.returncode, proc.stdout, proc.stderr), (0, b"", b""))
        self.assertEqual(got[0].decode(), "key,type,encoding,value\nfleetkey,namespace,,\n" + "".join(
            f"{csv_field(i)},data,base64,{b64(k_dev(i))}\n" for i in sorted_ids(IDS)))
        r = self.fails(fk.USAGE, "device", "import", self.input, "--keys-out", "/dev/fd/57")
        self.assertEqual(self.strip_warning(r.err), "fleetkey: error: --keys-out /dev/fd/57: descriptor 57 is not open\n")

    # --- NVS keys file, key encodings ---------------------------------------------------------------------

    def test_nvs_keys_file_exact_bytes(self):
        path = os.path.join(self.tmp, "keys.nvs.csv")
        self.fk("device", "import", self.input, "--keys-out", path, "--keys-out-format", "nvs", "--key-format", "hex")
        self.assertEqual(oct(os.stat(path).st_mode & 0o777), "0o600")
        self.assertEqual(self.read(path), "key,type,encoding,value\nfleetkey,namespace,,\n" + "".join(
            f"{csv_field(i)},data,hex2bin,{k_dev(i).hex()}\n" for i in sorted_ids(IDS)))
        # Read as nvs_partition_gen.py reads it: csv.DictReader, then binascii for hex2bin and base64.
        for path_, decode in ((path, binascii.a2b_hex), (self.import_nvs_base64(), binascii.a2b_base64)):
            with open(path_, newline="") as f:
                rows = list(csv.DictReader(f, delimiter=","))
            self.assertEqual((rows[0]["key"], rows[0]["type"]), ("fleetkey", "namespace"))
            got = {r["key"]: decode(r["value"]) for r in rows[1:] if r["type"] == "data"}
            self.assertEqual(got, {i: k_dev(i) for i in IDS})
            self.assertTrue(all(len(k.encode()) <= 15 for k in got))
        # An id longer than NVS's 15-byte key names: refused, nothing registered, no file.
        before = self.snapshot()
        long_input = self.write_private("long.csv", "id\nSN-0009\nSERIAL-0123456789\n")
        other = os.path.join(self.tmp, "other.csv")
        r = self.fails(fk.USAGE, "device", "import", long_input, "--keys-out", other, "--keys-out-format", "nvs")
        self.assertEqual(self.strip_warning(r.err),
                         'fleetkey: error: line 3: device id "SERIAL-0123456789" is longer than 15 bytes, the '
                         "longest NVS key: --keys-out-format nvs names each entry by its device id\n")
        self.assertEqual(self.snapshot(), before)
        self.assertFalse(os.path.exists(other))
        self.fails(fk.USAGE, "device", "import", long_input, "--keys-out-format", "nvs")

    def import_nvs_base64(self):
        path = os.path.join(self.tmp, "keys-b64.nvs.csv")
        src = self.write_private("nvs-b64.csv", "id\n" + "".join(csv_field(i) + "\n" for i in IDS))
        env = {"FLEETKEY_HOME": os.path.join(self.tmp, "other")}
        self.fk("init", "--no-passphrase", "--test-seed", fk.TEST_SEED, env=env)
        self.fk("device", "import", src, "--keys-out", path, "--keys-out-format", "nvs", env=env)
        return path

    def test_key_format_in_json_everywhere(self):
        self.fk("device", "add", "SN-0001")
        key = k_dev("SN-0001")
        self.assertEqual(self.fk("--json", "device", "key", "SN-0001").out, key_json("SN-0001"))
        self.assertEqual(self.fk("--json", "device", "key", "SN-0001", "--key-format", "hex").out,
                         key_json("SN-0001", bytes.hex))
        self.assertEqual(self.fk("device", "key", "SN-0001", "--format", "json", "--key-format", "base64").out,
                         key_json("SN-0001"))
        # Plain output keeps its default (hex); --key-format is for JSON only.
        self.assertEqual(self.fk("device", "key", "SN-0001").out, key.hex() + "\n")
        r = self.fails(fk.USAGE, "device", "key", "SN-0001", "--key-format", "hex")
        self.assertIn("--key-format sets the key's encoding in JSON output", r.err)
        # user key --json: the same key member and encoding.
        self.fk("user", "add", "alice")
        self.fk("user", "grant", "alice", "--device", "SN-0001", "--role", "owner")
        uj = self.fk("--json", "user", "key", "alice", "--device", "SN-0001", "--key-format", "hex").json()
        k_user = reference.hkdf_expand(reference.device_prk(key), reference.info("user", "alice", 1))
        self.assertEqual((uj["key"], uj["fingerprint"]), (k_user.hex(), reference.fingerprint(k_user)))
        # token key --json agrees with device key --json: base64 by default, hex on request.
        k_tok = reference.hkdf_expand(reference.device_prk(key), reference.info("token", "cose-hmac256/256"))
        tj = self.fk("--json", "token", "key", "--aud", "SN-0001").json()
        dj = self.fk("--json", "device", "key", "SN-0001").json()
        self.assertEqual(tj["key"], b64(k_tok))
        self.assertEqual(base64.b64decode(dj["key"]), key)
        self.assertTrue({"key", "fingerprint", "test_key"} <= set(tj) & set(dj))
        tj = self.fk("--json", "token", "key", "--aud", "SN-0001", "--key-format", "hex").json()
        self.assertEqual(tj["key"], k_tok.hex())
        self.fails(fk.USAGE, "token", "key", "--aud", "SN-0001", "--key-format", "hex")

    # --- device key --from ------------------------------------------------------------------------------

    def test_device_key_from_file_and_stdin(self):
        self.fk("device", "import", self.input)
        listing = self.write_private("ids.txt", 'SN-0002\r\n\nSN-0001\nSN,"3"\n')
        expect = "".join(key_json(i) for i in ["SN-0002", "SN-0001", 'SN,"3"'])
        r = self.fk("device", "key", "--from", listing)
        self.assertEqual(r.out, expect)
        digest = hashlib.sha256(b"".join(i.encode() + b"\n" for i in sorted_ids(IDS))).hexdigest()
        events = [(subject, json.loads(details)) for subject, details in
                  self.rows("SELECT subject, details FROM audit WHERE action = 'device.keys.export'")]
        self.assertEqual(events, [(listing, {"count": 3, "ids_sha256": digest, "purpose": None})])
        self.assertEqual(self.rows("SELECT count(*) FROM audit WHERE action = 'device.key.export'"), [(0,)])
        r = self.fk("device", "key", "--from", "-", "--key-format", "hex", "--purpose", "enc",
                    input="SN-0001\nSN-0002\n")
        self.assertEqual(r.out, key_json("SN-0001", bytes.hex, "enc") + key_json("SN-0002", bytes.hex, "enc"))
        subject, details = self.rows("SELECT subject, details FROM audit ORDER BY id DESC LIMIT 1")[0]
        self.assertEqual((subject, json.loads(details)["purpose"]), ("stdin", "enc"))
        # -o FILE: 0600, named once complete.
        out = os.path.join(self.tmp, "keys.jsonl")
        self.fk("-q", "device", "key", "--from", listing, "-o", out)
        self.assertEqual((self.read(out), oct(os.stat(out).st_mode & 0o777)), (expect, "0o600"))

    def test_device_key_from_refuses_bad_lines_and_prints_nothing(self):
        self.fk("device", "import", self.input)
        self.fk("device", "revoke", "SN-0002", "--reason", "scrapped")
        before = self.snapshot()
        cases = [
            (fk.NOT_FOUND, "SN-0001\nSN-0404\n", '2: device "SN-0404" is not registered'),
            (fk.CONFLICT, "SN-0001\n\nSN-0002\n", '3: device "SN-0002" is revoked: its key is no longer issued'),
            (fk.USAGE, "SN-0001\nSN-0001\n", '2: device "SN-0001" is listed twice'),
            (fk.USAGE, "SN-0001\n" + "x" * 129 + "\n", "2: line is longer than 128 bytes (the longest device id)"),
        ]
        for code, text, message in cases:
            path = self.write_private(f"ids-{code}-{len(text)}.txt", text)
            r = self.fails(code, "device", "key", "--from", path)
            self.assertEqual(self.strip_warning(r.err), f"fleetkey: error: {path}:{message}\n")
            r = self.fails(code, "device", "key", "--from", "-", input=text)
            self.assertEqual(self.strip_warning(r.err), f"fleetkey: error: stdin:{message}\n")
        self.assertEqual(self.snapshot(), before)
        self.fails(fk.USAGE, "device", "key", "SN-0001", "--from", "-", input="SN-0001\n")
        self.fails(fk.USAGE, "device", "key", "--from", "-", "--format", "hex", input="SN-0001\n")
        self.fails(fk.USAGE, "device", "key")

    # --- -o - wherever -o exists ------------------------------------------------------------------------

    def test_output_dash_is_stdout(self):
        self.fk("device", "add", "SN-0001")
        state = os.path.join(self.tmp, "s.b64")
        now = ["--now", "2026-11-22T00:00:00Z"]
        self.fk("device", "state", "SN-0001", *now, "-o", state)
        r = self.fk("device", "state", "SN-0001", *now, "-o", "-")
        self.assertEqual(r.out, self.read(state))
        self.fails(fk.USAGE, "device", "state", "--all", "-o", "-")
        r = self.fk("device", "key", "SN-0001", "-o", "-")
        self.assertEqual(r.out, k_dev("SN-0001").hex() + "\n")
        r = self.fk("master", "backup", "--shares", "3", "--threshold", "2", "-o", "-")
        self.assertEqual(r.out.count("# fleetkey master key share"), 3, r.out)
        # user grant -o -: what -o FILE would hold (the bundle, or its QR code, png included), alone.
        self.fk("user", "add", "alice")
        grant = ["user", "grant", "alice", "--device", "SN-0001", "--role", "owner", "--now", "2026-11-22T00:00:00Z"]
        bundle = self.fk("--json", *grant).out
        r = self.fk(*grant, "--keep-epoch", "-o", "-")
        self.assertEqual(json.loads(r.out)["user_key"], json.loads(bundle)["user_key"])
        self.assertEqual(r.out.count("\n"), 1)
        r = self.fk(*grant, "--keep-epoch", "--qr", "png", "-o", "-", binary=True)
        self.assertTrue(r.out.startswith(b"\x89PNG\r\n"), r.out[:8])
        self.fails(fk.USAGE, "--json", *grant, "-o", "-")
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "-")))

    # --- one JSON shape ---------------------------------------------------------------------------------

    def test_matter_passcode_is_an_eight_digit_string(self):
        self.fk("device", "add", "SN-0001")
        pc = self.write_private("pc", "4311742\n")
        j = self.fk("--json", "pair", "SN-0001", "--scheme", "matter", "--vendor-id", "0xFFF1", "--product-id",
                    "0x8000", "--discriminator", "3840", "--passcode-file", pc, "--qr", "none").json()
        self.assertEqual(j["passcode"], "04311742")
        d = self.fk("--json", "pair", "decode", j["payload"]).json()
        self.assertEqual(d["passcode"], "04311742")
        d = self.fk("--json", "pair", "decode", j["manual_code"]).json()
        self.assertEqual(d["passcode"], "04311742")

    def test_format_means_output_encoding_old_spellings_still_work(self):
        self.fk("device", "add", "SN-0001")
        t1 = self.fk("token", "mint", "--sub", "svc", "--role", "admin", "--type", "jwt", "--now", "@1800000000").out
        t2 = self.fk("token", "mint", "--sub", "svc", "--role", "admin", "--format", "jwt", "--now", "@1800000000").out
        self.assertEqual(t1, t2)
        self.assertEqual(t1.count("."), 2)
        help_text = self.fk("token", "mint", "--help").out
        self.assertIn("--type", help_text)
        self.assertNotIn("--format", help_text)
        r = self.fk("-q", "device", "import", "-", "--input-format", "csv", input="id\nSN-0002\n")
        self.assertEqual(r.out, "")
        self.fk("-q", "device", "import", "-", "--format", "csv", input="id\nSN-0003\n")
        help_text = self.fk("device", "import", "--help").out
        self.assertIn("--input-format", help_text)
        self.assertNotIn("--format", help_text)


if __name__ == "__main__":
    fk.main()
