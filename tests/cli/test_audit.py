"""fleetkey audit list: the audit trail read back, filtered, as a table and as JSON Lines."""
import json
import os

import fk
from fk import ISO_TIME, OK, USAGE

KDEV_FP = "8cd660a9aea4d2726388577ff31c2279"


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
        self.assertIn(b"ids\\n99 forged\\xff.csv ", lines[1])
        r = self.run_fk("--json", "audit", "list", "--action", "device.import", binary=True)
        self.assertEqual(json.loads(r.out)["subject"], os.path.join(self.tmp, "ids\n99 forged\ufffd.csv"))

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
        self.assertEqual(e["details"], {"count": 1, "scheme": "fleetkey",
                                        "manifest": os.path.join(self.tmp, "labels\ufffd", "manifest.csv")})

    def test_bad_queries_change_nothing(self):
        before = self.snapshot()
        for args in (["--since", "yesterday"], ["--since", "2026-02-30"], ["--since", "@253402300800"],
                     ["--since", "@9223372036854775807"], ["--last", "0"], ["--last", "-3"], ["--last", "x"],
                     ["--bogus"]):
            self.fails(USAGE, "audit", "list", *args)
        self.fails(USAGE, "audit")
        self.assertEqual(self.snapshot(), before)
        self.assertEqual(self.run_fk("audit", "list").rc, OK)


if __name__ == "__main__":
    fk.main()
