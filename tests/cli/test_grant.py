#!/usr/bin/python3
"""user grant: the credential bundle for the phone (JSON and QR), its device-audience CWT, and
user revoke making the old key and tokens stop working."""
import base64
import hashlib
import hmac
import json
import os
import time

import cbor2

import fk
from fk import FAILURE, USAGE, CONFLICT, TOKEN_REVOKED, TOKEN_WRONG_AUDIENCE

BUNDLE_KEYS = ["type", "version", "user", "device", "role", "epoch", "key_version", "expires", "fingerprint",
               "test_key", "token", "token_id", "user_key"]


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class GrantTest(fk.FleetTest):
    def setUp(self):
        super().setUp()
        self.init_test_key()
        self.fk("device", "add", "LOCK-1")
        self.fk("device", "add", "LOCK-2")
        self.fk("user", "add", "alice")

    def fails(self, code, *args, **kw):
        r = self.run_fk(*args, **kw)
        self.assertEqual(r.rc, code, r)
        self.assertEqual(r.out, "", r)
        self.assertRegex(r.err.replace(fk.TEST_KEY_WARNING, "", 1), r"^fleetkey: error: [^\n]+\n$")
        return r

    def grant(self, *args):
        return self.fk("--json", "user", "grant", "alice", "--device", "LOCK-1", "--role", "owner", *args).json()

    def test_bundle_fields_and_token(self):
        b = self.grant("--ttl", "30d")
        self.assertEqual(list(b), BUNDLE_KEYS)
        self.assertEqual((b["type"], b["version"], b["user"], b["device"], b["role"], b["epoch"], b["key_version"],
                          b["test_key"]), ("fleetkey-grant", 1, "alice", "LOCK-1", "owner", 1, 1, True))
        self.assertRegex(b["expires"], fk.ISO_TIME)
        # The user key is the one `user key` prints, and the fingerprint is its.
        self.assertEqual(base64.b64decode(b["user_key"]).hex(),
                         self.fk("user", "key", "alice", "--device", "LOCK-1").out.strip())
        # The token: a CWT for the lock, with the grant's epoch, expiring with the grant.
        tagged = cbor2.loads(b64d(b["token"]))
        protected, _, payload, tag = tagged.value
        self.assertEqual(cbor2.loads(protected), {1: 5, 4: b"v1/LOCK-1"})
        c = cbor2.loads(payload)
        self.assertEqual((c[2], c[3], c[9], c["epoch"]), ("alice", "LOCK-1", "owner", 1))
        self.assertEqual(c[4] - c[6], 30 * 86400)
        self.assertEqual(c[7].hex(), b["token_id"])
        # The lock checks it with K_tok_dev(LOCK-1) alone.
        key = bytes.fromhex(self.fk("token", "key", "--aud", "LOCK-1").out.strip())
        mac = hmac.new(key, cbor2.dumps(["MAC0", protected, b"", payload]), hashlib.sha256).digest()
        self.assertEqual(mac, tag)
        v = self.fk("--json", "token", "verify", b["token"], "--aud", "LOCK-1").json()
        self.assertEqual((v["valid"], v["claims"]["epoch"]), (True, 1))
        r = self.run_fk("token", "verify", b["token"], "--aud", "LOCK-2")
        self.assertEqual(r.rc, TOKEN_WRONG_AUDIENCE)

    def test_grant_without_ttl_expires_in_30_days_and_ttl_never_has_no_exp(self):
        # Grants used to have no expiry unless --ttl gave one; now they expire after 30 days by default.
        b = self.grant()
        c = cbor2.loads(cbor2.loads(b64d(b["token"])).value[2])
        self.assertEqual(c[4] - c[6], 30 * 86400)
        self.assertEqual(b["expires"], time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(c[4])))
        b = self.grant("--ttl", "never")
        self.assertIsNone(b["expires"])
        self.assertNotIn(4, cbor2.loads(cbor2.loads(b64d(b["token"])).value[2]))

    def test_human_output(self):
        r = self.fk("user", "grant", "alice", "--device", "LOCK-1", "--role", "guest")
        lines = r.out.splitlines()
        self.assertEqual([l.split(":")[0] for l in lines],
                         ["user", "device", "role", "epoch", "expires", "user key", "fingerprint", "token", "token id"])
        self.assertEqual(lines[2], "role:         guest")
        token = lines[7].split()[1]
        self.fk("token", "verify", token, "--aud", "LOCK-1")

    def test_revoke_stops_old_tokens_and_regrant_issues_new_epoch(self):
        old = self.grant()
        self.fk("user", "revoke", "alice", "--device", "LOCK-1", "--reason", "phone lost")
        r = self.run_fk("--json", "token", "verify", old["token"], "--aud", "LOCK-1")
        self.assertEqual(r.rc, TOKEN_REVOKED, r)
        self.assertEqual(json.loads(r.out)["error"],
                         'grant of "alice" on device "LOCK-1" was revoked (token epoch 1, grant epoch 2)')
        new = self.grant()
        self.assertEqual(new["epoch"], 2)
        self.assertNotEqual(new["user_key"], old["user_key"])
        self.fk("token", "verify", new["token"], "--aud", "LOCK-1")
        # Re-granting does not revive the old epoch's token.
        self.assertEqual(self.run_fk("token", "verify", old["token"]).rc, TOKEN_REVOKED)
        self.assertEqual(self.rows("SELECT user, device, epoch, status FROM grants"), [("alice", "LOCK-1", 2, "active")])
        self.assertEqual(self.rows("SELECT kind, device, user FROM revocations"), [("grant", "LOCK-1", "alice")])

    def test_qr_png_and_svg_decode_to_the_bundle(self):
        png = os.path.join(self.tmp, "grant.png")
        r = self.fk("user", "grant", "alice", "--device", "LOCK-1", "--role", "owner", "--qr", "png", "-o", png)
        self.assertIn("wrote the QR code to %s\n" % png, r.out)
        self.assertEqual(os.stat(png).st_mode & 0o777, 0o600)
        codes = fk.zbar(png)
        self.assertEqual(len(codes), 1, codes)
        bundle = json.loads(codes[0])
        self.assertEqual(list(bundle), BUNDLE_KEYS)
        self.assertEqual(bundle["device"], "LOCK-1")
        self.assertIn("token:        %s\n" % bundle["token"], r.out)
        self.fk("token", "verify", bundle["token"], "--aud", "LOCK-1")
        svg = os.path.join(self.tmp, "grant.svg")
        self.fk("--json", "user", "grant", "alice", "--device", "LOCK-1", "--role", "owner", "--qr", "svg", "-o", svg)
        with open(svg) as f:
            self.assertRegex(f.read(), r'^(<\?xml version="1.0" encoding="UTF-8"\?>\n)?<svg ')
        # An SVG on stdout, and the terminal rendering.
        r = self.fk("user", "grant", "alice", "--device", "LOCK-1", "--role", "owner", "--qr", "svg")
        self.assertRegex(r.out, r'^(<\?xml version="1.0" encoding="UTF-8"\?>\n)?<svg ')
        self.assertTrue(r.out.endswith("</svg>\n"), r.out[-50:])
        r = self.fk("user", "grant", "alice", "--device", "LOCK-1", "--role", "owner", "--qr", "utf8")
        self.assertTrue(set(r.out) <= set("\u2588\u2580\u2584 \n"), r.out[:100])

    def test_output_file_without_qr_holds_the_bundle(self):
        path = os.path.join(self.tmp, "bundle.json")
        self.fk("user", "grant", "alice", "--device", "LOCK-1", "--role", "owner", "-o", path)
        with open(path) as f:
            bundle = json.loads(f.read())
        self.assertEqual(list(bundle), BUNDLE_KEYS)

    def test_bad_options_change_nothing(self):
        before = self.snapshot()
        existing = self.write_private("exists.png", "x")
        self.fails(USAGE, "user", "grant", "alice", "--device", "LOCK-1", "--role", "owner", "--qr", "png")
        self.fails(USAGE, "--json", "user", "grant", "alice", "--device", "LOCK-1", "--role", "owner", "--qr", "utf8")
        self.fails(USAGE, "user", "grant", "alice", "--device", "LOCK-1", "--role", "owner", "--qr", "ansi")
        self.fails(CONFLICT, "user", "grant", "alice", "--device", "LOCK-1", "--role", "owner", "--qr", "png",
                   "-o", existing)
        self.fails(USAGE, "user", "grant", "alice", "--device", "LOCK-1", "--role", "bad role")
        self.assertEqual(self.snapshot(), before)

    def test_failed_grant_records_nothing_and_writes_no_file(self):
        before = self.snapshot()
        files = sorted(os.listdir(self.tmp))
        # --ttl past the 10-year limit: refused before the grant is recorded.
        r = self.fails(USAGE, "user", "grant", "alice", "--device", "LOCK-1", "--role", "owner", "--ttl", "4000d")
        self.assertIn("--ttl must be between 1 second and 10 years", r.err)
        # An output file that cannot be created: refused before the grant is recorded.
        nodir = os.path.join(self.tmp, "nodir", "b.json")
        self.fails(FAILURE, "user", "grant", "alice", "--device", "LOCK-1", "--role", "owner", "-o", nodir)
        self.fails(FAILURE, "user", "grant", "alice", "--device", "LOCK-1", "--role", "owner", "--qr", "png", "-o",
                   nodir)
        # Unknown device with -o: no file left behind.
        out = os.path.join(self.tmp, "b.json")
        self.fails(fk.NOT_FOUND, "user", "grant", "alice", "--device", "LOCK-9", "--role", "owner", "-o", out)
        self.assertEqual(self.snapshot(), before)
        self.assertEqual(sorted(os.listdir(self.tmp)), files)
        # And the same grant that works records the grant, the mint and the file together.
        self.fk("user", "grant", "alice", "--device", "LOCK-1", "--role", "owner", "-o", out)
        bundle = json.loads(self.read(out))
        self.assertEqual(self.rows("SELECT action, subject FROM audit WHERE action IN ('user.grant', 'token.mint')"),
                         [("user.grant", "alice"), ("token.mint", "alice")])
        self.assertEqual(self.rows("SELECT json_extract(details, '$.token_id'), json_extract(details, '$.epoch') "
                                   "FROM audit WHERE action = 'token.mint'"), [(bundle["token_id"], 1)])

    def test_regrant_of_an_active_grant_bumps_the_epoch(self):
        old = self.grant("--ttl", "30d")
        old_key = self.fk("user", "key", "alice", "--device", "LOCK-1").out
        self.fk("token", "verify", old["token"], "--aud", "LOCK-1")
        # A re-grant with another role and --ttl never: a new epoch, a new key, no expiry.
        new = self.fk("--json", "user", "grant", "alice", "--device", "LOCK-1", "--role", "guest", "--ttl",
                      "never").json()
        self.assertEqual((new["epoch"], new["role"], new["expires"]), (2, "guest", None))
        self.assertNotEqual(new["user_key"], old["user_key"])
        new_key = self.fk("user", "key", "alice", "--device", "LOCK-1").out
        self.assertNotEqual(new_key, old_key)
        self.assertEqual(base64.b64decode(new["user_key"]).hex() + "\n", new_key)
        r = self.run_fk("--json", "token", "verify", old["token"], "--aud", "LOCK-1")
        self.assertEqual(r.rc, TOKEN_REVOKED, r)
        self.assertEqual(json.loads(r.out)["error"],
                         'the token\'s grant epoch 1 is superseded: the grant of "alice" on device "LOCK-1" is at epoch 2')
        self.fk("token", "verify", new["token"], "--aud", "LOCK-1")
        grants = self.fk("--json", "user", "show", "alice").json()["grants"]
        self.assertEqual([(g["device"], g["role"], g["epoch"], g["status"], g["expires"]) for g in grants],
                         [("LOCK-1", "guest", 2, "active", None)])
        self.assertEqual(self.rows("SELECT json_extract(details, '$.epoch'), json_extract(details, '$.replaced_epoch') "
                                   "FROM audit WHERE action = 'user.grant' ORDER BY id"), [(1, None), (2, 1)])
        # Revoke bumps once, and re-granting the revoked grant does not bump again.
        self.fk("user", "revoke", "alice", "--device", "LOCK-1", "--reason", "left")
        self.assertEqual(self.grant()["epoch"], 3)
        self.assertIn("the key epoch goes up by one", " ".join(self.fk("user", "grant", "--help").out.split()))

    def test_expired_grant_refuses_the_user_key(self):
        self.grant("--ttl", "1s")
        expires = self.rows("SELECT expires FROM grants")[0][0]
        time.sleep(1.1)
        before = self.snapshot()
        r = self.fails(CONFLICT, "user", "key", "alice", "--device", "LOCK-1")
        self.assertEqual(r.err.replace(fk.TEST_KEY_WARNING, ""),
                         'fleetkey: error: grant of "alice" on device "LOCK-1" expired at %s (renew it with '
                         "fleetkey user grant)\n" % expires)
        self.assertEqual(self.snapshot(), before)
        # Granting again renews it, with a new epoch.
        self.assertEqual(self.grant("--ttl", "1d")["epoch"], 2)
        self.fk("user", "key", "alice", "--device", "LOCK-1")


if __name__ == "__main__":
    fk.main()
