"""user grant --device A --device B and --devices-from FILE|-: one user on many devices in one transaction,
all or nothing; one bundle per device (JSON Lines with --json)."""
import json
import os

import fk

NOW = "2026-11-22T00:00:00Z"


class GrantManyTest(fk.FleetTest):
    def setUp(self):
        super().setUp()
        self.init_test_key()
        for d in ("LOCK-1", "LOCK-2", "LOCK-3"):
            self.fk("-q", "device", "add", d)
        self.fk("-q", "user", "add", "alice")

    def grant(self, *args, **kw):
        return self.fk("-q", "--json", "user", "grant", "alice", "--role", "guest", "--now", NOW, *args, **kw)

    def grants(self):
        return self.rows("SELECT user, device, role, epoch, status FROM grants ORDER BY device")

    def test_many_devices_one_line_each(self):
        lines = self.grant("--device", "LOCK-1", "--device", "LOCK-3").jsonl()
        self.assertEqual([(j["type"], j["user"], j["device"], j["role"], j["epoch"]) for j in lines],
                         [("fleetkey-grant", "alice", "LOCK-1", "guest", 1), ("fleetkey-grant", "alice", "LOCK-3",
                                                                             "guest", 1)])
        self.assertEqual(self.grants(), [("alice", "LOCK-1", "guest", 1, "active"),
                                         ("alice", "LOCK-3", "guest", 1, "active")])
        for j in lines:
            self.assertEqual(set(j), {"type", "version", "user", "device", "role", "epoch", "key_version", "expires",
                                      "fingerprint", "test_key", "token", "token_id", "user_key"})
        self.assertEqual(self.rows("SELECT count(*) FROM audit WHERE action = 'user.grant'"), [(2,)])

    def test_devices_from_file_and_stdin(self):
        path = self.write_private("devices.txt", "# the doors\nLOCK-1\r\n\nLOCK-2\n")
        lines = self.grant("--devices-from", path).jsonl()
        self.assertEqual([j["device"] for j in lines], ["LOCK-1", "LOCK-2"])
        lines = self.grant("--device", "LOCK-1", "--devices-from", "-", input="LOCK-3\n").jsonl()
        self.assertEqual([(j["device"], j["epoch"]) for j in lines], [("LOCK-1", 2), ("LOCK-3", 1)])

    def test_human_output_one_block_per_device(self):
        out = self.fk("-q", "user", "grant", "alice", "--role", "guest", "--now", NOW, "--device", "LOCK-1",
                      "--device", "LOCK-2").out
        blocks = out.split("\n\n")
        self.assertEqual(len(blocks), 2)
        for block, device in zip(blocks, ("LOCK-1", "LOCK-2")):
            self.assertTrue(block.startswith(f"user:         alice\ndevice:       {device}\nrole:         guest\n"
                                             "epoch:        1\nexpires:      2026-12-22T00:00:00Z\nuser key:     "),
                            block)

    def test_one_unknown_device_changes_nothing(self):
        before = self.snapshot()
        r = self.fails(fk.NOT_FOUND, "user", "grant", "alice", "--role", "guest", "--device", "LOCK-1", "--device",
                       "LOCK-9", "--device", "LOCK-2")
        self.assertEqual(r.err, fk.TEST_KEY_WARNING + "fleetkey: error: device \"LOCK-9\" is not registered\n")
        self.assertEqual(self.snapshot(), before)
        self.assertEqual(self.grants(), [])

    def test_a_revoked_device_changes_nothing(self):
        self.fk("-q", "device", "revoke", "LOCK-2", "--reason", "gone")
        before = self.snapshot()
        r = self.run_fk("--json-errors", "-q", "user", "grant", "alice", "--role", "guest", "--device", "LOCK-1",
                        "--device", "LOCK-2")
        self.assertEqual((r.rc, r.out), (fk.CONFLICT, ""))
        self.assertEqual(json.loads(r.err)["error"]["code"], "device_revoked")
        self.assertEqual(self.snapshot(), before)

    def test_usage_errors(self):
        before = self.snapshot()
        for args, message in (
                (["--device", "LOCK-1", "--device", "LOCK-1"], "device LOCK-1 is named twice"),
                (["--device", "LOCK-1", "--device", "LOCK-2", "-o", self.path("b.json")],
                 "-o and --qr deliver one bundle: give one device"),
                (["--device", "LOCK-1", "--device", "LOCK-2", "--qr", "utf8"],
                 "-o and --qr deliver one bundle: give one device"),
                ([], "user grant needs --device ID or --devices-from FILE (with at least one id)")):
            r = self.fails(fk.USAGE, "-q", "user", "grant", "alice", "--role", "guest", *args)
            self.assertEqual(r.err, f"fleetkey: error: {message}\n")
        r = self.fails(fk.USAGE, "-q", "user", "grant", "alice", "--role", "guest", "--devices-from", "-", input="\n")
        self.assertEqual(r.err, "fleetkey: error: user grant needs --device ID or --devices-from FILE (with at least "
                                "one id)\n")
        self.assertEqual(self.snapshot(), before)

    def path(self, name):
        return os.path.join(self.tmp, name)


if __name__ == "__main__":
    fk.main()
