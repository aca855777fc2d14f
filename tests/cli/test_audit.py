"""fleetkey audit list: the audit trail read back, filtered, as a table and as JSON Lines."""
import glob
import json
import os
import pwd
import re
import shutil
import subprocess
import unittest

import fk
from fk import ISO_TIME, OK, USAGE

KDEV_FP = "8cd660a9aea4d2726388577ff31c2279"

# Every action with its details members, as fleetkey-formats(5) AUDIT EVENTS documents them:
# (members always present, members present only sometimes).
ACTIONS = {
    "init": ({"encrypted", "fingerprint", "test_key"}, set()),
    "master.rotate": ({"fingerprint"}, set()),
    "master.retire": (set(), set()),
    "master.passwd": ({"encrypted"}, set()),
    "master.backup": ({"backup", "fingerprint", "shares", "threshold", "versions"}, set()),
    "master.restore": ({"backup", "encrypted", "fingerprint", "versions"}, set()),
    "master.import_to_hsm": ({"pkcs11", "token", "versions"}, set()),
    "device.add": ({"fingerprint", "key_version"}, set()),
    "device.import": ({"count", "format", "ids_sha256", "key_version", "skipped"}, set()),
    "device.revoke": ({"reason"}, set()),
    "device.key.export": ({"fingerprint", "purpose"}, set()),
    "device.keys.export": ({"count", "ids_sha256", "purpose"}, set()),
    "device.pair": ({"counter", "scheme"}, {"file"}),
    "device.pair.rotate": ({"counter", "scheme"}, {"file"}),
    "device.pair.batch": ({"count", "manifest", "scheme"}, set()),
    "user.add": (set(), set()),
    "user.grant": ({"device", "epoch", "expires", "role"}, {"replaced_epoch"}),
    "user.revoke": ({"device", "new_epoch", "reason"}, {"device_revoked"}),
    "user.key.export": ({"device", "epoch", "fingerprint"}, set()),
    "token.mint": ({"aud", "epoch", "exp", "format", "kid", "role", "token_id"}, set()),
    "token.revoke": ({"exp", "reason"}, set()),
    "token.key.export": ({"fingerprint", "format"}, set()),
}


def documented_actions():
    """{action: {member: type text}} from the table in fleetkey-formats(5), AUDIT EVENTS."""
    page = open(os.path.join(fk.SOURCE_DIR, "man/fleetkey-formats.5")).read()
    section = page.split("\n.SH AUDIT EVENTS\n", 1)[1].split("\n.SH ", 1)[0]
    lines = section.split("\n.TS\n", 1)[1].split("\n.TE\n", 1)[0].splitlines()
    i = next(n for n, line in enumerate(lines) if line.endswith(".")) + 1  # after the format lines
    rows = []
    while i < len(lines):
        cells, i = lines[i].split("@"), i + 1
        if cells[-1] == "T{":  # a text block, to its T}
            end = lines.index("T}", i)
            cells[-1], i = " ".join(lines[i:end]), end + 1
        rows.append(cells)
    assert rows[0] == ["Action", "Subject", "Member", "Type: meaning"], rows[0]
    doc, action = {}, None
    for first, _subject, member, text in rows[1:]:
        if first:
            action = first
            doc[action] = {}
        if member != "\\(em":
            doc[action][member] = text
    return doc


def actions_in_source():
    """The action of every Registry::audit call under src/."""
    found = set()
    for path in glob.glob(os.path.join(fk.SOURCE_DIR, "src/**/*.cpp"), recursive=True):
        with open(path) as f:
            text = f.read()
        for m in re.finditer(r"\baudit\(([^,;]*)", text):
            found.update(re.findall(r'"([^"]*)"', m.group(1)))
    return found


