#!/usr/bin/python3
"""device state, the lock's rules and grant-bound tokens, checked against an independent lock written
from fleetkey-state(5) (tests/cli/lock.py: Python's hmac and cbor2, holding only K_dev).

Each of issue 15's six scenarios: the lock accepts before the change, and refuses after it once it has
the newest state document."""
import base64
import calendar
import hashlib
import hmac
import json
import os
import re
import time

import cbor2

import fk
import reference
from fk import USAGE, NOT_FOUND, TOKEN_REVOKED
from lock import Lock, decode_mac0, mac_structure

EXCEEDS_GRANT = 7


def b64e(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def parse_time(text):
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def man_page():
    with open(os.path.join(fk.SOURCE_DIR, "man", "fleetkey-state.5")) as f:
        return f.read()


def make_cwt(key, claims, kid):
    protected = cbor2.dumps({1: 5, 4: kid}, canonical=True)
    payload = cbor2.dumps(claims, canonical=True)
    tag = hmac.new(key, mac_structure(protected, payload), hashlib.sha256).digest()
    return b64e(cbor2.dumps(cbor2.CBORTag(17, [protected, {}, payload, tag])))


class StateTest(fk.FleetTest):
    def setUp(self):
        super().setUp()
        self.init_test_key()
        self.fk("device", "add", "LOCK-1")
        self.fk("device", "add", "LOCK-2")
        self.fk("user", "add", "alice")
        self.now = int(time.time())

    def fails(self, code, *args, **kw):
        """fk.FleetTest.fails, allowing the test-key warning this fleet prints."""
        r = self.run_fk(*args, **kw)
        self.assertEqual(r.rc, code, f"fleetkey {' '.join(args)}: {r}")
        self.assertEqual(r.out, "", r)
        self.assertRegex(r.err.replace(fk.TEST_KEY_WARNING, "", 1), r"^fleetkey: error: [^\n]+\n$")
        return r

    @staticmethod
    def clock():
        """The lock's clock: now (tokens minted a moment ago are valid from the second they were minted)."""
        return int(time.time())

    def lock(self, device="LOCK-1", version=1):
        return Lock(device, version, bytes.fromhex(self.fk("device", "key", device).out.strip()))

    def state(self, device="LOCK-1", *args):
        r = self.run_fk("device", "state", device, "--format", "raw", *args, binary=True)
        self.assertEqual(r.rc, 0, r)
        return r.out

    def push(self, lock):
        """The phone hands the lock the newest document."""
        self.assertEqual(lock.apply_state(self.state(lock.device), self.now), "ok")

    def grant(self, *args, user="alice", device="LOCK-1", role="owner"):
        return self.fk("--json", "user", "grant", user, "--device", device, "--role", role, *args).json()

    def mint(self, *args, sub="alice", role="owner", aud="LOCK-1"):
        return self.fk("token", "mint", "--sub", sub, "--role", role, "--aud", aud, *args).out.strip()

    def verify_reason(self, token):
        r = self.run_fk("--json", "token", "verify", token)
        return json.loads(r.out)["reason"]

    # -- the six scenarios of issue 15 --

    def test_1_user_revoke_reaches_the_lock(self):
        token = self.grant("--ttl", "never")["token"]  # epoch 1, no exp
        lock = self.lock()
        self.push(lock)
        self.assertEqual(lock.check_token(token, self.clock()), "ok")
        self.fk("user", "revoke", "alice", "--device", "LOCK-1", "--reason", "phone lost")
        self.assertEqual(lock.check_token(token, self.clock()), "ok")  # no news yet: the old document
        self.push(lock)
        self.assertEqual(lock.check_token(token, self.clock()), "revoked")
        self.assertEqual(self.verify_reason(token), "revoked")

    def test_2_replacing_a_grant_reaches_the_lock(self):
        owner = self.grant("--ttl", "never")["token"]
        lock = self.lock()
        self.push(lock)
        self.assertEqual(lock.check_token(owner, self.clock()), "ok")
        guest = self.grant("--ttl", "never", role="guest")["token"]  # epoch 2
        self.push(lock)
        self.assertEqual(lock.check_token(owner, self.clock()), "revoked")
        self.assertEqual(lock.check_token(guest, self.clock()), "ok")

    def test_3_token_revoke_reaches_the_lock(self):
        self.grant()
        token = self.mint()
        lock = self.lock()
        self.push(lock)
        self.assertEqual(lock.check_token(token, self.clock()), "ok")
        self.fk("token", "revoke", token, "--reason", "leaked")
        self.push(lock)
        self.assertEqual(lock.check_token(token, self.clock()), "revoked")
        # A service token revoked by bare id reaches every lock (its device is unknown to the registry).
        service = self.mint(sub="backup", role="service", aud="LOCK-2")
        lock2 = self.lock("LOCK-2")
        self.push(lock2)
        self.assertEqual(lock2.check_token(service, self.clock()), "ok")
        tid = self.fk("--json", "token", "inspect", service).json()["claims"]["cti"]
        self.fk("token", "revoke", tid, "--reason", "by id")
        self.push(lock2)
        self.assertEqual(lock2.check_token(service, self.clock()), "revoked")
        doc = self.fk("--json", "device", "state", "LOCK-1").json()
        self.assertIn(tid, doc["revoked"])

    def test_4_a_token_never_outlives_its_grant(self):
        g = self.grant("--ttl", "1h")
        expires = parse_time(g["expires"])
        snap = self.snapshot()
        r = self.fails(EXCEEDS_GRANT, "token", "mint", "--sub", "alice", "--role", "owner", "--aud", "LOCK-1",
                       "--ttl", "520w")
        self.assertIn('would outlive the grant of "alice" on device "LOCK-1", which expires at %s' % g["expires"],
                      r.err)
        self.assertEqual(self.snapshot(), snap)
        # Without --ttl the default hour is cut to the grant's end.
        token = self.mint()
        exp = self.fk("--json", "token", "inspect", token).json()["claims"]["exp"]
        self.assertLessEqual(exp, expires)
        lock = self.lock()
        self.push(lock)
        self.assertEqual(lock.check_token(token, self.clock()), "ok")
        self.assertEqual(lock.check_token(token, expires), "expired")
        # A ten-year token made with the device's key (as an old fleetkey minted it): token verify refuses it.
        k_tok = self.fk("token", "key", "--aud", "LOCK-1").out.strip()
        forged = make_cwt(bytes.fromhex(k_tok), {2: "alice", 3: "LOCK-1", 4: self.now + 520 * 7 * 86400,
                                                 5: self.now, 6: self.now, 7: b"\x05" * 16, 9: "owner",
                                                 "epoch": 1}, b"v1/LOCK-1")
        r = self.run_fk("--json", "token", "verify", forged)
        self.assertEqual(r.rc, TOKEN_REVOKED, r)
        self.assertIn("the token outlives the grant", json.loads(r.out)["error"])
        # ... and the lock stops it with the grant's epoch when the grant is revoked or renewed.
        self.fk("user", "revoke", "alice", "--device", "LOCK-1", "--reason", "over")
        self.push(lock)
        self.assertEqual(lock.check_token(forged, self.clock()), "revoked")

    def test_5_a_token_never_has_more_than_the_grants_role(self):
        self.grant("--ttl", "never", role="admin")
        admin = self.mint(role="admin")
        lock = self.lock()
        self.push(lock)
        self.assertEqual(lock.check_token(admin, self.clock()), "ok")
        self.grant("--ttl", "never", role="guest")  # alice is a guest now
        snap = self.snapshot()
        r = self.fails(EXCEEDS_GRANT, "token", "mint", "--sub", "alice", "--role", "admin", "--aud", "LOCK-1")
        self.assertIn('--role admin exceeds the grant of "alice" on device "LOCK-1", which is for role guest',
                      r.err)
        self.assertEqual(self.snapshot(), snap)
        self.push(lock)
        self.assertEqual(lock.check_token(admin, self.clock()), "revoked")
        self.assertEqual(self.verify_reason(admin), "revoked")
        # An admin token at the guest grant's epoch (made with the device's key): token verify refuses it.
        k_tok = bytes.fromhex(self.fk("token", "key", "--aud", "LOCK-1").out.strip())
        forged = make_cwt(k_tok, {2: "alice", 3: "LOCK-1", 5: self.now, 6: self.now, 7: b"\x06" * 16, 9: "admin",
                                  "epoch": 2}, b"v1/LOCK-1")
        r = self.run_fk("--json", "token", "verify", forged)
        self.assertEqual(r.rc, TOKEN_REVOKED, r)
        self.assertEqual(json.loads(r.out)["error"], 'the token\'s role admin exceeds the grant of "alice" on device '
                                                     '"LOCK-1", which is for role guest')
        guest = self.mint(role="guest")
        self.assertEqual(lock.check_token(guest, self.clock()), "ok")

    def test_6a_device_revoke_reaches_the_lock_and_ends_its_grants(self):
        token = self.grant("--ttl", "never")["token"]
        self.fk("user", "add", "bob")
        self.grant(user="bob", role="guest")
        service = self.mint(sub="gateway", role="service")
        lock = self.lock()
        self.push(lock)
        self.assertEqual([lock.check_token(t, self.clock()) for t in (token, service)], ["ok", "ok"])
        audit_before = len(self.fk("--json", "audit", "list").jsonl())
        self.fk("device", "revoke", "LOCK-1", "--reason", "stolen")
        # The grants ended in the same transaction: revoked, epoch bumped, one audit row each.
        rows = self.rows("SELECT user, status, epoch, revoke_reason FROM grants ORDER BY user")
        self.assertEqual(rows, [("alice", "revoked", 2, "stolen"), ("bob", "revoked", 2, "stolen")])
        events = self.fk("--json", "audit", "list").jsonl()[audit_before:]
        self.assertEqual([(e["action"], e["subject"]) for e in events],
                         [("device.revoke", "LOCK-1"), ("user.revoke", "alice"), ("user.revoke", "bob")])
        self.assertEqual(events[1]["details"], {"device": "LOCK-1", "reason": "stolen", "new_epoch": 2,
                                                "device_revoked": True})
        show = self.fk("--json", "device", "show", "LOCK-1").json()
        self.assertEqual([(g["user"], g["status"]) for g in show["grants"]], [("alice", "revoked"), ("bob", "revoked")])
        self.assertIn("revoked", self.fk("user", "show", "alice").out.splitlines()[-1])
        self.push(lock)
        self.assertEqual([lock.check_token(t, self.clock()) for t in (token, service)], ["revoked", "revoked"])

    def test_6b_master_retire_reaches_the_lock(self):
        token = self.grant("--ttl", "never")["token"]
        service = self.mint(sub="gateway", role="service")
        lock = self.lock()
        self.push(lock)
        self.assertEqual([lock.check_token(t, self.clock()) for t in (token, service)], ["ok", "ok"])
        seq = self.fk("--json", "device", "state", "LOCK-2").json()["seq"]
        self.fk("master", "rotate")
        self.assertEqual(self.fk("--json", "device", "state", "LOCK-2").json()["seq"], seq)  # rotate: no change
        self.fk("master", "retire", "1")
        doc = self.fk("--json", "device", "state", "LOCK-1").json()
        self.assertEqual((doc["retired"], doc["kid"]), ([1], "v1/LOCK-1"))
        self.assertGreater(self.fk("--json", "device", "state", "LOCK-2").json()["seq"], seq)  # every device
        self.push(lock)
        self.assertEqual([lock.check_token(t, self.clock()) for t in (token, service)], ["unknown_key", "unknown_key"])
        self.assertEqual(self.verify_reason(token), "unknown_key")

    # -- state documents refused, each by its own reason --

    def test_documents_refused_by_distinct_reasons(self):
        self.grant()
        lock = self.lock()
        old = self.state()
        self.fk("user", "revoke", "alice", "--device", "LOCK-1", "--reason", "x")
        new = self.state()
        self.assertEqual(lock.apply_state(old, self.now), "ok")
        self.assertEqual(lock.apply_state(new, self.now), "ok")
        reasons = {
            "replayed": lock.apply_state(old, self.now),
            "other device": lock.apply_state(self.state("LOCK-2"), self.now),
            "expired": lock.apply_state(self.state("LOCK-1", "--now", "2026-01-01", "--max-age", "1h"), self.now),
            "flipped bit": lock.apply_state(new[:-1] + bytes([new[-1] ^ 1]), self.now),
        }
        self.assertEqual(reasons, {"replayed": "replayed", "other device": "unknown_key", "expired": "expired",
                                   "flipped bit": "bad_mac"})
        self.assertEqual(len(set(reasons.values())), 4)
        self.assertEqual(lock.apply_state(new, self.now), "replayed")  # the same one again
        self.assertEqual(lock.apply_state(b"\xd1\x84", self.now), "malformed")
        # Same seq, a later iat: a fresher copy is taken.
        self.assertEqual(lock.apply_state(self.state("LOCK-1", "--now", "@%d" % (self.now + 60)), self.now), "ok")

    def test_lock_fails_closed_and_keeps_its_clock_honest(self):
        token = self.grant("--ttl", "never")["token"]
        lock = self.lock()
        self.assertEqual(lock.check_token(token, self.clock()), "stale")  # no document yet
        doc = self.state("LOCK-1", "--max-age", "1h", "--now", "@%d" % self.now)
        self.assertEqual(lock.apply_state(doc, self.now), "ok")
        self.assertEqual(lock.check_token(token, self.now + 3599), "ok")
        self.assertEqual(lock.check_token(token, self.now + 3600), "stale")
        # A clock set back gains nothing: now_eff = max(clock, hwm) and hwm went up to the document's iat.
        lock2 = self.lock()
        lock2.apply_state(self.state("LOCK-1", "--now", "@%d" % (self.now + 7200)), self.now)
        short = self.mint("--ttl", "1h")
        self.assertEqual(lock2.check_token(short, 0), "expired")
        self.assertEqual(lock2.hwm, self.now + 7200)

    # -- the format, from the man page alone --

    def test_document_is_as_the_man_page_says(self):
        self.grant("--ttl", "never")
        self.fk("user", "add", "bob")
        self.grant(user="bob")
        self.fk("user", "revoke", "bob", "--device", "LOCK-1", "--reason", "x")
        t = self.mint()
        self.fk("token", "revoke", t, "--reason", "y")
        raw = self.state("LOCK-1", "--now", "@1767225600")
        j = self.fk("--json", "device", "state", "LOCK-1", "--now", "@1767225600").json()
        self.assertEqual(b64d(j["document"]), raw)
        self.assertEqual(self.fk("device", "state", "LOCK-1", "--now", "@1767225600").out, j["document"] + "\n")
        protected, header, payload, tag = decode_mac0(raw)
        self.assertEqual(raw[:2], b"\xd1\x84")
        self.assertEqual(protected, b"\xa2\x01\x05\x04" + cbor2.dumps(b"v1/LOCK-1"))
        k_dev = bytes.fromhex(self.fk("device", "key", "LOCK-1").out.strip())
        prk = reference.device_prk(k_dev)
        k_rev = reference.hkdf_expand(prk, reference.info("revocations"))
        self.assertEqual(reference.info("revocations").hex(), "000b" + b"revocations".hex())
        mac_input = b"\x84\x64MAC0" + cbor2.dumps(protected) + b"\x40" + cbor2.dumps(payload)
        self.assertEqual(tag, hmac.new(k_rev, mac_input, hashlib.sha256).digest())
        p = cbor2.loads(payload)
        self.assertEqual(list(p), list(range(10)))
        uid = {u: reference.hkdf_expand(prk, reference.info("state-user", u), 8) for u in ("alice", "bob")}
        seq = j["seq"]
        cti = bytes.fromhex(self.fk("--json", "token", "inspect", t).json()["claims"]["cti"])
        self.assertEqual(p, {0: 1, 1: "LOCK-1", 2: seq, 3: 1767225600, 4: 1767225600 + 72 * 3600, 5: 0,
                             6: {uid["alice"]: 1, uid["bob"]: 2}, 7: [cti], 8: [], 9: 0})
        self.assertEqual([bytes.fromhex(u["uid"]) for u in j["users"]], sorted(uid.values()))
        self.assertEqual({u["user"]: u["min_epoch"] for u in j["users"]}, {"alice": 1, "bob": 2})
        self.assertEqual(cbor2.dumps(p, canonical=True), payload)  # deterministic
        self.assertEqual(j["size"], len(raw))

    def test_man_page_example_is_reproduced(self):
        page = man_page()
        m = re.search(r"^  fleetkey device state (\S+) (.*)$", page.split(".SH EXAMPLE")[1], re.M)
        self.assertIsNotNone(m, "the EXAMPLE's command")
        self.grant("--ttl", "never")
        text = self.fk("device", "state", m.group(1), *m.group(2).split()).out.strip()
        self.assertIn("\n  %s\n" % text, page)

    def test_sequence_numbers(self):
        def seq(device="LOCK-1"):
            return self.fk("--json", "device", "state", device).json()["seq"]
        s = [seq()]
        self.assertEqual(s[0], 1)
        self.assertEqual(seq(), s[0])  # issuing changes nothing
        for args in (["user", "grant", "alice", "--device", "LOCK-1", "--role", "owner"],
                     ["user", "revoke", "alice", "--device", "LOCK-1", "--reason", "x"],
                     ["pair", "LOCK-1", "--rotate", "--qr", "none"],
                     ["device", "revoke", "LOCK-1", "--reason", "x"]):
            self.fk(*args)
            s.append(seq())
        self.assertEqual(s, sorted(set(s)), "strictly increasing")
        self.assertEqual(seq("LOCK-2"), 1)  # another device's changes are not LOCK-2's
        self.assertIn("state seq:    %d\n" % s[-1], self.fk("device", "show", "LOCK-1").out)

    # -- sizes, against the man page --

    def test_sizes_are_as_the_man_page_states(self):
        page = man_page()
        table = {(int(u), int(r)): int(b) for u, r, b in
                 re.findall(r"^ +(\d+) +(\d+) +(\d+)$", page.split(".SH SIZE")[1].split(".SH")[0], re.M)}
        self.assertEqual(set(table), {(0, 0), (10, 0), (100, 0), (1000, 0), (1000, 10)})
        self.fk("device", "state", "LOCK-1")  # migrate and create nothing else
        con = self.writable_db()
        measured = {}
        n = 0
        for users, revoked in sorted(table):
            for i in range(n, users):
                con.execute("INSERT INTO users (name, created) VALUES (?, '2026-01-01T00:00:00Z')", ("user%04d" % i,))
                con.execute("INSERT INTO grants (user, device, role, epoch, status, created) VALUES "
                            "(?, 'LOCK-1', 'guest', 1, 'active', '2026-01-01T00:00:00Z')", ("user%04d" % i,))
            for i in range(revoked):
                con.execute("INSERT INTO revocations (id, kind, device, token_id, reason, created) VALUES "
                            "(?, 'token', 'LOCK-1', ?, 'r', '2026-01-01T00:00:00Z')", (1000 + i, "%032x" % (i + 1)))
            con.commit()
            n = users
            measured[(users, revoked)] = self.fk("--json", "device", "state", "LOCK-1", "--now",
                                                 "2026-12-07").json()["size"]
        self.assertEqual(measured, table)
        for (users, revoked), size in table.items():
            # 73 + 2d + 10n + 17r + h, h from 4 to 9 (d = 6: "LOCK-1").
            self.assertLessEqual(4, size - (73 + 12 + 10 * users + 17 * revoked), (users, revoked))
            self.assertLessEqual(size - (73 + 12 + 10 * users + 17 * revoked), 9, (users, revoked))

    # -- the command's output forms and bad input --

    def test_formats_and_all(self):
        self.grant()
        j = self.fk("--json", "device", "state", "LOCK-1", "--now", "@1767225600").json()
        raw = b64d(j["document"])
        c = self.fk("device", "state", "LOCK-1", "--now", "@1767225600", "--format", "c").out
        self.assertTrue(c.startswith('/* fleetkey state document for device "LOCK-1", v1, seq %d, issued '
                                     '2026-01-01T00:00:00Z, expires 2026-01-04T00:00:00Z, %d bytes, TEST KEY */\n'
                                     'static const unsigned char fleetkey_state_document[%d] = {\n    0xd1, 0x84,'
                                     % (j["seq"], len(raw), len(raw))), c)
        self.assertTrue(c.endswith("\n};\nstatic const unsigned int fleetkey_state_document_len = %d;\n" % len(raw)))
        self.assertEqual(bytes(int(x, 16) for x in re.findall(r"0x([0-9a-f]{2})", c.split("{", 1)[1])), raw)
        out = os.path.join(self.tmp, "one.state")
        self.fk("device", "state", "LOCK-1", "--now", "@1767225600", "--format", "raw", "-o", out)
        self.assertEqual(self.read(out, "rb"), raw)
        self.assertEqual(os.stat(out).st_mode & 0o777, 0o600)
        self.fk("device", "add", ".odd/id x")
        d = os.path.join(self.tmp, "states")
        os.mkdir(d)
        r = self.fk("--json", "device", "state", "--all", "-o", d, "--now", "@1767225600")
        files = sorted(os.listdir(d))
        self.assertEqual(files, ["%2Eodd%2Fid%20x.state.b64", "LOCK-1.state.b64", "LOCK-2.state.b64"])
        self.assertEqual([x["file"] for x in r.jsonl()], [os.path.join(d, f) for f in files])
        self.assertEqual(self.read(os.path.join(d, "LOCK-1.state.b64")), j["document"] + "\n")
        self.assertEqual(self.fk("device", "state", "--all", "-o", d).out, "wrote 3 state documents to %s\n" % d)

    def test_bad_input_changes_nothing(self):
        self.grant()
        snap = self.snapshot()
        notdir = os.path.join(self.tmp, "file")
        with open(notdir, "w"):
            pass
        for code, args in [
                (USAGE, []),
                (USAGE, ["LOCK-1", "--all", "-o", self.tmp]),
                (USAGE, ["--all"]),
                (USAGE, ["--all", "-o", notdir]),
                (USAGE, ["LOCK-1", "--max-age", "0s"]),
                (USAGE, ["LOCK-1", "--max-age", "400d"]),
                (USAGE, ["LOCK-1", "--max-age", "soon"]),
                (USAGE, ["LOCK-1", "--now", "yesterday"]),
                (USAGE, ["LOCK-1", "--format", "hex"]),
                (NOT_FOUND, ["LOCK-9"]),
                (USAGE, ["bad\nid"])]:
            self.fails(code, "device", "state", *args)
        self.assertEqual(self.snapshot(), snap)
        help_text = self.fk("device", "state", "--help").out
        for opt in ("--all", "--output", "--format", "--max-age", "--now"):
            self.assertIn(opt, help_text)

    # -- grant lifecycle --

    def test_grants_expire_by_default_and_say_so(self):
        g = self.grant()
        self.assertEqual(parse_time(g["expires"]) - parse_time(self.fk("--json", "user", "show", "alice").json()
                                                                ["grants"][0]["created"]), 30 * 86400)
        self.assertIsNone(self.grant("--ttl", "never")["expires"])
        self.grant("--ttl", "1s", device="LOCK-2")
        time.sleep(1.5)
        show = self.fk("--json", "user", "show", "alice").json()
        self.assertEqual([(x["device"], x["status"]) for x in show["grants"]],
                         [("LOCK-1", "active"), ("LOCK-2", "expired")])
        self.assertRegex(self.fk("user", "show", "alice").out, r"LOCK-2 +role owner +epoch 1 +expired +expires ")
        dev = self.fk("device", "show", "LOCK-2").out
        self.assertRegex(dev, r"grants:       1\n  alice +role owner +epoch 1 +expired +expires ")
        self.assertEqual(self.fk("--json", "device", "show", "LOCK-2").json()["grants"][0]["status"], "expired")
        self.fk("user", "revoke", "alice", "--device", "LOCK-1", "--reason", "x")
        self.assertEqual(self.fk("--json", "user", "show", "alice").json()["grants"][0]["status"], "revoked")
        self.fails(USAGE, "user", "grant", "alice", "--device", "LOCK-1", "--role", "owner", "--ttl", "forever")

    def test_registered_user_without_grant_gets_no_device_token(self):
        # Minted while "carol" was no user: a service token. Once carol is a user, it exceeds her (absent) grant.
        service = self.mint(sub="carol", role="service")
        self.assertEqual(self.verify_reason(service), "ok")
        self.fk("user", "add", "carol")
        self.assertEqual(self.verify_reason(service), "revoked")
        r = self.run_fk("token", "verify", input=service + "\n")  # bulk: users preloaded
        self.assertEqual(r.jsonl()[0]["reason"], "revoked")
        snap = self.snapshot()
        r = self.fails(EXCEEDS_GRANT, "token", "mint", "--sub", "carol", "--role", "guest", "--aud", "LOCK-1")
        self.assertIn('"carol" is a registered user with no grant on device "LOCK-1"', r.err)
        self.assertEqual(self.snapshot(), snap)
        # A server token (no --aud) is not bound to any device's grant.
        self.fk("token", "mint", "--sub", "carol", "--role", "guest")

    def test_mint_bound_in_bulk_verify_too(self):
        self.grant("--ttl", "1h", role="guest")
        k_tok = bytes.fromhex(self.fk("token", "key", "--aud", "LOCK-1").out.strip())
        base = {2: "alice", 3: "LOCK-1", 5: self.now, 6: self.now, "epoch": 1}
        tokens = [make_cwt(k_tok, {**base, 4: self.now + 60, 7: b"\x01" * 16, 9: "guest"}, b"v1/LOCK-1"),
                  make_cwt(k_tok, {**base, 4: self.now + 60, 7: b"\x02" * 16, 9: "admin"}, b"v1/LOCK-1"),
                  make_cwt(k_tok, {**base, 4: self.now + 86400, 7: b"\x03" * 16, 9: "guest"}, b"v1/LOCK-1")]
        r = self.run_fk("token", "verify", input="\n".join(tokens) + "\n")
        self.assertEqual([o["reason"] for o in r.jsonl()], ["ok", "revoked", "revoked"])
        self.assertEqual([self.verify_reason(t) for t in tokens], ["ok", "revoked", "revoked"])


if __name__ == "__main__":
    import unittest
    unittest.main()
