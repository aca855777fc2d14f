#!/usr/bin/python3
"""Every command's --json object against fleetkey(1), JSON OUTPUT: each entry there names a command (and the case
of it), and its members in order, optional ones in brackets. This test runs each case and checks that its
members are exactly the documented ones, in the documented order, so that the page and the commands stay in
step: a member added to a command without its documentation, or documented and gone, fails here."""
import os
import re
import signal

import fk

MAN = os.path.join(fk.SOURCE_DIR, "man", "fleetkey.1")


def documented():
    """{entry: [(member, optional)]} from the JSON OUTPUT section."""
    with open(MAN) as f:
        page = f.read()
    text = page.split('.\\" json-members-begin\n')[1].split('.\\" json-members-end')[0]
    entries = {}
    for block in text.split(".TP\n")[1:]:
        head, body = block.split("\n", 1)
        name = head.removeprefix(".B ").strip().strip('"').replace("\\-", "-")
        # The members: bold names, up to the first period that ends the list; [ ] marks an optional one.
        members_text = body.split(".\n")[0] if ".\n" in body else body
        members = [(m.group(2), m.group(1) == "[") for m in
                   re.finditer(r"(\[?)\\fB([a-z_0-9]+)\\fR", members_text)]
        assert name not in entries, name
        entries[name] = members
    return entries