class AuditTest(fk.FleetTest):
    def setUp(self):
        super().setUp()
        self.init_test_key()
        self.fk("device", "add", "SN-0001")
        self.fk("device", "add", "SN-0002", "--model", "lock-v2")
        self.fk("user", "add", "alice")
        self.fk("device", "revoke", "SN-0002", "--reason", "stolen")

    def events(self, *args):
        out = self.fk("--json", "audit", "list", *args).jsonl()
        for e in out:
            self.assertRegex(e.pop("at"), ISO_TIME)
        return out

    def test_json_lines_oldest_first_match_the_registry(self):
        events = self.events()
        self.assertEqual([(e["action"], e["subject"], e["actor"]) for e in events],
                         [("init", "master:1", "tester"), ("device.add", "SN-0001", "tester"),
                          ("device.add", "SN-0002", "tester"), ("user.add", "alice", "tester"),
                          ("device.revoke", "SN-0002", "tester")])
        rows = self.rows("SELECT id, actor, action, subject, details FROM audit ORDER BY id")
        self.assertEqual([(e["id"], e["actor"], e["action"], e["subject"], e["details"]) for e in events],
                         [(i, a, act, s, json.loads(d)) for i, a, act, s, d in rows])
        self.assertEqual(events[1]["details"], {"fingerprint": KDEV_FP, "key_version": 1})
        self.assertEqual(events[4]["details"], {"reason": "stolen"})
        self.assertEqual(list(events[0].keys()), ["id", "actor", "action", "subject", "details"])

    def test_filters(self):
        self.assertEqual([e["subject"] for e in self.events("--action", "device.add")], ["SN-0001", "SN-0002"])
        self.assertEqual([e["action"] for e in self.events("--action", "device.")],
                         ["device.add", "device.add", "device.revoke"])
        self.assertEqual(self.events("--action", "device"), [])  # not a prefix without the dot
        self.assertEqual([e["action"] for e in self.events("--subject", "SN-0002")], ["device.add", "device.revoke"])
        self.assertEqual([e["action"] for e in self.events("--last", "2")], ["user.add", "device.revoke"])
        self.assertEqual([e["subject"] for e in self.events("--action", "device.add", "--last", "1")], ["SN-0002"])
        self.assertEqual(len(self.events("--since", "2000-01-01")), 5)
        self.assertEqual(self.events("--since", "2999-01-01T00:00:00Z"), [])
        self.assertEqual(len(self.events("--since", "@0")), 5)
        self.assertEqual(self.events("--since", "@253402300799"), [])  # 9999-12-31T23:59:59Z

    def test_subject_finds_events_that_name_it_as_their_device_or_token(self):
        self.fk("user", "grant", "alice", "--device", "SN-0001", "--role", "owner")
        cti = self.fk("--json", "token", "mint", "--sub", "alice", "--role", "owner", "--aud", "SN-0001").json()[
            "token_id"]
        # user grant mints the grant's token too.
        self.assertEqual([(e["action"], e["subject"]) for e in self.events("--subject", "SN-0001")],
                         [("device.add", "SN-0001"), ("user.grant", "alice"), ("token.mint", "alice"),
                          ("token.mint", "alice")])
        self.assertEqual([(e["action"], e["details"]["token_id"]) for e in self.events("--subject", cti)],
                         [("token.mint", cti)])
        self.assertEqual([e["action"] for e in self.events("--subject", "alice")],
                         ["user.add", "user.grant", "token.mint", "token.mint"])

    def test_the_default_actor_is_the_login_name(self):
        env = {k: v for k, v in self.env.items() if k != "FLEETKEY_ACTOR"}
        self.env = env
        self.fk("user", "add", "erin")
        # fleetkey(1): the release build, a static program, reads /etc/passwd alone; the dynamic one asks NSS.
        uid = os.geteuid()
        if fk.static_binary():
            with open("/etc/passwd") as f:
                names = [e[0] for e in (line.split(":") for line in f)
                         if len(e) >= 3 and e[2] == str(uid) and e[0] and e[0][0] not in "+-"]
        else:
            try:
                names = [pwd.getpwuid(uid).pw_name]
            except KeyError:
                names = []
        expected = names[0] if names else f"uid:{uid}"
        self.assertEqual(self.rows("SELECT actor FROM audit WHERE action = 'user.add' AND subject = 'erin'"),
                         [(expected,)])

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("setpriv"), "needs root and setpriv")
    def test_a_user_without_a_name_is_recorded_by_uid(self):
        # A uid the user database does not know: nothing must crash looking for its name (a static
        # glibc that loaded libnss_systemd for it did), and the audit trail records the number.
        uid = 54321
        while True:
            try:
                pwd.getpwuid(uid)
                uid += 1
            except KeyError:
                break
        os.chmod(self.tmp, 0o711)
        base = os.path.join(self.tmp, "nobody")
        os.mkdir(base, 0o700)
        os.chown(base, uid, uid)
        env = {k: v for k, v in self.env.items() if k != "FLEETKEY_ACTOR"}
        env["FLEETKEY_HOME"] = os.path.join(base, "home")
        if fk.PG_STATE:  # the home's registry: a database of its own
            env["FLEETKEY_REGISTRY"] = fk.pg_new_database(self)
        for args in (["init", "--no-passphrase"], ["device", "add", "SN-1"], ["--json", "audit", "list"]):
            r = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", fk.BIN, *args],
                               capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=60)
            self.assertEqual((r.returncode, r.stderr), (0, ""), r)
        self.assertEqual([(e["actor"], e["action"]) for e in map(json.loads, r.stdout.splitlines())],
                         [(f"uid:{uid}", "init"), (f"uid:{uid}", "device.add")])

    def test_an_event_is_one_line_whatever_its_actor_or_subject(self):
        # An actor with a line break would forge a second event in the table: refused, changing nothing.
        snap = self.snapshot()
        forged = "mallory\n99     2026-11-22T13:06:00Z root         device.revoke        SN-0001"
        for actor in (forged, "\x7f", "x" * 129):
            r = self.fails(USAGE, "user", "add", "dave", env={"FLEETKEY_ACTOR": actor})
            self.assertEqual(r.err, "fleetkey: error: $FLEETKEY_ACTOR must be 1 to 128 bytes of printable UTF-8\n")
        # Checked when the registry opens, before anything is written: a batch of labels leaves none.
        labels = os.path.join(self.tmp, "labels")
        self.fails(USAGE, "pair", "--all", "-o", labels, env={"FLEETKEY_ACTOR": forged})
        self.assertFalse(os.path.exists(labels))
        self.fails(USAGE, "device", "list", env={"FLEETKEY_ACTOR": forged})
        self.assertEqual(self.snapshot(), snap)
        self.fk("user", "add", "dave", env={"FLEETKEY_ACTOR": "x" * 128})
        # An import's subject is its file name, which may hold a line break and bytes that are not UTF-8.
        name = os.path.join(self.tmp, "ids\n99 forged").encode() + b"\xff.csv"
        with open(name, "w") as f:
            f.write("id\nSN-0003\n")
        r = self.run_fk("device", "import", name, binary=True)
        self.assertEqual(r.rc, OK, r)
        r = self.run_fk("audit", "list", "--action", "device.import", binary=True)
        self.assertEqual(r.rc, OK, r)
        lines = r.out.splitlines()
        self.assertEqual(len(lines), 2, r.out)
        # The byte that is not UTF-8 was stored as U+FFFD, on both backends (fleetkey(1), JSON OUTPUT, audit list).
        self.assertIn("ids\\n99 forged\ufffd.csv ".encode(), lines[1])
        r = self.run_fk("--json", "audit", "list", "--action", "device.import", binary=True)
        self.assertEqual(json.loads(r.out)["subject"], os.path.join(self.tmp, "ids\n99 forged\ufffd.csv"))
        self.assertEqual(self.rows("SELECT subject FROM audit WHERE action = 'device.import'"),
                         [(os.path.join(self.tmp, "ids\n99 forged\ufffd.csv"),)])
        self.fk("audit", "verify")
        # --subject with the same bytes finds it: the query is stored text too.
        r = self.run_fk("--json", "audit", "list", "--subject", name, binary=True)
        self.assertEqual((r.rc, [json.loads(x)["action"] for x in r.out.splitlines()]), (OK, ["device.import"]), r)

    def test_table(self):
        r = self.fk("audit", "list", "--action", "device.revoke")
        lines = r.out.splitlines()
        self.assertEqual(lines[0].split(), ["ID", "AT", "ACTOR", "ACTION", "SUBJECT", "DETAILS"])
        self.assertRegex(lines[1], r'^5 +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ +tester +device\.revoke +SN-0002 +'
                                   r'\{"reason":"stolen"\}$')
        self.assertEqual(len(lines), 2)
        self.assertEqual(self.fk("audit", "list", "--subject", "nobody").out, "")

    def test_details_may_quote_bytes_that_are_not_utf8(self):
        # A batch of labels records its directory; a file name is bytes, not necessarily UTF-8.
        out = os.path.join(self.tmp, "labels").encode() + b"\xff"
        r = self.run_fk("pair", "--all", "-o", out, binary=True)
        self.assertEqual(r.rc, OK, r)
        self.assertEqual(sorted(os.listdir(out)), [b"SN-0001.png", b"manifest.csv"])  # SN-0002 is revoked
        [e] = self.events("--action", "device.pair.batch")
        self.assertEqual(e["subject"], os.path.join(self.tmp, "labels\ufffd"))
        self.assertEqual(e["details"], {"count": 1, "scheme": "fleetkey",
                                        "manifest": os.path.join(self.tmp, "labels\ufffd", "manifest.csv")})

    def test_bad_queries_change_nothing(self):
        before = self.snapshot()
        for args in (["--since", "yesterday"], ["--since", "2026-02-30"], ["--since", "@253402300800"],
                     ["--since", "@9223372036854775807"], ["--last", "0"], ["--last", "-3"], ["--last", "x"],
                     ["--last", "1000000000001"], ["--bogus"]):
            self.fails(USAGE, "audit", "list", *args)
        # Past int64, CLI11 would hand over INT64_MAX: refused, not taken as "every event".
        r = self.fails(USAGE, "audit", "list", "--last", "99999999999999999999")
        self.assertEqual(r.err.splitlines()[-1], "fleetkey: error: --last must be at most 1000000000000")
        self.fails(USAGE, "audit")
        self.assertEqual(self.snapshot(), before)
        self.assertEqual(self.run_fk("audit", "list").rc, OK)


