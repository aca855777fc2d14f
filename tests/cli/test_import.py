#!/usr/bin/python3
"""device import: formats, validation before any write, --skip-existing, --keys-out, SIGKILL
atomicity and resume, concurrent stations."""
import base64
import hashlib
import json
import os
import random
import signal
import stat
import subprocess
import time

import fk

FP_PREFIX = b"fleetkey/v1 fingerprint"


def fingerprint(key):
    """fleetkey-formats(5): the first 16 bytes of SHA-256("fleetkey/v1 fingerprint" || key), in hex."""
    return hashlib.sha256(FP_PREFIX + key).digest()[:16].hex()


def ids_digest(ids):
    """fleetkey-import(5): SHA-256 of the imported ids in byte order, each followed by a line feed."""
    h = hashlib.sha256()
    for i in sorted(ids, key=lambda i: i.encode()):
        h.update(i.encode() + b"\n")
    return h.hexdigest()


class ImportTest(fk.FleetTest):

    # Tests whose expected values depend on the key use the test seed; the rest a random key, so
    # that stderr holds nothing but what the command under test prints.
    SEEDED = {"test_man_page_example"}

    def setUp(self):
        super().setUp()
        if self._testMethodName in self.SEEDED:
            self.init_test_key()
        else:
            self.init_plain()

    def write(self, name, content):
        path = os.path.join(self.tmp, name)
        data = content if isinstance(content, bytes) else content.encode()
        with open(path, "wb") as f:
            f.write(data)
        return path

    def write_ids(self, name, ids, header="id"):
        return self.write(name, header + "\n" + "".join(f"{i}\n" for i in ids))

    def devices(self):
        return self.rows("SELECT id, model, labels, key_version, fingerprint, status FROM devices ORDER BY id")

    def import_events(self):
        return [(r[0], json.loads(r[1])) for r in
                self.rows("SELECT subject, details FROM audit WHERE action = 'device.import' ORDER BY id")]

    def device_key(self, device):
        r = self.fk("device", "key", device, "--format", "base64")
        return r.out.strip()

    def assert_rejected(self, name, content, code, message, *extra):
        """Imports a bad file: exit `code`, exactly `message`, no keys file, the registry unchanged."""
        self.fk("device", "add", "EXISTING-1")
        before = self.snapshot()
        path = self.write(name, content)
        keys = os.path.join(self.tmp, "keys.jsonl")
        r = self.fails(code, "device", "import", path, "--keys-out", keys, *extra)
        self.assertEqual(r.err, f"fleetkey: error: {path}: {message}\n")
        self.assertEqual(self.snapshot(), before)
        self.assertEqual([f for f in os.listdir(self.tmp) if f.startswith("keys.jsonl")], [])

    # --- formats ---------------------------------------------------------------------------------

    def test_csv_with_bom_crlf_quotes_empty_lines_and_labels(self):
        path = self.write("devices.csv", b"\xef\xbb\xbfid,model,site,line\r\n"
                                         b"SN-1,lock-v2,\"Fab, 2\",\"a \"\"quoted\"\" line\"\r\n"
                                         b"\r\n"
                                         b"SN-2,,Fab 3,\r\n"
                                         b"\n"
                                         b"\"SN-3\",m,,\r\n")
        r = self.fk("device", "import", path)
        self.assertRegex(r.out, r"^imported 3 devices, skipped 0, in \d+\.\d\d s \(\d+ devices/s\)\n$")
        self.assertEqual(r.err, "")
        rows = self.devices()
        self.assertEqual([(d[0], d[1], json.loads(d[2]), d[3], d[5]) for d in rows], [
            ("SN-1", "lock-v2", {"line": 'a "quoted" line', "site": "Fab, 2"}, 1, "active"),
            ("SN-2", None, {"site": "Fab 3"}, 1, "active"),
            ("SN-3", "m", {}, 1, "active"),
        ])
        # Stored exactly as `device add` stores labels: sorted keys, compact.
        self.assertEqual(rows[0][2], '{"line":"a \\"quoted\\" line","site":"Fab, 2"}')
        self.assertEqual(self.import_events(), [(path, {
            "count": 3, "skipped": 0, "key_version": 1, "format": "csv",
            "ids_sha256": ids_digest(["SN-1", "SN-2", "SN-3"])})])
        # The fingerprints are those of the keys `device key` prints.
        for d in rows:
            self.assertEqual(d[4], fingerprint(base64.b64decode(self.device_key(d[0]))))

    def test_line_break_in_a_quoted_field_is_read_but_refused_as_a_label(self):
        path = self.write("d.csv", 'id,note\nSN-1,x\nSN-2,"two\nlines"\n')
        r = self.fails(fk.USAGE, "device", "import", path)
        self.assertEqual(r.err, f"fleetkey: error: {path}: line 3: label \"note\" value must be at most 256 bytes "
                                "of printable UTF-8\n")

    def test_jsonl_file_and_stdin(self):
        lines = ('{"id": "SN-1", "model": "lock", "labels": {"site": "Fab 2"}}\r\n'
                 '\n'
                 '{"id": "SN-2", "model": null}\n'
                 '{"labels": {}, "id": "SN-3"}')
        path = self.write("d.jsonl", "\ufeff" + lines)
        self.fk("device", "import", path)
        r = self.fk("device", "import", "-", "--format", "jsonl", "--json",
                    input='{"id": "SN-4"}\n{"id": "SN-5", "labels": {"b": "2", "a": "1"}}\n')
        summary = r.json()
        self.assertEqual({k: summary[k] for k in ("rows", "imported", "skipped", "key_version", "ids_sha256",
                                                   "keys_out")},
                         {"rows": 2, "imported": 2, "skipped": 0, "key_version": 1,
                          "ids_sha256": ids_digest(["SN-4", "SN-5"]), "keys_out": None})
        self.assertIsInstance(summary["seconds"], float)
        self.assertEqual([(d[0], d[1], d[2]) for d in self.devices()], [
            ("SN-1", "lock", '{"site":"Fab 2"}'), ("SN-2", None, "{}"), ("SN-3", None, "{}"), ("SN-4", None, "{}"),
            ("SN-5", None, '{"a":"1","b":"2"}')])
        self.assertEqual([e[0] for e in self.import_events()], [path, "stdin"])

    def test_stdin_needs_format(self):
        before = self.snapshot()
        r = self.fails(fk.USAGE, "device", "import", "-", input="id\nSN-1\n")
        self.assertEqual(r.err, "fleetkey: error: reading stdin needs --format csv or --format jsonl\n")
        self.assertEqual(self.snapshot(), before)

    def test_format_from_extension(self):
        path = self.write("devices.txt", "id\nSN-1\n")
        r = self.fails(fk.USAGE, "device", "import", path)
        self.assertEqual(r.err, f"fleetkey: error: cannot tell the format of {path} from its name "
                                "(.csv, .jsonl, .ndjson): use --format\n")
        self.fk("device", "import", path, "--format", "csv")
        path = self.write("devices.ndjson", '{"id":"SN-2"}\n')
        self.fk("device", "import", path)
        self.assertEqual([d[0] for d in self.devices()], ["SN-1", "SN-2"])

    def test_missing_file(self):
        r = self.fails(fk.NOT_FOUND, "device", "import", os.path.join(self.tmp, "nope.csv"))
        self.assertIn("nope.csv: No such file or directory", r.err)

    def test_no_registry_is_exit_6_and_documented(self):
        path = self.write_ids("d.csv", ["SN-1"])
        for home in (os.path.join(self.tmp, "empty-home"), os.path.join(self.tmp, "other")):
            r = self.fails(fk.REGISTRY, "--home", home, "device", "import", path)
            registry = self.pg_homes[home] if fk.PG_STATE else f"{home}/registry.db"  # a database without tables
            self.assertEqual(r.err, f"fleetkey: error: no registry at {registry} (run fleetkey init, or pass "
                                    "--registry)\n")
            # The registry is opened before FILE: still 6 when FILE is missing too.
            self.fails(fk.REGISTRY, "--home", home, "device", "import", os.path.join(self.tmp, "nope.csv"))
            self.assertFalse(os.path.exists(home))
        # Every exit status the import returns is in fleetkey-import(5), EXIT STATUS.
        page = self.read(os.path.join(fk.SOURCE_DIR, "man/fleetkey-import.5"))
        section = " ".join(page.split(".SH EXIT STATUS", 1)[1].split(".SH", 1)[0].split())
        for code in (fk.OK, fk.USAGE, fk.NOT_FOUND, fk.CONFLICT, fk.KEY, fk.REGISTRY, fk.FAILURE):
            self.assertRegex(section, r"(^|[ ;]) ?%d (on|for|if)" % code, code)
        self.assertIn("6 if there is no registry", section)
        self.assertIn("O_TMPFILE", page)
        self.assertNotIn("and linked into place only after the registry has committed", page)

    def test_progress_help(self):
        help_text = " ".join(self.fk("device", "import", "--help").out.split())
        self.assertIn("--progress TEXT:{auto,always,never}=auto When to show a progress bar on stderr (auto: when "
                      "stderr is a terminal)", help_text)

    def test_header_only_imports_nothing(self):
        before = self.snapshot()
        r = self.fk("device", "import", self.write("d.csv", "id,model\n"))
        self.assertRegex(r.out, r"^imported 0 devices, skipped 0, in ")
        self.assertEqual(self.snapshot(), before)

    # --- malformed input: each rejected with its line, nothing written ----------------------------

    def test_rejects_empty_file(self):
        self.assert_rejected("d.csv", "", fk.USAGE,
                             "no header line (a CSV import starts with a header naming an id column)")

    def test_rejects_unterminated_quote(self):
        self.assert_rejected("d.csv", 'id\nSN-1\n"SN-2\nSN-3\n', fk.USAGE,
                             "line 3: unterminated quoted field (opened on line 3)")

    def test_rejects_quote_inside_unquoted_field(self):
        self.assert_rejected("d.csv", 'id,model\nSN-1,m\nSN-2,a"b\n', fk.USAGE,
                             "line 3: quote inside an unquoted field (quote the whole field and double the quote)")

    def test_rejects_text_after_closing_quote(self):
        self.assert_rejected("d.csv", 'id\n"SN-1"x\n', fk.USAGE,
                             'line 2: unexpected text after a closing quote (a quote inside a field is written "")')

    def test_rejects_stray_carriage_return(self):
        self.assert_rejected("d.csv", 'id\nSN-1\rSN-2\n', fk.USAGE,
                             "line 2: carriage return not followed by a line feed")

    def test_rejects_wrong_field_count(self):
        self.assert_rejected("d.csv", "id,model\nSN-1,m\nSN-2,m,extra\n", fk.USAGE,
                             "line 3: 3 fields, but the header has 2")

    def test_rejects_header_without_id(self):
        self.assert_rejected("d.csv", "serial,model\nSN-1,m\n", fk.USAGE, 'line 1: the header has no "id" column')

    def test_rejects_duplicate_column(self):
        self.assert_rejected("d.csv", "id,site,site\nSN-1,a,b\n", fk.USAGE,
                             'line 1: column "site" appears twice in the header')

    def test_rejects_bad_label_column(self):
        self.assert_rejected("d.csv", "id,fab site\nSN-1,a\n", fk.USAGE,
                             'line 1: label key "fab site" must be 1 to 64 characters of A-Z a-z 0-9 _ . -')

    def test_rejects_empty_id(self):
        self.assert_rejected("d.csv", "id,model\nSN-1,m\n,m\n", fk.USAGE,
                             "line 3: device id must be 1 to 128 bytes long (got 0)")

    def test_rejects_long_id(self):
        self.assert_rejected("d.csv", "id\nSN-1\n" + "x" * 129 + "\n", fk.USAGE,
                             "line 3: device id must be 1 to 128 bytes long (got 129)")

    def test_rejects_invalid_utf8(self):
        self.assert_rejected("d.csv", b"id\nSN-1\nSN-\xff\n", fk.USAGE,
                             "line 3: device id must be printable UTF-8 without control characters")

    def test_rejects_bad_label_value(self):
        self.assert_rejected("d.csv", "id,site\nSN-1," + "v" * 257 + "\n", fk.USAGE,
                             'line 2: label "site" value must be at most 256 bytes of printable UTF-8')

    def test_rejects_duplicate_in_file_at_the_end(self):
        ids = [f"SN-{i:05d}" for i in range(5000)]
        self.assert_rejected("d.csv", "id\n" + "".join(i + "\n" for i in ids) + "SN-00017\n", fk.USAGE,
                             'line 5002: duplicate id "SN-00017" (first on line 19)')

    def test_rejects_adjacent_duplicate_in_sorted_file(self):
        self.assert_rejected("d.csv", "id\nA-1\nA-2\nA-2\nA-3\n", fk.USAGE,
                             'line 4: duplicate id "A-2" (first on line 3)')

    def test_rejects_bad_row_after_many_good_ones(self):
        ids = [f"SN-{i:05d}" for i in range(5000)]
        self.assert_rejected("d.csv", "id\n" + "".join(i + "\n" for i in ids) + "SN-\x7f\n", fk.USAGE,
                             "line 5002: device id must be printable UTF-8 without control characters")

    def test_rejects_already_registered(self):
        self.assert_rejected("d.csv", "id\nSN-1\nEXISTING-1\nSN-2\n", fk.CONFLICT,
                             'line 3: device "EXISTING-1" is already registered (use --skip-existing to skip it)')

    def test_rejects_invalid_json(self):
        self.assert_rejected("d.jsonl", '{"id": "SN-1"}\n{"id": "SN-2",}\n', fk.USAGE, "line 2: invalid JSON")

    def test_rejects_json_not_an_object(self):
        self.assert_rejected("d.jsonl", '{"id": "SN-1"}\n\n["SN-2"]\n', fk.USAGE,
                             'line 3: expected a JSON object with an "id"')

    def test_rejects_json_missing_id(self):
        self.assert_rejected("d.jsonl", '{"model": "m"}\n', fk.USAGE, 'line 1: missing "id"')

    def test_rejects_json_id_not_string(self):
        self.assert_rejected("d.jsonl", '{"id": 42}\n', fk.USAGE, 'line 1: "id" must be a string')

    def test_rejects_json_unknown_key(self):
        self.assert_rejected("d.jsonl", '{"id": "SN-1", "key": "x"}\n', fk.USAGE,
                             'line 1: unknown key "key" (expected id, model, labels)')

    def test_rejects_json_label_not_string(self):
        self.assert_rejected("d.jsonl", '{"id": "SN-1", "labels": {"n": 1}}\n', fk.USAGE,
                             'line 1: label "n" must be a string')

    def test_rejects_json_duplicate(self):
        self.assert_rejected("d.jsonl", '{"id": "A"}\n{"id": "B"}\n{"id": "A"}\n', fk.USAGE,
                             'line 3: duplicate id "A" (first on line 1)')

    def test_rejects_nul_byte_in_json_line(self):
        # A JSON parser that takes NUL for the end of input would import A and silently drop B.
        self.assert_rejected("d.jsonl", b'{"id":"A"}\0{"id":"B"}\n', fk.USAGE, "line 1: invalid JSON (a NUL byte)")

    def test_rejects_nul_byte_after_json_value(self):
        self.assert_rejected("d.jsonl", b'{"id":"A"}\n{"id":"B"} \0 \n', fk.USAGE, "line 2: invalid JSON (a NUL byte)")

    def test_rejects_bare_carriage_return_in_json_lines(self):
        self.assert_rejected("d.jsonl", b'{"id":\r"A"}\n{"id":"B"}\r\r\n', fk.USAGE,
                             "line 1: carriage return not followed by a line feed")

    def test_rejects_two_carriage_returns_before_a_line_feed_in_json_lines(self):
        self.assert_rejected("d.jsonl", b'{"id":"A"}\r\n{"id":"B"}\r\r\n', fk.USAGE,
                             "line 2: carriage return not followed by a line feed")

    def test_rejects_repeated_json_member(self):
        self.assert_rejected("d.jsonl", '{"id":"A"}\n{"id":"B","id":"C"}\n', fk.USAGE,
                             'line 2: member "id" appears twice')

    def test_rejects_repeated_label_key(self):
        self.assert_rejected("d.jsonl", '{"id":"A","labels":{"site":"x","line":"1","site":"y"}}\n', fk.USAGE,
                             'line 1: label "site" appears twice')

    def test_error_in_a_record_spanning_lines_names_its_first_line(self):
        self.assert_rejected("d.csv", 'id,site\n"A\n\nB",x"y\n', fk.USAGE,
                             "line 2: quote inside an unquoted field on line 4 (quote the whole field and double the "
                             "quote)")

    def test_malformed_row_is_reported_before_an_earlier_repeat_in_sorted_input(self):
        self.assert_rejected("d.csv", "id\nA\nA\nB\x01\n", fk.USAGE,
                             "line 4: device id must be printable UTF-8 without control characters")

    def test_unreadable_input_is_a_failure_not_bad_input(self):
        self.fk("device", "add", "EXISTING-1")
        before = self.snapshot()
        for name in ("dir.csv", "dir.jsonl"):
            path = os.path.join(self.tmp, name)
            os.mkdir(path)
            r = self.fails(fk.FAILURE, "device", "import", path)
            self.assertEqual(r.err, f"fleetkey: error: {path}: line 1: cannot read input: Is a directory\n")
        self.assertEqual(self.snapshot(), before)

    def test_jsonl_labels_are_stored_as_device_add_stores_them(self):
        path = self.write("d.jsonl", '{"id":"J-1","labels":{"q":"say \\"hi\\" \\u00e9\\/ \\\\","a":"1"}}\n')
        self.fk("device", "import", path)
        self.fk("device", "add", "J-2", "--label", 'q=say "hi" \u00e9/ \\', "--label", "a=1")
        labels = [d[2] for d in self.devices()]
        self.assertEqual(labels, ['{"a":"1","q":"say \\"hi\\" \u00e9/ \\\\"}'] * 2)

    # --- --skip-existing and --keys-out -------------------------------------------------------------

    def test_skip_existing(self):
        self.fk("device", "add", "SN-2", "--model", "old")
        path = self.write_ids("d.csv", ["SN-1", "SN-2", "SN-3"])
        keys = os.path.join(self.tmp, "keys.jsonl")
        r = self.fk("device", "import", path, "--skip-existing", "--keys-out", keys)
        self.assertRegex(r.out, r"^imported 2 devices, skipped 1, in ")
        self.assertEqual([(d[0], d[1]) for d in self.devices()], [("SN-1", None), ("SN-2", "old"), ("SN-3", None)])
        self.assertEqual(self.import_events()[0][1]["ids_sha256"], ids_digest(["SN-1", "SN-3"]))
        self.assertEqual(self.import_events()[0][1]["skipped"], 1)
        # The skipped SN-2 is active under this master version: its key (the one derived) is written too,
        # so that a re-run after a kill between the commit and the keys file completes the file.
        with open(keys) as f:
            lines = [json.loads(line) for line in f]
        self.assertEqual([k["id"] for k in lines], ["SN-1", "SN-2", "SN-3"])
        sn2 = base64.b64decode(lines[1]["key"]).hex()
        self.assertEqual(sn2, self.fk("device", "key", "SN-2").out.strip())
        # Everything registered: a re-run changes nothing and writes no audit event.
        before = self.snapshot()
        r = self.fk("device", "import", path, "--skip-existing")
        self.assertRegex(r.out, r"^imported 0 devices, skipped 3, in ")
        self.assertEqual(self.snapshot(), before)

    def test_skip_existing_keys_out_leaves_out_revoked_and_other_versions(self):
        self.fk("device", "add", "OLD-1")           # master version 1
        self.fk("device", "add", "GONE-1")
        self.fk("device", "revoke", "GONE-1", "--reason", "returned")
        self.fk("master", "rotate")                # the import derives under version 2
        path = self.write_ids("d.csv", ["GONE-1", "NEW-1", "OLD-1"])
        keys = os.path.join(self.tmp, "keys.jsonl")
        r = self.fk("device", "import", path, "--skip-existing", "--keys-out", keys)
        self.assertRegex(r.out, r"^imported 1 devices, skipped 2, in ")
        with open(keys) as f:
            self.assertEqual([json.loads(line)["id"] for line in f], ["NEW-1"])

    def test_keys_out_matches_device_key(self):
        ids = [f"SN-{i:05d}" for i in range(3000)] + ['odd,"id"', "\u00e9t\u00e9-1"]
        random.Random(7).shuffle(ids)
        path = self.write("d.jsonl", "".join(json.dumps({"id": i}) + "\n" for i in ids))
        keys = os.path.join(self.tmp, "keys.jsonl")
        self.fk("device", "import", path, "--keys-out", keys)
        self.assertEqual(stat.S_IMODE(os.stat(keys).st_mode), 0o600)
        with open(keys) as f:
            entries = [json.loads(line) for line in f]
        # In byte order of the UTF-8 ids, whatever the input order.
        self.assertEqual([e["id"] for e in entries], sorted(ids, key=lambda i: i.encode()))
        self.assertEqual({tuple(sorted(e)) for e in entries}, {("fingerprint", "id", "key", "key_version")})
        registered = {d[0]: d[4] for d in self.devices()}
        for e in entries:
            self.assertEqual(e["key_version"], 1)
            self.assertEqual(e["fingerprint"], fingerprint(base64.b64decode(e["key"])))
            self.assertEqual(e["fingerprint"], registered[e["id"]])
        for e in random.Random(5).sample(entries, 8) + [entries[-1]]:
            self.assertEqual(e["key"], self.device_key(e["id"]))
        self.assertEqual(os.listdir(self.tmp).count("keys.jsonl"), 1)
        self.assertEqual([f for f in os.listdir(self.tmp) if ".tmp." in f], [])

    def test_keys_out_csv(self):
        path = self.write("d.csv", 'id\nSN-1\n"SN,2"\n')
        keys = os.path.join(self.tmp, "keys.csv")
        self.fk("device", "import", path, "--keys-out", keys)
        with open(keys) as f:
            text = f.read()
        lines = text.splitlines()
        self.assertEqual(lines[0], "id,key,key_version,fingerprint")
        k1, k2 = self.device_key("SN-1"), self.device_key("SN,2")
        # In byte order of id: "," (0x2c) sorts before "-" (0x2d).
        self.assertEqual(lines[1:], [f'"SN,2",{k2},1,{fingerprint(base64.b64decode(k2))}',
                                     f"SN-1,{k1},1,{fingerprint(base64.b64decode(k1))}"])

    def test_keys_out_never_overwrites(self):
        keys = self.write("keys.jsonl", "precious\n")
        before = self.snapshot()
        r = self.fails(fk.CONFLICT, "device", "import", self.write_ids("d.csv", ["SN-1"]), "--keys-out", keys)
        self.assertEqual(r.err, f"fleetkey: error: --keys-out {keys} already exists (keys files are never "
                                "overwritten)\n")
        self.assertEqual(self.snapshot(), before)
        with open(keys) as f:
            self.assertEqual(f.read(), "precious\n")

    def test_keys_out_name_that_cannot_be_created_registers_nothing(self):
        # The keys file is named only after the commit: a name that cannot be, fails first.
        before = self.snapshot()
        keys = os.path.join(self.tmp, "K" * 256 + ".jsonl")
        r = self.fails(fk.USAGE, "device", "import", self.write_ids("d.csv", ["SN-1", "SN-2"]), "--keys-out", keys)
        self.assertEqual(r.err, f"fleetkey: error: file name longer than 255 bytes: {keys}\n")
        self.assertEqual(self.snapshot(), before)

    def test_man_page_example(self):
        """The worked example in man/fleetkey-import.5, recomputed."""
        with open(os.path.join(fk.SOURCE_DIR, "man", "fleetkey-import.5")) as f:
            page = f.read()

        def block(name):
            text = page.split(f'.\\" example-{name}-begin\n')[1].split(f'.\\" example-{name}-end')[0]
            lines = [line for line in text.splitlines() if line not in (".nf", ".fi")]
            return "\n".join(lines).replace("\\-", "-").replace("\\e", "\\") + "\n"

        path = self.write("example.csv", block("input"))
        keys = os.path.join(self.tmp, "keys.jsonl")
        self.fk("device", "import", path, "--keys-out", keys)
        with open(keys) as f:
            self.assertEqual(f.read(), block("keys"))
        self.assertEqual(self.import_events()[0][1]["ids_sha256"], block("digest").strip())
        self.assertEqual(block("digest").strip(), ids_digest(["SN-1", "SN-2"]))
        self.assertEqual([(d[0], d[1], d[2]) for d in self.devices()],
                         [("SN-1", "lock-v2", '{"site":"Fab 2, line 3"}'), ("SN-2", None, '{"site":"Fab 1"}')])

    # --- progress ------------------------------------------------------------------------------------

    def test_progress(self):
        path = self.write_ids("d.csv", [f"SN-{i}" for i in range(10)])
        r = self.fk("device", "import", path)
        self.assertEqual(r.err, "")  # piped: no bar unless asked
        path = self.write_ids("e.csv", [f"SN-X{i}" for i in range(10)])
        r = self.fk("device", "import", path, "--progress", "always", binary=True)
        self.assertIn(b"\r\x1b[Kimporting  [########################] 100%  10/10  ", r.err)
        self.assertTrue(r.err.endswith(b"/s  ETA 0s\r\x1b[K"), r.err)
        self.assertRegex(r.out, rb"^imported 10 devices, skipped 0")

    # --- atomicity under SIGKILL, and resume ---------------------------------------------------------

    def test_sigkill_at_random_moments_then_resume(self):
        n = 200_000
        ids = [f"K-{i:07d}" for i in range(n)]
        path = self.write_ids("big.csv", ids)
        keys = os.path.join(self.tmp, "keys.jsonl")
        rng = random.Random()
        seed = rng.randrange(1 << 30)
        rng.seed(seed)
        # Random moments, and one that is surely inside the transaction (after "importing" shows).
        plans = [("delay", rng.uniform(0.0, 1.5)), ("delay", rng.uniform(0.0, 1.5)), ("importing", rng.uniform(0, 0.3))]
        outcomes = []
        for kind, delay in plans:
            env = dict(self.env)
            proc = subprocess.Popen([fk.BIN, "device", "import", path, "--progress", "always", "--keys-out", keys],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
            if kind == "importing":
                seen = b""
                while b"importing" not in seen:
                    chunk = proc.stderr.read1(4096)
                    if not chunk:
                        break
                    seen += chunk
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stderr.close()
            count = self.rows("SELECT count(*) FROM devices")[0][0]
            events = len(self.import_events())
            self.assertIn((count, events), [(0, 0), (n, 1)], f"seed {seed}, {kind} {delay:.3f}")
            self.assertEqual(self.rows("PRAGMA integrity_check"), [("ok",)])
            if os.path.exists(keys):
                self.assertEqual(count, n, "a keys file appeared for an uncommitted import")
            outcomes.append(count)
            if count == n:
                break
        if os.path.exists(keys):
            os.unlink(keys)  # as if killed between the commit and the keys file: the re-run writes it whole
        r = self.fk("device", "import", path, "--skip-existing", "--keys-out", keys)
        done = outcomes[-1] == n
        self.assertRegex(r.out, rf"^imported {0 if done else n} devices, skipped {n if done else 0}, in ")
        with open(keys) as f:
            self.assertEqual([json.loads(line)["id"] for line in f], sorted(ids, key=lambda i: i.encode()))
        self.assertEqual(self.rows("SELECT count(*) FROM devices")[0][0], n)
        self.assertEqual(self.rows("SELECT min(id), max(id) FROM devices"), [(ids[0], ids[-1])])
        self.assertEqual(self.rows("PRAGMA integrity_check"), [("ok",)])
        self.assertEqual([e[1]["ids_sha256"] for e in self.import_events()], [ids_digest(ids)])

    # --- several stations ----------------------------------------------------------------------------

    def test_four_stations_at_once(self):
        per = 40_000
        files = []
        for s in range(4):
            files.append(self.write_ids(f"station{s}.csv", [f"ST{s}-{i:06d}" for i in range(per)]))
        procs = [subprocess.Popen([fk.BIN, "device", "import", f, "--json"], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env, text=True)
                 for f in files]
        results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
        for out, err, rc in results:
            self.assertEqual(rc, 0, err)
            self.assertEqual(err, "")
            self.assertNotIn("locked", err)
            self.assertEqual(json.loads(out)["imported"], per)
        self.assertEqual(self.rows("SELECT count(*) FROM devices")[0][0], 4 * per)
        self.assertEqual(sorted(e[0] for e in self.import_events()), sorted(files))
        self.assertEqual(self.rows("PRAGMA integrity_check"), [("ok",)])


if __name__ == "__main__":
    fk.main()