class JsonMembersTest(fk.FleetTest):

    def observe(self, entry, *args, **kw):
        """Runs fleetkey --json ARGS and records the member names of each object it printed under `entry`."""
        r = self.fk("--json", *args, **kw)
        for obj in r.jsonl():
            self.seen.setdefault(entry, []).append(list(obj))
        return r

    def test_every_json_object_is_documented(self):
        self.seen = {}
        self.observe("init", "init", "--no-passphrase", "--test-seed", fk.TEST_SEED)
        self.observe("init", "init", "--if-missing")
        self.observe("master list", "master", "list")
        self.observe("master rotate", "master", "rotate")
        self.observe("master retire", "master", "retire", "1")
        self.observe("master passwd", "master", "passwd", "--no-passphrase")
        self.observe("master backup (shares on stdout)", "master", "backup", "--shares", "2", "--threshold", "2")
        self.observe("master backup -o", "master", "backup", "--shares", "2", "--threshold", "2", "-o",
                     os.path.join(self.tmp, "shares"))
        # Devices.
        self.observe("device add", "device", "add", "SN-0001", "--model", "lock", "--label", "site=a")
        self.observe("device add", "device", "add", "SN-0001", "--if-missing")
        self.observe("device add", "device", "add", "SN-0002")
        self.observe("device add", "device", "add", "SN-0003")
        path = self.write_private("d.csv", "id\nSN-0010\n")
        self.observe("device import", "device", "import", path)
        self.observe("device list", "device", "list")
        self.observe("device key", "device", "key", "SN-0001")
        self.observe("device key", "device", "key", "SN-0001", "--purpose", "enc")
        self.observe("device key", "device", "key", "--from", "-", input="SN-0001\n")
        now = ("--now", "2026-11-22T00:00:00Z")
        self.observe("device state", "device", "state", "SN-0001", *now)
        self.observe("device state", "device", "state", "SN-0001", *now, "-o", os.path.join(self.tmp, "s"))
        os.mkdir(os.path.join(self.tmp, "states"))
        self.observe("device state --all", "device", "state", "--all", *now, "-o", os.path.join(self.tmp, "states"))
        # Users and grants.
        self.observe("user add", "user", "add", "alice", "--label", "team=ops")
        self.observe("user add", "user", "add", "alice", "--if-missing")
        self.observe("user list", "user", "list")
        self.observe("user grant", "user", "grant", "alice", "--device", "SN-0001", "--role", "owner", "--ttl", "30d")
        self.observe("user grant", "user", "grant", "alice", "--device", "SN-0001", "--role", "owner", "--keep-epoch")
        self.observe("user grant", "user", "grant", "alice", "--device", "SN-0002", "--role", "guest", "-o",
                     os.path.join(self.tmp, "bundle.json"))
        self.observe("user show", "user", "show", "alice")
        self.observe("device show", "device", "show", "SN-0001")
        self.observe("user key", "user", "key", "alice", "--device", "SN-0001")
        self.observe("user revoke", "user", "revoke", "alice", "--device", "SN-0002", "--reason", "done")
        # Tokens.
        token = self.observe("token mint", "token", "mint", "--sub", "svc", "--role", "admin").json()["token"]
        self.observe("token mint", "token", "mint", "--sub", "alice", "--role", "owner", "--aud", "SN-0001",
                     "--type", "jwt")
        self.observe("token verify", "token", "verify", token)
        self.observe("token verify", "token", "verify", "-", input=token + "\n")
        # Rejected tokens: an expired one (with error) and a malformed one (no format, kid, token id).
        old = self.fk("token", "mint", "--sub", "svc", "--role", "admin", "--now", "@1700000000").out.strip()
        for bad, code in ((old, fk.TOKEN_EXPIRED), ("garbage", fk.TOKEN_MALFORMED)):
            r = self.run_fk("--json", "token", "verify", bad)
            self.assertEqual(r.rc, code, r)
            self.seen["token verify"].append(list(r.json()))
        self.observe("token inspect", "token", "inspect", token)
        self.observe("token key", "token", "key")
        self.observe("token key", "token", "key", "--aud", "SN-0001", "--for", "jwt")
        self.observe("token revoke", "token", "revoke", token, "--reason", "leak")
        other = self.fk("token", "mint", "--sub", "svc2", "--role", "admin").out.strip()
        self.observe("token revoke", "token", "revoke", other, "--reason", "leak", "--if-not-revoked")
        self.observe("token revoke --if-not-revoked (already)", "token", "revoke", token, "--reason", "leak",
                     "--if-not-revoked")
        self.observe("device revoke", "device", "revoke", "SN-0003", "--reason", "scrap")
        self.observe("device revoke", "device", "revoke", "SN-0003", "--reason", "scrap", "--if-not-revoked")
        # Pairing.
        fleetkey_code = self.observe("pair (fleetkey)", "pair", "SN-0001", "--qr", "none").json()
        self.observe("pair (fleetkey)", "pair", "SN-0001", "--qr", "png", "-o", os.path.join(self.tmp, "l.png"))
        matter = self.observe("pair (matter)", "pair", "SN-0002", "--scheme", "matter", "--vendor-id", "0xFFF1",
                              "--product-id", "0x8000", "--qr", "none", "--iterations", "1000").json()
        self.observe("pair (matter)", "pair", "SN-0002", "--scheme", "matter", "--vendor-id", "0xFFF1",
                     "--product-id", "0x8000", "--flow", "2", "--qr", "none", "--iterations", "1000")
        self.observe("pair --all", "pair", "--all", "-o", os.path.join(self.tmp, "labels"))
        self.observe("pair --all", "pair", "--all", "--scheme", "matter", "--vendor-id", "0xFFF1", "--product-id",
                     "0x8000", "--iterations", "1000", "-o", os.path.join(self.tmp, "matter-labels"))
        self.observe("pair decode (fleetkey payload)", "pair", "decode", fleetkey_code["payload"])
        self.observe("pair decode (fleetkey PIN)", "pair", "decode", fleetkey_code["pin"])
        self.observe("pair decode (Matter QR payload)", "pair", "decode", matter["payload"])
        self.observe("pair decode (Matter manual code)", "pair", "decode", matter["manual_code"])
        long_code = self.fk("--json", "pair", "SN-0002", "--scheme", "matter", "--vendor-id", "0xFFF1",
                            "--product-id", "0x8000", "--flow", "2", "--qr", "none", "--iterations",
                            "1000").json()["manual_code"]
        self.observe("pair decode (Matter manual code)", "pair", "decode", long_code)
        # The audit trail.
        self.observe("audit list", "audit", "list", "--last", "3")
        checkpoint = self.observe("audit checkpoint", "audit", "checkpoint").out
        self.observe("audit verify", "audit", "verify")
        self.observe("audit verify", "audit", "verify", "--checkpoint", self.write_private("cp.json", checkpoint))
        # The agent.
        j = self.observe("agent start", "agent", "start").json()
        try:
            agent = {"FLEETKEY_AGENT": j["socket"]}
            self.observe("agent status", "agent", "status", env=agent)
            self.observe("agent stop", "agent", "stop", env=agent)
        finally:
            try:
                os.kill(j["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
        # master restore: a new key file from the shares written above.
        shares = [os.path.join(self.tmp, "shares", f) for f in sorted(os.listdir(os.path.join(self.tmp, "shares")))]
        self.observe("master restore", "--master-key", os.path.join(self.tmp, "restored.key"), "master", "restore",
                     "--no-passphrase", *shares)

        docs = documented()
        self.assertEqual(sorted(set(self.seen) - set(docs)), [], "cases with no JSON OUTPUT entry")
        self.assertEqual(sorted(set(docs) - set(self.seen)), [], "JSON OUTPUT entries this test never runs")
        for entry, objects in self.seen.items():
            members = docs[entry]
            names = [m for m, _ in members]
            required = [m for m, optional in members if not optional]
            for got in objects:
                self.assertEqual([m for m in got if m not in names], [], f"{entry}: undocumented members")
                self.assertEqual([m for m in required if m not in got], [], f"{entry}: documented, missing")
                self.assertEqual(got, [m for m in names if m in got], f"{entry}: not in the documented order")


if __name__ == "__main__":
    fk.main()