class AuditActionsTest(fk.FleetTest):
    """One command per action in a test-seed registry: each event's subject and details are as
    fleetkey-formats(5) documents them, and the page's table, this test and the source name the
    same actions."""

    def test_every_action_has_the_documented_subject_and_details(self):
        ids = os.path.join(self.tmp, "ids.csv")
        with open(ids, "w") as f:
            f.write("id\nSN-0003\n")
        svg, labels = os.path.join(self.tmp, "label.svg"), os.path.join(self.tmp, "labels")
        self.init_test_key()
        self.fk("master", "rotate")
        self.fk("master", "passwd", "--no-passphrase")
        self.fk("device", "add", "SN-0001")
        self.fk("device", "add", "SN-0002")
        self.fk("device", "import", ids)
        self.fk("device", "key", "SN-0001")
        self.fk("device", "key", "SN-0001", "--purpose", "enc")
        self.fk("device", "key", "--from", "-", input="SN-0001\n")
        self.fk("pair", "SN-0001", "--qr", "none")
        self.fk("pair", "SN-0001", "-o", svg)
        self.fk("pair", "SN-0001", "--rotate", "-o", svg + ".2", "--qr", "svg")
        self.fk("pair", "--all", "-o", labels)
        self.fk("user", "add", "alice")
        self.fk("user", "grant", "alice", "--device", "SN-0001", "--role", "owner")
        self.fk("user", "grant", "alice", "--device", "SN-0001", "--role", "guest", "--ttl", "1d")
        self.fk("user", "key", "alice", "--device", "SN-0001")
        cti = self.fk("--json", "token", "mint", "--sub", "svc", "--role", "admin", "--type", "jwt").json()[
            "token_id"]
        self.fk("token", "revoke", cti, "--reason", "leaked")
        self.fk("token", "key")
        self.fk("token", "key", "--aud", "SN-0001", "--for", "cwt64")
        self.fk("user", "revoke", "alice", "--reason", "left")
        self.fk("user", "grant", "alice", "--device", "SN-0002", "--role", "guest")
        self.fk("device", "revoke", "SN-0002", "--reason", "stolen")  # ends alice's grant on it
        self.fk("master", "retire", "1")
        shares = os.path.join(self.tmp, "shares")
        self.fk("master", "backup", "--shares", "3", "--threshold", "2", "-o", shares)
        os.rename(self.key_path, self.key_path + ".old")
        self.fk("master", "restore", "--no-passphrase", *(os.path.join(shares, f"share-{i}.txt") for i in (1, 3)))
        self.fk("master", "import-to-hsm", fk.HSM_URI, env={**fk.make_softhsm_token(self.tmp),
                                                            "FLEETKEY_PKCS11_PIN": fk.HSM_PIN})

        lines = self.fk("--json", "audit", "list").out.splitlines()
        events = [json.loads(line) for line in lines]
        self.assertEqual([(e["action"], e["subject"]) for e in events], [
            ("init", "master:1"), ("master.rotate", "master:2"), ("master.passwd", "master"),
            ("device.add", "SN-0001"), ("device.add", "SN-0002"), ("device.import", ids),
            ("device.key.export", "SN-0001"), ("device.key.export", "SN-0001"), ("device.keys.export", "stdin"),
            ("device.pair", "SN-0001"),
            ("device.pair", "SN-0001"), ("device.pair.rotate", "SN-0001"), ("device.pair.batch", labels),
            ("user.add", "alice"), ("user.grant", "alice"), ("token.mint", "alice"), ("user.grant", "alice"),
            ("token.mint", "alice"), ("user.key.export", "alice"), ("token.mint", "svc"), ("token.revoke", cti),
            ("token.key.export", "v2"), ("token.key.export", "v2/SN-0001"), ("user.revoke", "alice"),
            ("user.grant", "alice"), ("token.mint", "alice"), ("device.revoke", "SN-0002"), ("user.revoke", "alice"),
            ("master.retire", "master:1"),
            ("master.backup", "master"), ("master.restore", "master"), ("master.import_to_hsm", "master")])
        self.assertRegex(cti, r"^[0-9a-f]+$")
        self.assertEqual(events[10]["details"]["file"], svg)
        self.assertEqual(events[12]["details"]["manifest"], os.path.join(labels, "manifest.csv"))
        self.assertEqual(events[16]["details"]["replaced_epoch"], 1)

        # Members: the documented names, and in every event only those; each "only" member seen.
        doc = documented_actions()
        seen = {}
        for e in events:
            always, sometimes = ACTIONS[e["action"]]
            names = set(e["details"])
            self.assertTrue(always <= names <= always | sometimes, e)
            seen.setdefault(e["action"], set()).update(names)
        self.assertEqual(seen, {a: always | sometimes for a, (always, sometimes) in ACTIONS.items()})
        # The page, this test and the source name the same actions and members.
        self.assertEqual(set(doc), set(ACTIONS))
        self.assertEqual(actions_in_source(), set(ACTIONS))
        for action, (always, sometimes) in ACTIONS.items():
            self.assertEqual(set(doc[action]), always | sometimes, action)
            self.assertEqual({m for m, t in doc[action].items() if ", only " in t.split(":")[0]}, sometimes, action)
        # Types as documented.
        json_type = {bool: "boolean", int: "integer", str: "string", list: "array"}
        for e in events:
            for name, value in e["details"].items():
                documented = doc[e["action"]][name].split(":")[0].split(",")[0]
                got = "null" if value is None else json_type[type(value)]
                self.assertIn(got, documented.split(" or "), (e["action"], name, value))

        # Serialization: the --json line has its members in a fixed order and the details in byte
        # order of their names; the registry holds the same details text.
        stored = dict(self.rows("SELECT id, details FROM audit"))
        for line, e in zip(lines, events):
            details = dict(sorted(e["details"].items(), key=lambda kv: kv[0].encode()))
            text = json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            self.assertEqual(list(e), ["id", "at", "actor", "action", "subject", "details"])
            self.assertEqual(list(e["details"]), list(details))
            self.assertEqual(stored[e["id"]], text)
            e["details"] = details
            self.assertEqual(line, json.dumps(e, separators=(",", ":"), ensure_ascii=False))
        table = self.fk("audit", "list").out.splitlines()[1:]
        self.assertEqual([line.split(None, 5)[5] for line in table], [stored[e["id"]] for e in events])


if __name__ == "__main__":
    fk.main()
