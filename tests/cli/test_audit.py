"""fleetkey audit list: the audit trail read back, filtered, as a table and as JSON Lines."""
import json

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

    def test_table(self):
        r = self.fk("audit", "list", "--action", "device.revoke")
        lines = r.out.splitlines()
        self.assertEqual(lines[0].split(), ["ID", "AT", "ACTOR", "ACTION", "SUBJECT", "DETAILS"])
        self.assertRegex(lines[1], r'^5 +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ +tester +device\.revoke +SN-0002 +'
                                   r'\{"reason":"stolen"\}$')
        self.assertEqual(len(lines), 2)
        self.assertEqual(self.fk("audit", "list", "--subject", "nobody").out, "")

    def test_bad_queries_change_nothing(self):
        before = self.snapshot()
        for args in (["--since", "yesterday"], ["--since", "2026-02-30"], ["--last", "0"], ["--last", "-3"],
                     ["--last", "x"], ["--bogus"]):
            self.fails(USAGE, "audit", "list", *args)
        self.fails(USAGE, "audit")
        self.assertEqual(self.snapshot(), before)
        self.assertEqual(self.run_fk("audit", "list").rc, OK)


if __name__ == "__main__":
    fk.main()
