"""fleetkey user add | list | show | grant | revoke | key."""
import json

import fk

KUSER = "9bc8832d1d9f1a7faeefbee7da0f66ad1243ca3ccf45c1b426f8b34d708386d9"  # fleetkey-formats(5): alice, epoch 1


class UserTest(fk.FleetTest):
    def setUp(self):
        super().setUp()
        self.init_test_key()
        self.fk("device", "add", "SN-0001")
        self.fk("device", "add", "SN-0002")

    def test_add_list_show(self):
        self.assertEqual(self.fk("user", "add", "bob", "--label", "team=ops").out, "added user bob\n")
        self.assertEqual(self.fk("user", "add", "alice").out, "added user alice\n")
        lines = self.fk("user", "list").out.splitlines()
        self.assertEqual(lines[0], "NAME                     CREATED               LABELS")
        self.assertRegex(lines[1], r"^alice                    \S+Z  -$")
        self.assertRegex(lines[2], r"^bob                      \S+Z  team=ops$")
        self.assertEqual([u["name"] for u in self.fk("--json", "user", "list").jsonl()], ["alice", "bob"])
        j = self.fk("--json", "user", "show", "bob").json()
        self.assertRegex(j.pop("created"), fk.ISO_TIME)
        self.assertEqual(j, {"name": "bob", "labels": {"team": "ops"}, "grants": []})
        self.assertEqual(self.rows("SELECT action, subject FROM audit WHERE action = 'user.add' ORDER BY id"),
                         [("user.add", "bob"), ("user.add", "alice")])

    def test_duplicate_and_malformed_users(self):
        self.fk("user", "add", "alice")
        snap = self.snapshot()
        r = self.fails(fk.CONFLICT, "user", "add", "alice")
        self.assertEqual(r.err, 'fleetkey: error: user "alice" already exists\n')
        for bad in ["", "a\tb", "x" * 129]:
            self.fails(fk.USAGE, "user", "add", bad)
        self.assertEqual(self.snapshot(), snap)

    def test_grant_key_revoke_regrant(self):
        self.fk("user", "add", "alice")
        r = self.fk("user", "grant", "alice", "--device", "SN-0001", "--role", "owner", "--ttl", "30d")
        self.assertRegex(r.out, r"^user:         alice\ndevice:       SN-0001\nrole:         owner\nepoch:        1\n"
                                r"expires:      \S+Z\nuser key:     [A-Za-z0-9+/]{43}=\nfingerprint:  [0-9a-f]{32}\n"
                                r"token:        [A-Za-z0-9_-]+\ntoken id:     [0-9a-f]{32}\n$")
        self.assertEqual(self.fk("user", "key", "alice", "--device", "SN-0001").out, KUSER + "\n")
        self.assertEqual(self.rows("SELECT user, device, role, epoch, status FROM grants"),
                         [("alice", "SN-0001", "owner", 1, "active")])
        r = self.fk("user", "revoke", "alice", "--device", "SN-0001", "--reason", "phone lost")
        self.assertEqual(r.out, "revoked alice on device SN-0001 (key epoch now 2)\n")
        self.assertEqual(self.rows("SELECT epoch, status, revoke_reason FROM grants"), [(2, "revoked", "phone lost")])
        self.assertEqual(self.rows("SELECT kind, device, user, reason FROM revocations"),
                         [("grant", "SN-0001", "alice", "phone lost")])
        r = self.fails(fk.CONFLICT, "user", "key", "alice", "--device", "SN-0001")
        self.assertIn("is revoked", r.err)
        self.fk("user", "grant", "alice", "--device", "SN-0001", "--role", "guest", "--ttl", "never")
        new = self.fk("user", "key", "alice", "--device", "SN-0001").out
        self.assertRegex(new, r"^[0-9a-f]{64}\n$")
        self.assertNotEqual(new, KUSER + "\n")
        self.assertEqual(self.rows("SELECT role, epoch, status, expires FROM grants"), [("guest", 2, "active", None)])

    def test_grant_json_holds_the_key_and_its_metadata(self):
        self.fk("user", "add", "alice")
        j = self.fk("--json", "user", "grant", "alice", "--device", "SN-0001", "--role", "owner").json()
        self.assertEqual(bytes.fromhex(KUSER), __import__("base64").b64decode(j["user_key"]))
        self.assertEqual((j["type"], j["device"], j["user"], j["role"], j["epoch"]),
                         ("fleetkey-grant", "SN-0001", "alice", "owner", 1))

    def test_revoke_everywhere(self):
        self.fk("user", "add", "alice")
        self.fk("user", "grant", "alice", "--device", "SN-0001", "--role", "owner")  # expires in 30 days
        self.fk("user", "grant", "alice", "--device", "SN-0002", "--role", "guest")
        r = self.fk("--json", "user", "revoke", "alice", "--reason", "left")
        self.assertEqual([(g["device"], g["epoch"], g["status"]) for g in r.jsonl()],
                         [("SN-0001", 2, "revoked"), ("SN-0002", 2, "revoked")])
        snap = self.snapshot()
        r = self.fails(fk.CONFLICT, "user", "revoke", "alice", "--reason", "again")
        self.assertEqual(r.err, 'fleetkey: error: user "alice" has no active grant to revoke\n')
        self.assertEqual(self.snapshot(), snap)
        out = self.fk("user", "show", "alice").out
        self.assertIn("grants:   2\n", out)
        self.assertRegex(out, r"  SN-0001 +role owner +epoch 2 +revoked +expires \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n")

    def test_errors_change_nothing(self):
        self.fk("user", "add", "alice")
        snap = self.snapshot()
        self.fails(fk.NOT_FOUND, "user", "grant", "bob", "--device", "SN-0001", "--role", "owner")
        self.fails(fk.NOT_FOUND, "user", "grant", "alice", "--device", "SN-9", "--role", "owner")
        self.fails(fk.USAGE, "user", "grant", "alice", "--device", "SN-0001", "--role", "bad role")
        self.fails(fk.USAGE, "user", "grant", "alice", "--device", "SN-0001", "--role", "owner", "--ttl", "soon")
        self.fails(fk.USAGE, "user", "grant", "alice", "--device", "SN-0001")
        r = self.fails(fk.NOT_FOUND, "user", "key", "alice", "--device", "SN-0001")
        self.assertIn("has no grant on device", r.err)
        self.fails(fk.NOT_FOUND, "user", "revoke", "alice", "--device", "SN-0001", "--reason", "x")
        r = self.fails(fk.NOT_FOUND, "user", "revoke", "alice", "--reason", "x")
        self.assertEqual(r.err, 'fleetkey: error: user "alice" has no grant\n')
        self.fails(fk.NOT_FOUND, "user", "show", "bob")
        self.assertEqual(self.snapshot(), snap)

    def test_grant_on_revoked_device_refused(self):
        self.fk("user", "add", "alice")
        self.fk("device", "revoke", "SN-0002", "--reason", "scrapped")
        snap = self.snapshot()
        self.fails(fk.CONFLICT, "user", "grant", "alice", "--device", "SN-0002", "--role", "owner")
        self.assertEqual(self.snapshot(), snap)

    def test_user_key_formats(self):
        self.fk("user", "add", "alice")
        self.fk("user", "grant", "alice", "--device", "SN-0001", "--role", "owner")
        self.assertEqual(self.fk("user", "key", "alice", "--device", "SN-0001", "--format", "psk").out,
                         f"alice:{KUSER}\n")
        c = self.fk("user", "key", "alice", "--device", "SN-0001", "--format", "c").out
        self.assertIn('/* fleetkey user key for device "SN-0001", user "alice" epoch 1, master key v1', c)
        self.assertIn("fleetkey_user_key[32]", c)
        j = json.loads(self.fk("user", "key", "alice", "--device", "SN-0001", "--format", "json").out)
        self.assertEqual(j["epoch"], 1)


if __name__ == "__main__":
    fk.main()
