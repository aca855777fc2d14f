#!/usr/bin/python3
"""token mint | verify | inspect | key | revoke, checked against independent implementations:
Python's hmac over RFC 9052's MAC_structure with cbor2, and PyJWT (Debian python3-jwt)."""
import base64
import calendar
import hashlib
import hmac
import json
import os
import re
import subprocess
import time

import cbor2
import jwt

import fk
import reference
from fk import (OK, USAGE, NOT_FOUND, CONFLICT, TOKEN_MALFORMED, TOKEN_BAD_MAC, TOKEN_EXPIRED,
                TOKEN_NOT_YET_VALID, TOKEN_REVOKED, TOKEN_UNKNOWN_KEY, TOKEN_WRONG_AUDIENCE)

NOW = "2026-01-01T00:00:00Z"
T0 = 1767225600  # NOW as Unix seconds
LATER = "@%d" % (T0 + 600)


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64e(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def mac_structure(protected, payload):
    return cbor2.dumps(["MAC0", protected, b"", payload])


def make_cwt(key, claims, kid=b"v1", alg=5, protected=None, unprotected=None, tag_len=None):
    """A COSE_Mac0 CWT built with cbor2 and hmac: the independent encoder."""
    if protected is None:
        protected = cbor2.dumps({1: alg, 4: kid}, canonical=True)
    payload = cbor2.dumps(claims, canonical=True) if not isinstance(claims, bytes) else claims
    tag = hmac.new(key, mac_structure(protected, payload), hashlib.sha256).digest()
    tag = tag[:tag_len or (8 if alg == 4 else 32)]
    body = cbor2.dumps(cbor2.CBORTag(17, [protected, unprotected or {}, payload, tag]))
    return b64e(body)


def claims(extra=None):
    c = {2: "alice", 4: T0 + 3600, 5: T0, 6: T0, 7: b"\x01" * 16, 9: "owner"}
    c.update(extra or {})
    return c


def man_page():
    with open(os.path.join(fk.SOURCE_DIR, "man", "fleetkey-tokens.5")) as f:
        return f.read()


class TokenTest(fk.FleetTest):
    def setUp(self):
        super().setUp()
        self.init_test_key()
        self.fk("device", "add", "SN-1")
        self.fk("device", "add", "SN-2")

    def fails(self, code, *args, **kw):
        """fk.FleetTest.fails, allowing the test-key warning this fleet prints."""
        r = self.run_fk(*args, **kw)
        self.assertEqual(r.rc, code, f"fleetkey {' '.join(args)}: {r}")
        self.assertEqual(r.out, "", r)
        self.assertRegex(r.err.replace(fk.TEST_KEY_WARNING, "", 1), r"^fleetkey: error: [^\n]+\n$")
        return r

    def key(self, *args):
        return bytes.fromhex(self.fk("token", "key", *args).out.strip())

    def mint(self, *args):
        return self.fk("token", "mint", "--sub", "alice", "--role", "owner", "--now", NOW, *args).out.strip()

    def verify(self, token, *args):
        now = () if "--now" in args else ("--now", LATER)
        return self.run_fk("--json", "token", "verify", token, *now, *args)

    def assert_rejected(self, token, code, reason, *args):
        r = self.verify(token, *args)
        self.assertEqual(r.rc, code, r)
        out = json.loads(r.out)
        self.assertEqual(out["valid"], False)
        self.assertEqual(out["reason"], reason)
        self.assertRegex(r.err, r"fleetkey: error: token rejected \(%s\): " % reason)
        return out

    # -- format, against the man page and independent implementations --

    def test_man_page_worked_example(self):
        page = man_page()
        tokens = re.findall(r"^  ([A-Za-z0-9_.-]{100,})$", page, re.M)
        keys = re.findall(r"^  key  ([0-9a-f]{64})$", page, re.M)
        self.assertEqual(len(tokens), 2)
        self.assertEqual(len(keys), 2)
        self.assertEqual(self.mint("--ttl", "1h"), tokens[0])
        self.assertEqual(self.mint("--ttl", "1h", "--format", "jwt"), tokens[1])
        self.assertEqual(self.key().hex(), keys[0])
        self.assertEqual(self.key("--for", "jwt").hex(), keys[1])
        # The byte listing in the man page is the token.
        listing = page[page.index("whose bytes are"):page.index("under K_tok")]
        hexbytes = "".join(re.findall(r"^  +((?:[0-9a-f]{2} ?|[0-9a-f]{8,} ?)+)", listing, re.M)).replace(" ", "")
        hexbytes = re.sub(r"[^0-9a-f]", "", hexbytes)
        self.assertEqual(hexbytes, b64d(tokens[0]).hex())
        jwt.decode(tokens[1], bytes.fromhex(keys[1]), algorithms=["HS256"], options={"verify_exp": False})

    def test_cwt_matches_rfc9052_mac_structure_rebuilt_with_cbor2_and_hmac(self):
        for fmt, alg, tag_len, cti_len, key_args in [("cwt", 5, 32, 16, []), ("cwt64", 4, 8, 8, ["--for", "cwt64"])]:
            token = self.mint("--format", fmt, "--claim", "site=lab", "--ttl", "2h")
            key = self.key(*key_args)
            tagged = cbor2.loads(b64d(token))
            self.assertEqual(tagged.tag, 17)
            protected, unprotected, payload, tag = tagged.value
            self.assertEqual(cbor2.loads(protected), {1: alg, 4: b"v1"})
            self.assertEqual(unprotected, {})
            c = cbor2.loads(payload)
            self.assertEqual(set(c), {2, 4, 5, 6, 7, 9, "site"})
            self.assertEqual((c[2], c[9], c[6], c[5], c[4], c["site"]), ("alice", "owner", T0, T0, T0 + 7200, "lab"))
            self.assertEqual(len(c[7]), cti_len)
            # Deterministic CBOR: re-encoding canonically gives the same bytes.
            self.assertEqual(cbor2.dumps(c, canonical=True), payload)
            expect = hmac.new(key, mac_structure(protected, payload), hashlib.sha256).digest()[:tag_len]
            self.assertEqual(tag, expect)
            self.assertEqual(make_cwt(key, c, alg=alg), token)

    def test_python_built_cwt_verifies(self):
        token = make_cwt(self.key(), claims())
        r = self.fk("--json", "token", "verify", token, "--now", LATER)
        self.assertEqual(r.json(), {"valid": True, "reason": "ok", "format": "cwt", "kid": "v1",
                                    "token_id": "01" * 16, "claims": {
                                        "sub": "alice", "scope": "owner", "iat": T0, "nbf": T0, "exp": T0 + 3600,
                                        "cti": "01" * 16}})

    def test_jwt_verifies_in_pyjwt_with_token_key(self):
        token = self.mint("--format", "jwt", "--claim", "site=lab")
        key = self.key("--for", "jwt")
        self.assertEqual(jwt.get_unverified_header(token), {"alg": "HS256", "typ": "JWT", "kid": "v1"})
        c = jwt.decode(token, key, algorithms=["HS256"], options={"verify_exp": False})
        self.assertEqual(c, {"sub": "alice", "scope": "owner", "iat": T0, "nbf": T0, "exp": T0 + 3600,
                             "jti": c["jti"], "site": "lab"})
        self.assertRegex(c["jti"], r"^[0-9a-f]{32}$")
        # The JWK form carries the same key.
        jwk = json.loads(self.fk("token", "key", "--for", "jwt", "--format", "jwk").out)
        self.assertEqual(jwk, {"kty": "oct", "kid": "v1", "alg": "HS256", "use": "sig", "k": b64e(key)})
        self.assertEqual(jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["HS256"],
                                    options={"verify_exp": False})["sub"], "alice")

    def test_pyjwt_signed_jwt_verifies_in_fleetkey(self):
        key = self.key("--for", "jwt")
        token = jwt.encode({"sub": "svc", "scope": "reader", "iat": T0, "exp": T0 + 60, "jti": "abc123",
                            "flags": [1, 2], "ok": True}, key, algorithm="HS256", headers={"kid": "v1"})
        r = self.fk("--json", "token", "verify", token, "--now", "@%d" % (T0 + 30))
        self.assertEqual(r.json()["claims"], {"sub": "svc", "scope": "reader", "iat": T0, "exp": T0 + 60,
                                              "jti": "abc123", "flags": [1, 2], "ok": True})
        # Signed with the CWT key instead: a different key, so a bad MAC.
        token = jwt.encode({"sub": "svc", "exp": T0 + 60, "jti": "j1"}, self.key(), algorithm="HS256",
                           headers={"kid": "v1"})
        self.assert_rejected(token, TOKEN_BAD_MAC, "bad_mac")

    def test_keys_differ_per_format_and_audience(self):
        keys = {self.key(*a).hex() for a in ([], ["--for", "cwt64"], ["--for", "jwt"], ["--aud", "SN-1"],
                                              ["--aud", "SN-2"], ["--aud", "SN-1", "--for", "jwt"])}
        self.assertEqual(len(keys), 6)
        self.assertEqual(base64.b64decode(self.fk("token", "key", "--format", "base64").out), self.key())
        j = self.fk("--json", "token", "key", "--aud", "SN-1").json()
        self.assertEqual((j["kid"], j["for"], j["test_key"], j["key"]), ("v1/SN-1", "cwt", True,
                                                                         base64.b64encode(self.key("--aud", "SN-1")).decode()))
        # --key-format hex: the encoding token key --json had before it agreed with device key --json.
        j = self.fk("--json", "token", "key", "--aud", "SN-1", "--key-format", "hex").json()
        self.assertEqual(j["key"], self.key("--aud", "SN-1").hex())
        self.fails(NOT_FOUND, "token", "key", "--aud", "nope")

    def test_device_token_checks_with_the_device_key_only(self):
        token = self.mint("--aud", "SN-1")
        tagged = cbor2.loads(b64d(token))
        protected, _, payload, tag = tagged.value
        self.assertEqual(cbor2.loads(protected), {1: 5, 4: b"v1/SN-1"})
        # What the device does: derive K_tok_dev from K_dev alone (fleetkey-tokens(5)) and check.
        k_dev = bytes.fromhex(self.fk("device", "key", "SN-1").out.strip())
        prk = hmac.new(b"fleetkey/v1", k_dev, hashlib.sha256).digest()
        label = b"cose-hmac256/256"
        info = len(b"token").to_bytes(2, "big") + b"token" + len(label).to_bytes(2, "big") + label
        k_tok_dev = hmac.new(prk, info + b"\x01", hashlib.sha256).digest()
        self.assertEqual(k_tok_dev, self.key("--aud", "SN-1"))
        self.assertEqual(hmac.new(k_tok_dev, mac_structure(protected, payload), hashlib.sha256).digest(), tag)
        self.fk("token", "verify", token, "--aud", "SN-1", "--now", LATER)

    # -- every rejection reason --

    def test_expired_and_not_yet_valid(self):
        token = self.mint("--ttl", "1h")
        self.assert_rejected(token, TOKEN_EXPIRED, "expired", "--now", "@%d" % (T0 + 3600))
        self.fk("token", "verify", token, "--now", "@%d" % (T0 + 3599))
        self.fk("token", "verify", token, "--now", "@%d" % (T0 + 3629), "--leeway", "30s")
        self.assert_rejected(token, TOKEN_EXPIRED, "expired", "--now", "@%d" % (T0 + 3630), "--leeway", "30s")
        self.assert_rejected(token, TOKEN_NOT_YET_VALID, "not_yet_valid", "--now", "@%d" % (T0 - 1))
        self.fk("token", "verify", token, "--now", "@%d" % (T0 - 10), "--leeway", "10s")
        # Without --now the clock is used: this token expired long ago.
        r = self.run_fk("token", "verify", token)
        self.assertEqual(r.rc, TOKEN_EXPIRED)

    def test_wrong_audience(self):
        token = self.mint("--aud", "SN-1")
        self.assert_rejected(token, TOKEN_WRONG_AUDIENCE, "wrong_audience", "--aud", "SN-2")
        server = self.mint()
        self.assert_rejected(server, TOKEN_WRONG_AUDIENCE, "wrong_audience", "--aud", "SN-1")
        # A device kid with another aud claim, MACed correctly under SN-1's key.
        forged = make_cwt(self.key("--aud", "SN-1"), claims({3: "SN-2"}), kid=b"v1/SN-1")
        out = self.assert_rejected(forged, TOKEN_WRONG_AUDIENCE, "wrong_audience")
        self.assertEqual(out["error"], 'kid names device "SN-1" but aud is "SN-2"')

    def test_unknown_key(self):
        key = self.key()
        for kid, error in [(b"v9", "master key version 9 is not in the registry"),
                           (b"v1/SN-9", 'device "SN-9" is not registered'),
                           (b"k1", "kid is not a fleetkey key id (v<N> or v<N>/<device>)"),
                           (b"v01", "kid is not a fleetkey key id (v<N> or v<N>/<device>)")]:
            out = self.assert_rejected(make_cwt(key, claims(), kid=kid), TOKEN_UNKNOWN_KEY, "unknown_key")
            self.assertEqual(out["error"], error)
        # A retired master version: its tokens stop verifying.
        old = self.mint()
        self.fk("master", "rotate")
        new = self.mint()
        self.assertEqual(self.fk("--json", "token", "inspect", new).json()["kid"], "v2")
        self.fk("token", "verify", old, "--now", LATER)
        self.fk("master", "retire", "1")
        out = self.assert_rejected(old, TOKEN_UNKNOWN_KEY, "unknown_key")
        self.assertEqual(out["error"], "master key version 1 is retired")
        self.fk("token", "verify", new, "--now", LATER)

    def test_alg_is_pinned_by_the_key(self):
        # A cwt64 tag relabelled as alg 5, MACed with the cwt64 key: never accepted.
        k64 = self.key("--for", "cwt64")
        self.assert_rejected(make_cwt(k64, claims(), alg=5, tag_len=8), TOKEN_BAD_MAC, "bad_mac")
        self.assert_rejected(make_cwt(k64, claims(), alg=5), TOKEN_BAD_MAC, "bad_mac")
        self.assert_rejected(make_cwt(self.key(), claims(), alg=4), TOKEN_BAD_MAC, "bad_mac")
        self.fk("token", "verify", make_cwt(k64, claims({7: b"\x02" * 8}), alg=4), "--now", LATER)
        # alg none / HS512 JWTs are malformed, whatever their signature.
        key = self.key("--for", "jwt")
        for alg in ["HS384", "HS512"]:
            token = jwt.encode({"sub": "a"}, key, algorithm=alg, headers={"kid": "v1"})
            out = self.assert_rejected(token, TOKEN_MALFORMED, "malformed")
            self.assertEqual(out["error"], 'JWT alg "%s" is not HS256' % alg)
        none = b64e(b'{"alg":"none","kid":"v1"}') + "." + b64e(b'{"sub":"a"}') + "."
        self.assert_rejected(none, TOKEN_MALFORMED, "malformed")

    def test_tampering_with_each_part(self):
        cwt = self.mint()
        raw = bytearray(b64d(cwt))
        # Byte 5 is alg (5 -> 4: a 32-byte tag for cwt64), 8 the kid's last byte, then claims, then tag.
        expect = {5: TOKEN_BAD_MAC, 8: TOKEN_UNKNOWN_KEY, 20: TOKEN_BAD_MAC, len(raw) - 1: TOKEN_BAD_MAC}
        for i, code in expect.items():
            t = bytearray(raw)
            t[i] ^= 0x01
            r = self.verify(b64e(bytes(t)))
            self.assertEqual(r.rc, code, (i, r))
        for i in range(len(raw)):
            t = bytearray(raw)
            t[i] ^= 0x40
            self.assertNotEqual(self.verify(b64e(bytes(t))).rc, OK, i)
        token = self.mint("--format", "jwt")
        h, p, s = token.split(".")
        for part, code in [(0, TOKEN_MALFORMED), (1, TOKEN_BAD_MAC), (2, TOKEN_BAD_MAC)]:
            parts = [h, p, s]
            obj = b64d(parts[part])
            if part == 0:
                parts[0] = b64e(obj.replace(b"HS256", b"HS257"))
            elif part == 1:
                parts[1] = b64e(obj.replace(b'"alice"', b'"mallory"'))
            else:
                parts[2] = b64e(bytes([obj[0] ^ 1]) + obj[1:])
            self.assertEqual(self.verify(".".join(parts)).rc, code, part)
        # Changing the kid in the JWT header to another device: another key, so a bad MAC.
        parts = token.split(".")
        parts[0] = b64e(b'{"alg":"HS256","typ":"JWT","kid":"v1/SN-1"}')
        self.assert_rejected(".".join(parts), TOKEN_BAD_MAC, "bad_mac")

    def test_malformed_inputs(self):
        key = self.key()
        good = cbor2.loads(b64d(make_cwt(key, claims())))
        protected, _, payload, tag = good.value
        crit = cbor2.dumps({1: 5, 2: [99], 4: b"v1"}, canonical=True)
        noncanonical = b"\xa6\x02\x65alice\x04\x1b" + (T0 + 3600).to_bytes(8, "big") + payload[13:]
        cases = {
            "garbage": "not a token!",
            "padding": make_cwt(key, claims()) + "=",
            "trailing bytes": b64e(b64d(make_cwt(key, claims())) + b"\x00"),
            "untagged": b64e(cbor2.dumps([protected, {}, payload, tag])),
            "critical header": make_cwt(key, claims(), protected=crit),
            "duplicate claim": make_cwt(key, b"\xa2\x02\x61a\x02\x61b"),
            "unsorted claims": make_cwt(key, b"\xa2\x09\x61a\x02\x61b"),
            "non-canonical integer": make_cwt(key, noncanonical),
            "float claim": make_cwt(key, b"\xa1\x04\xfb\x41\xda\x55\x71\xc4\x00\x00\x00"),
            "unknown claim key": make_cwt(key, claims({8: "x"})),
            "shadowing text key": make_cwt(key, claims({"sub": "x"})),
            "indefinite map": make_cwt(key, b"\xbf\x02\x61a\xff"),
            "oversized": "A" * 8193,
            "jwt duplicate member": jwt.encode({"sub": "a"}, key, algorithm="HS256",
                                               headers={"kid": "v1"}).replace(".", ".", 1),
        }
        h = b64e(b'{"alg":"HS256","kid":"v1","kid":"v2"}')
        body = b64e(b'{"sub":"a"}')
        sig = b64e(hmac.new(self.key("--for", "jwt"), (h + "." + body).encode(), hashlib.sha256).digest())
        cases["jwt duplicate member"] = h + "." + body + "." + sig
        for name, token in cases.items():
            with self.subTest(name):
                out = self.assert_rejected(token, TOKEN_MALFORMED, "malformed")
                self.assertIsNone(out["claims"])
        self.assertEqual(self.assert_rejected(cases["critical header"], TOKEN_MALFORMED, "malformed")["error"],
                         "COSE header has critical parameters this verifier does not understand")
        self.assertEqual(self.assert_rejected(cases["jwt duplicate member"], TOKEN_MALFORMED, "malformed")["error"],
                         'JWT header: duplicate JSON member "kid"')

    def test_revoke_by_token_and_by_id(self):
        a, b = self.mint("--ttl", "1h"), self.mint("--ttl", "2h", "--format", "jwt")
        before = self.snapshot()
        self.fails(USAGE, "token", "revoke", a)  # --reason is required
        self.fails(TOKEN_MALFORMED, "token", "revoke", "not a token!", "--reason", "x")
        self.fails(TOKEN_BAD_MAC, "token", "revoke", make_cwt(b"\x00" * 32, claims()), "--reason", "x")
        self.assertEqual(self.snapshot(), before)
        id_a = self.fk("--json", "token", "inspect", a).json()["token_id"]
        r = self.fk("--json", "token", "revoke", a, "--reason", "phone lost")
        self.assertEqual({k: v for k, v in r.json().items() if k != "created"},
                         {"token_id": id_a, "reason": "phone lost", "exp": T0 + 3600})
        self.assert_rejected(a, TOKEN_REVOKED, "revoked")
        id_b = self.fk("--json", "token", "inspect", b).json()["token_id"]
        self.fk("token", "verify", b, "--now", LATER)
        self.assertEqual(self.fk("token", "revoke", id_b, "--reason", "rotated").out, "revoked token %s\n" % id_b)
        out = self.assert_rejected(b, TOKEN_REVOKED, "revoked")
        self.assertEqual(out["error"], "token %s was revoked" % id_b)
        self.fails(CONFLICT, "token", "revoke", id_a, "--reason", "again")
        self.assertEqual(self.rows("SELECT kind, token_id, reason, token_exp FROM revocations ORDER BY id"),
                         [("token", id_a, "phone lost", T0 + 3600), ("token", id_b, "rotated", None)])
        self.assertEqual(self.rows("SELECT action, subject FROM audit WHERE action = 'token.revoke' ORDER BY id"),
                         [("token.revoke", id_a), ("token.revoke", id_b)])

    def test_revoked_device_and_grant(self):
        # Minted while "alice" is no registered user: service tokens (a user's need a grant).
        token = self.mint("--aud", "SN-2")
        device_token = self.mint("--aud", "SN-1")
        self.fk("token", "verify", token, "--now", LATER)
        self.fk("user", "add", "alice")
        self.fk("user", "grant", "alice", "--device", "SN-2", "--role", "owner")
        self.fk("user", "revoke", "alice", "--device", "SN-2", "--reason", "left")
        out = self.assert_rejected(token, TOKEN_REVOKED, "revoked")
        self.assertEqual(out["error"], 'the token has no epoch, but "alice" has a grant on device "SN-2" '
                                       '(revoked, epoch 2)')
        server = self.mint()
        self.fk("device", "revoke", "SN-1", "--reason", "stolen")
        out = self.assert_rejected(device_token, TOKEN_REVOKED, "revoked")
        self.assertEqual(out["error"], 'device "SN-1" is revoked')
        self.fk("token", "verify", server, "--now", LATER)
        self.fails(CONFLICT, "token", "mint", "--sub", "a", "--role", "r", "--aud", "SN-1")

    def test_tokens_without_id_or_lifetime_are_malformed(self):
        key, jkey = self.key(), self.key("--for", "jwt")
        no_cti = claims()
        del no_cti[7]
        no_exp = claims()
        del no_exp[4]
        cases = [(make_cwt(key, no_cti), "no cti"), (make_cwt(key, no_exp), "no exp"),
                 (jwt.encode({"sub": "a", "exp": T0 + 60}, jkey, algorithm="HS256", headers={"kid": "v1"}), "no jti"),
                 (jwt.encode({"sub": "a", "jti": "j1"}, jkey, algorithm="HS256", headers={"kid": "v1"}), "no exp")]
        for token, error in cases:
            with self.subTest(error):
                out = self.assert_rejected(token, TOKEN_MALFORMED, "malformed")
                self.assertEqual(out["error"], error)
        # Checked before the key: the same under a key nobody has.
        self.assertEqual(self.assert_rejected(make_cwt(b"\x00" * 32, no_cti, kid=b"v9"), TOKEN_MALFORMED,
                                              "malformed")["error"], "no cti")
        # In bulk mode too; inspect still shows such a token.
        r = self.run_fk("token", "verify", "-", "--now", LATER, input=cases[0][0] + "\n" + self.mint() + "\n")
        self.assertEqual((r.rc, [o["reason"] for o in r.jsonl()]), (TOKEN_MALFORMED, ["malformed", "ok"]))
        self.assertEqual(self.fk("--json", "token", "inspect", cases[1][0]).json()["claims"]["sub"], "alice")
        # An epoch stands in for exp: such a token gets past the malformed step (and is refused
        # later, because alice has no grant on SN-1).
        bound = make_cwt(self.key("--aud", "SN-1"), {k: v for k, v in claims({3: "SN-1", "epoch": 1}).items()
                                                      if k != 4}, kid=b"v1/SN-1")
        out = self.assert_rejected(bound, TOKEN_REVOKED, "revoked")
        self.assertEqual(out["error"], '"alice" has no grant on device "SN-1"')

    def test_kid_device_longer_than_a_device_id_is_unknown(self):
        key = self.key()
        out = self.assert_rejected(make_cwt(key, claims(), kid=b"v1/" + b"D" * 129), TOKEN_UNKNOWN_KEY, "unknown_key")
        self.assertEqual(out["error"], "kid is not a fleetkey key id (v<N> or v<N>/<device>)")
        out = self.assert_rejected(make_cwt(key, claims(), kid=b"v1/" + b"D" * 128), TOKEN_UNKNOWN_KEY, "unknown_key")
        self.assertEqual(out["error"], 'device "%s" is not registered' % ("D" * 128))
        # In bulk, many forged kids: each one is refused (none is remembered as a device).
        forged = [make_cwt(key, claims(), kid=b"v1/X%d" % i) for i in range(200)]
        r = self.run_fk("token", "verify", "-", "--now", LATER, input="\n".join(forged + [self.mint()]) + "\n")
        self.assertEqual(r.rc, TOKEN_UNKNOWN_KEY, r.err)
        self.assertEqual([o["reason"] for o in r.jsonl()], ["unknown_key"] * 200 + ["ok"])
        self.assertEqual(r.jsonl()[7]["error"], 'device "X7" is not registered')

    def test_grant_binds_tokens_for_its_subject_and_device(self):
        # A subject that is no registered user: a device token without epoch (a service token).
        plain = self.mint("--aud", "SN-1")
        self.assertNotIn("epoch", self.fk("--json", "token", "inspect", plain).json()["claims"])
        self.fk("token", "verify", plain, "--now", LATER)
        # Once alice is a registered user, a token for her device needs a grant (it used to be minted without).
        self.fk("user", "add", "alice")
        out = self.assert_rejected(plain, TOKEN_REVOKED, "revoked")
        self.assertEqual(out["error"], '"alice" is a registered user with no grant on device "SN-1"')
        r = self.fails(7, "token", "mint", "--sub", "alice", "--role", "owner", "--aud", "SN-1")
        self.assertIn('"alice" is a registered user with no grant on device "SN-1"', r.err)
        self.fk("user", "grant", "alice", "--device", "SN-1", "--role", "owner")
        out = self.assert_rejected(plain, TOKEN_REVOKED, "revoked")
        self.assertEqual(out["error"], 'the token has no epoch, but "alice" has a grant on device "SN-1" '
                                       "(active, epoch 1)")
        # With an active grant, token mint puts its epoch in the token.
        bound = self.mint("--aud", "SN-1")
        self.assertEqual(self.fk("--json", "token", "inspect", bound).json()["claims"]["epoch"], 1)
        self.fk("token", "verify", bound, "--now", LATER)
        # Another subject, and a server token for alice: not bound.
        self.fk("token", "verify", self.fk("token", "mint", "--sub", "bob", "--role", "r", "--aud", "SN-1", "--now",
                                           NOW).out.strip(), "--now", LATER)
        self.fk("token", "verify", self.mint(), "--now", LATER)
        # A revoked grant: no token for it, and after a re-grant the old tokens stay dead.
        self.fk("user", "revoke", "alice", "--device", "SN-1", "--reason", "left")
        snap = self.snapshot()
        r = self.fails(CONFLICT, "token", "mint", "--sub", "alice", "--role", "owner", "--aud", "SN-1")
        self.assertEqual(r.err.replace(fk.TEST_KEY_WARNING, ""),
                         'fleetkey: error: the grant of "alice" on device "SN-1" is revoked: no token for it\n')
        self.assertEqual(self.snapshot(), snap)
        self.fk("user", "grant", "alice", "--device", "SN-1", "--role", "owner")
        for old in (plain, bound):
            self.assert_rejected(old, TOKEN_REVOKED, "revoked")
        # An epoch-less token MACed with the device key (one minted before this rule) stays refused.
        legacy = make_cwt(self.key("--aud", "SN-1"), claims({3: "SN-1"}), kid=b"v1/SN-1")
        out = self.assert_rejected(legacy, TOKEN_REVOKED, "revoked")
        self.assertEqual(out["error"], 'the token has no epoch, but "alice" has a grant on device "SN-1" '
                                       "(active, epoch 2)")
        fresh = self.mint("--aud", "SN-1")
        self.assertEqual(self.fk("--json", "token", "inspect", fresh).json()["claims"]["epoch"], 2)
        self.fk("token", "verify", fresh, "--now", LATER)
        # The same in bulk (grants preloaded).
        r = self.run_fk("token", "verify", "--now", LATER, input="\n".join([plain, bound, legacy, fresh]) + "\n")
        self.assertEqual([o["reason"] for o in r.jsonl()], ["revoked", "revoked", "revoked", "ok"])

    def test_expired_grant_expires_its_tokens(self):
        self.fk("user", "add", "alice")
        self.fk("user", "grant", "alice", "--device", "SN-1", "--role", "owner", "--ttl", "1d")
        expires = self.rows("SELECT expires FROM grants")[0][0]
        # A grant-bound token without exp (built here: fleetkey gives it exp unless the grant has none).
        c = {k: v for k, v in claims({3: "SN-1", "epoch": 1}).items() if k != 4}
        token = make_cwt(self.key("--aud", "SN-1"), c, kid=b"v1/SN-1")
        # Such a token exceeds a grant that expires (it used to be accepted until the grant's end).
        out = self.assert_rejected(token, TOKEN_REVOKED, "revoked")
        self.assertEqual(out["error"], 'the token outlives the grant of "alice" on device "SN-1", which expires at @%d'
                         % calendar.timegm(time.strptime(expires, "%Y-%m-%dT%H:%M:%SZ")))
        after = "@%d" % calendar.timegm(time.strptime(expires, "%Y-%m-%dT%H:%M:%SZ"))
        for bulk in (False, True):
            if bulk:
                r = self.run_fk("token", "verify", "--now", after, input=token + "\n")
                self.assertEqual((r.rc, r.jsonl()[0]["reason"]), (TOKEN_EXPIRED, "expired"))
                out = r.jsonl()[0]
            else:
                out = self.assert_rejected(token, TOKEN_EXPIRED, "expired", "--now", after)
            self.assertRegex(out["error"], r'^grant of "alice" on device "SN-1" expired at \d+ \(now \d+\)$')
        # token mint as of a time after the grant's expiry is refused.
        r = self.fails(CONFLICT, "token", "mint", "--sub", "alice", "--role", "owner", "--aud", "SN-1",
                       "--now", after)
        self.assertIn('the grant of "alice" on device "SN-1" expired at %s' % expires, r.err)

    def test_inspect_and_revoke_read_the_token_from_stdin(self):
        token = self.mint()
        tid = self.fk("--json", "token", "inspect", token).json()["token_id"]
        for text in (token, token + "\n", token + "\r\n"):
            self.assertEqual(self.fk("--json", "token", "inspect", "-", input=text).json()["token_id"], tid)
        self.fails(USAGE, "token", "inspect", "-", input=token + "\n" + token + "\n")
        self.fails(TOKEN_MALFORMED, "token", "inspect", "-", input="")
        self.fails(TOKEN_MALFORMED, "token", "inspect", "-", input="A" * 20000)
        before = self.snapshot()
        self.fails(USAGE, "token", "revoke", "-", "--reason", "x", input=token + "\n" + token)
        self.fails(TOKEN_BAD_MAC, "token", "revoke", "-", "--reason", "x", input=make_cwt(b"\x00" * 32, claims()))
        self.assertEqual(self.snapshot(), before)
        self.assertEqual(self.fk("token", "revoke", "-", "--reason", "lost", input=token + "\n").out,
                         "revoked token %s\n" % tid)
        self.assert_rejected(token, TOKEN_REVOKED, "revoked")
        # An id on stdin too.
        other = self.fk("--json", "token", "inspect", self.mint("--ttl", "2h")).json()["token_id"]
        self.fk("token", "revoke", "-", "--reason", "lost", input=other + "\n")
        self.assertEqual(self.rows("SELECT token_id FROM revocations ORDER BY id"), [(tid,), (other,)])
        for cmd in ("inspect", "revoke"):
            help_text = " ".join(self.fk("token", cmd, "--help").out.split())  # wrapped to the width
            self.assertIn("visible to other users", help_text)

    def test_revoke_by_upper_case_id(self):
        token = self.mint()
        tid = self.fk("--json", "token", "inspect", token).json()["token_id"]
        r = self.fk("--json", "token", "revoke", tid.upper(), "--reason", "copied from a log")
        self.assertEqual(r.json()["token_id"], tid)
        self.assertEqual(self.rows("SELECT token_id FROM revocations"), [(tid,)])
        self.assert_rejected(token, TOKEN_REVOKED, "revoked")
        self.fails(CONFLICT, "token", "revoke", tid, "--reason", "again")
        # An id fleetkey never minted (another station's token) is recorded as given.
        self.fk("token", "revoke", "ABCDEF0123", "--reason", "foreign")
        self.assertEqual(self.rows("SELECT token_id FROM revocations ORDER BY id"), [(tid,), ("abcdef0123",)])

    def jwt_with_jti(self, jti, **extra):
        body = {"sub": "svc", "iat": T0, "exp": T0 + 3600, "jti": jti}
        body.update(extra)
        return jwt.encode(body, self.key("--for", "jwt"), algorithm="HS256", headers={"kid": "v1"})

    def test_jwt_ids_are_folded_so_revoke_and_verify_agree(self):
        upper = self.jwt_with_jti("ABCDEF0123456789")
        r = self.fk("--json", "token", "verify", upper, "--now", LATER)
        self.assertEqual((r.json()["token_id"], r.json()["claims"]["jti"]), ("abcdef0123456789", "ABCDEF0123456789"))
        self.assertEqual(self.fk("--json", "token", "inspect", upper).json()["token_id"], "abcdef0123456789")
        self.assertEqual(self.fk("token", "revoke", "ABCDEF0123456789", "--reason", "leaked").out,
                         "revoked token abcdef0123456789\n")
        out = self.assert_rejected(upper, TOKEN_REVOKED, "revoked")
        self.assertEqual(out["error"], "token abcdef0123456789 was revoked")
        r = self.run_fk("token", "verify", "--now", LATER, input=upper + "\n")
        self.assertEqual((r.rc, r.jsonl()[0]["reason"]), (TOKEN_REVOKED, "revoked"))
        # The same id in another case names the same token, whichever side it comes from.
        lower = self.jwt_with_jti("abcdef0123456789")
        self.assert_rejected(lower, TOKEN_REVOKED, "revoked")
        self.fails(CONFLICT, "token", "revoke", "abcDEF0123456789", "--reason", "again")
        # A mixed-case jti that is not hex, revoked by its text: recorded folded.
        mixed = self.jwt_with_jti("Session-X1")
        self.fk("token", "revoke", mixed, "--reason", "leaked")
        self.assertEqual(self.rows("SELECT token_id FROM revocations ORDER BY id"),
                         [("abcdef0123456789",), ("session-x1",)])
        self.assert_rejected(self.jwt_with_jti("SESSION-x1"), TOKEN_REVOKED, "revoked")
        # A row recorded before ids were folded (the jti as it was, schema 2) still revokes its token:
        # opening the registry migrates it to schema 3, which folds it. (The registry is made a schema 2
        # one again: what schema 4 added goes too, since opening applies it again.)
        # On PostgreSQL schemas 5 and 6 are taken back as well (their files alter the audit table and
        # devices' key_version check, so they do not run twice); the rows get their links again when 5
        # is applied.
        con = self.writable_db()
        with con:
            con.execute("INSERT INTO revocations (id, kind, token_id, reason, created) VALUES "
                        "((SELECT max(id) + 1 FROM revocations), 'token', 'Legacy-Q', 'old', '2026-01-01T00:00:00Z')")
            con.execute("DROP INDEX revocations_tokens_by_device")
            con.execute("DROP TABLE state")
            con.execute("ALTER TABLE devices DROP COLUMN state_seq")
            if fk.PG_STATE:
                for sql in ("DROP TRIGGER audit_linked ON audit", "DROP FUNCTION fleetkey_audit_linked()",
                            "DROP TRIGGER audit_no_update ON audit",
                            "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit FOR EACH ROW "
                            "EXECUTE FUNCTION fleetkey_audit_append_only()",
                            "ALTER TABLE audit DROP COLUMN seq", "ALTER TABLE audit DROP COLUMN hash",
                            "DROP TRIGGER devices_key_version_insert ON devices",
                            "DROP TRIGGER devices_key_version_update ON devices",
                            "DROP TRIGGER master_keys_in_use_delete ON master_keys",
                            "DROP TRIGGER master_keys_in_use_update ON master_keys",
                            "DROP TRIGGER master_keys_in_use_truncate ON master_keys",
                            "DROP FUNCTION fleetkey_devices_key_version()",
                            "DROP FUNCTION fleetkey_master_keys_in_use()",
                            "DROP FUNCTION fleetkey_master_keys_truncate()",
                            "ALTER TABLE devices ADD CONSTRAINT devices_key_version_fkey FOREIGN KEY (key_version) "
                            "REFERENCES master_keys (version)",
                            "UPDATE fleetkey_registry SET schema_version = 2"):
                    con.execute(sql)
            else:
                con.execute("PRAGMA user_version = 2")
        legacy = self.jwt_with_jti("Legacy-Q")
        self.assertEqual(self.assert_rejected(legacy, TOKEN_REVOKED, "revoked")["error"],
                         "token legacy-q was revoked")
        r = self.run_fk("token", "verify", "--now", LATER, input=legacy + "\n" + self.jwt_with_jti("Fresh") + "\n")
        self.assertEqual([o["reason"] for o in r.jsonl()], ["revoked", "ok"])

    def test_jwk_is_the_jwt_key_unless_for_says_otherwise(self):
        jwk = json.loads(self.fk("token", "key", "--format", "jwk").out)
        self.assertEqual(jwk, {"kty": "oct", "kid": "v1", "alg": "HS256", "use": "sig", "k": b64e(self.key("--for", "jwt"))})
        token = self.mint("--format", "jwt")
        self.assertEqual(jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["HS256"],
                                    options={"verify_exp": False})["sub"], "alice")
        jwk = json.loads(self.fk("token", "key", "--format", "jwk", "--for", "cwt").out)
        self.assertEqual(jwk, {"kty": "oct", "kid": "v1", "use": "sig", "k": b64e(self.key())})
        # --json ignores --format (like device key --json): the key in base64, and "for" names it.
        j = self.fk("--json", "token", "key", "--format", "hex").json()
        self.assertEqual((j["for"], j["key"]), ("cwt", base64.b64encode(self.key()).decode()))
        j = self.fk("--json", "token", "key", "--format", "jwk").json()
        self.assertEqual((j["for"], j["key"]), ("jwt", base64.b64encode(self.key("--for", "jwt")).decode()))

    def test_token_key_output_is_byte_for_byte_as_documented(self):
        """fleetkey-tokens(5) KEYS: hex and base64 lines, and the JWK object with its members in the order
        kty, kid, alg (jwt key only), use, k, no spaces, a newline. The keys are derived here from the test
        seed (reference.py), and the kid of a device whose id needs JSON escapes is written by hand."""
        device = 'say "hi" \\ a/b'
        self.fk("device", "add", device)
        master = reference.test_master_key(bytes.fromhex(fk.TEST_SEED))
        prk = reference.hkdf_extract(reference.SALT, master)
        dev_prk = reference.device_prk(reference.device_key(master, device))
        labels = {"cwt": "cose-hmac256/256", "cwt64": "cose-hmac256/64", "jwt": "jwt-hs256"}
        for aud, kid_json, root in [([], '"v1"', prk), (["--aud", device], r'"v1/say \"hi\" \\ a/b"', dev_prk)]:
            for fmt, label in labels.items():
                with self.subTest(aud=aud, key=fmt):
                    key = reference.hkdf_expand(root, reference.info("token", label))
                    alg = ',"alg":"HS256"' if fmt == "jwt" else ""
                    jwk = '{"kty":"oct","kid":%s%s,"use":"sig","k":"%s"}\n' % (kid_json, alg, b64e(key))
                    self.assertEqual(len(b64e(key)), 43)
                    self.assertEqual(self.fk("token", "key", *aud, "--for", fmt, "--format", "jwk").out, jwk)
                    self.assertEqual(self.fk("token", "key", *aud, "--for", fmt, "--format", "hex").out,
                                     key.hex() + "\n")
                    self.assertEqual(self.fk("token", "key", *aud, "--for", fmt, "--format", "base64").out,
                                     base64.b64encode(key).decode() + "\n")
                    if fmt == "jwt":  # --format jwk alone is the jwt key
                        self.assertEqual(self.fk("token", "key", *aud, "--format", "jwk").out, jwk)
        # The page's example is what fleetkey prints.
        example = re.findall(r'^  (\{"kty":"oct",.*"k":"[A-Za-z0-9_-]{43}"\})$', man_page(), re.M)
        self.assertEqual(len(example), 1)
        self.assertEqual(self.fk("token", "key", "--format", "jwk").out, example[0] + "\n")

    def test_verify_json_shows_extra_claims_in_the_tokens_own_order(self):
        """fleetkey-tokens(5) VERIFICATION: the registered claims in a fixed order, then the extra claims
        as the token holds them: a CWT's in deterministic CBOR map order, a JWT's in member order."""
        claim_args = ["--claim", "bb=1", "--claim", "a.=2", "--claim", "c=3", "--claim", "Z=4"]
        cwt = self.mint("--ttl", "1h", *claim_args)
        cti = cbor2.loads(cbor2.loads(b64d(cwt)).value[2])[7].hex()
        head = ('{"valid":true,"reason":"ok","format":"%%s","kid":"v1","token_id":"%%s","claims":{"sub":"alice",'
                '"scope":"owner","iat":%d,"nbf":%d,"exp":%d,' % (T0, T0, T0 + 3600))
        self.assertEqual(self.verify(cwt).out, head % ("cwt", cti)
                         + '"cti":"%s","Z":"4","c":"3","a.":"2","bb":"1"}}\n' % cti)
        jwt_token = self.mint("--ttl", "1h", "--format", "jwt", *claim_args)
        jti = json.loads(b64d(jwt_token.split(".")[1]))["jti"]
        self.assertEqual(self.verify(jwt_token).out, head % ("jwt", jti)
                         + '"jti":"%s","bb":"1","a.":"2","c":"3","Z":"4"}}\n' % jti)
        # Tokens built here: epoch keeps its place before the extras, whatever the CBOR map order (where
        # "epoch" sorts among the text keys); controls are escaped; a JWT's non-string values are shown
        # as their JSON text without the whitespace outside strings.
        cwt = make_cwt(self.key(), claims({"zzzzzz": "y", "epoch": 3, "bb": "\x01\n", "a": "x"}))
        self.assertEqual([k for k in cbor2.loads(cbor2.loads(b64d(cwt)).value[2]) if isinstance(k, str)],
                         ["a", "bb", "epoch", "zzzzzz"])
        self.assertEqual(self.verify(cwt).out, head % ("cwt", "01" * 16)
                         + '"cti":"%s","epoch":3,"a":"x","bb":"\\u0001\\u000a","zzzzzz":"y"}}\n' % ("01" * 16))
        header = b64e(b'{"alg":"HS256","typ":"JWT","kid":"v1"}')
        body = b64e(('{"zz" : [1, 2.50 ,{"a b" : "x y"}], "exp":%d, "c\\u0001":"\\u007f", "jti":"J1", '
                     '"iss":"me", "t" : true}' % (T0 + 3600)).encode())
        signing_input = header + "." + body
        token = signing_input + "." + b64e(hmac.new(self.key("--for", "jwt"), signing_input.encode(),
                                                     hashlib.sha256).digest())
        self.assertEqual(self.verify(token).out,
                         '{"valid":true,"reason":"ok","format":"jwt","kid":"v1","token_id":"j1","claims":{'
                         '"iss":"me","exp":%d,"jti":"J1","zz":[1,2.50,{"a b":"x y"}],"c\\u0001":"\\u007f",'
                         '"t":true}}\n' % (T0 + 3600))

    def test_claim_keys_and_values_are_limited_as_documented(self):
        """fleetkey-tokens(5) EXTRA CLAIMS: KEY of 1-64 of A-Z a-z 0-9 _ . -, not a registered name, given
        once; VALUE of at most 256 bytes of UTF-8 without controls, cut at the first "="."""
        accepted = {"k" * 64: "v", "A_z.0-9": "", "eq": "a=b=c", "long": "\u00e9" * 128, "wide": "\u6771 \u00e9/"}
        args = [a for k, v in accepted.items() for a in ("--claim", "%s=%s" % (k, v))]
        token = self.mint("--ttl", "1h", *args)
        payload = cbor2.loads(cbor2.loads(b64d(token)).value[2])
        self.assertEqual({k: v for k, v in payload.items() if isinstance(k, str)}, accepted)
        before = self.snapshot()
        refused = ["k" * 65 + "=v", "=v", "a/b=v", "a b=v", "\u00e9=v", "a:b=v", "novalue", "sub=x", "epoch=1",
                   "k=" + "\u00e9" * 128 + "a", "k=" + "x" * 257, "k=a\tb", "k=a\nb", "k=a\x7fb", "k=a\u0085b"]
        for arg in refused:
            with self.subTest(arg=arg):
                self.fails(USAGE, "token", "mint", "--sub", "alice", "--role", "owner", "--ttl", "1h",
                           "--claim", arg)
        self.fails(USAGE, "token", "mint", "--sub", "alice", "--role", "owner", "--ttl", "1h", "--claim", "a=1",
                   "--claim", "a=2")
        r = self.run_fk("token", "mint", "--sub", "alice", "--role", "owner", "--ttl", "1h",
                        b"--claim", b"k=a\xffb")
        self.assertEqual(r.rc, USAGE, r)
        self.assertIn('--claim "k" value', r.err)
        for arg, message in [("a/b=v", '--claim key "a/b" must be 1 to 64 characters of A-Z a-z 0-9 _ . -'),
                             ("novalue", '--claim "novalue" is not KEY=VALUE'),
                             ("k=a\tb", '--claim "k" value must be at most 256 bytes of printable UTF-8')]:
            with self.subTest(arg=arg):
                r = self.fails(USAGE, "token", "mint", "--sub", "alice", "--role", "owner", "--ttl", "1h",
                               "--claim", arg)
                self.assertTrue(r.err.endswith(f"fleetkey: error: {message}\n"), r.err)
        self.assertEqual(self.snapshot(), before)

    def test_grant_bundle_qr_holds_the_bundle_json_without_its_newline(self):
        """fleetkey-tokens(5) GRANT BUNDLE: the QR code's content is the bundle's JSON text less its newline;
        with -o, --json prints its members but user_key, and file."""
        self.fk("user", "add", "alice")
        for device, extra in (("SN-1", []), ("SN-2", ["--ttl", "30d"])):
            png = os.path.join(self.tmp, device + ".png")
            r = self.fk("--json", "user", "grant", "alice", "--device", device, "--role", "owner", "--qr", "png",
                        "-o", png, *extra)
            self.assertTrue(r.out.endswith("}\n"), r.out)
            self.assertNotIn("\n", r.out[:-1])
            text, = fk.zbar(png)
            bundle = json.loads(text)
            self.assertEqual(json.dumps(bundle, separators=(",", ":")), text)
            self.assertEqual(list(bundle)[-1], "user_key")
            del bundle["user_key"]
            self.assertEqual(json.loads(r.out), {**bundle, "file": png})

    def test_man_page_lengths_and_claims(self):
        page = man_page()
        info = b"\x00\x05token\x00\x09jwt-hs256"
        self.assertIn('info("token", "jwt-hs256") is the %d bytes' % len(info), page)
        self.assertIn(info.hex(), page)
        text = " ".join(page.split())
        self.assertNotIn("pushed with its revocation list", text)
        # The device's side of revocation is the state document now (it said "fleetkey does not yet
        # produce a revocation list for devices").
        self.assertNotIn("does not yet produce a revocation list", text)
        self.assertIn("fleetkey-state\\fR(5) specifies the document", text)

    def test_kid_that_is_not_utf8_is_malformed_and_output_stays_json(self):
        # No key needed: protected {1: 5, 4: h'FFFE22'} and a zero tag.
        protected = cbor2.dumps({1: 5, 4: b"\xff\xfe\x22"}, canonical=True)
        payload = cbor2.dumps(claims(), canonical=True)
        bad = b64e(cbor2.dumps(cbor2.CBORTag(17, [protected, {}, payload, b"\x00" * 32])))
        out = self.assert_rejected(bad, TOKEN_MALFORMED, "malformed")
        self.assertEqual(out, {"valid": False, "reason": "malformed", "error": "COSE kid is not valid UTF-8",
                               "claims": None})
        r = self.run_fk("token", "verify", "--now", LATER, input=(bad + "\n" + self.mint() + "\n").encode(),
                        binary=True)
        self.assertEqual(r.rc, TOKEN_MALFORMED)
        lines = [json.loads(line.decode("utf-8", errors="strict")) for line in r.out.splitlines()]
        self.assertEqual([o["reason"] for o in lines], ["malformed", "ok"])
        r = self.run_fk("--json", "token", "inspect", bad, binary=True)
        self.assertEqual((r.rc, r.out), (TOKEN_MALFORMED, b""))
        self.assertTrue(r.err.endswith(b"fleetkey: error: malformed token: COSE kid is not valid UTF-8\n"), r.err)

    def test_empty_aud_is_a_usage_error_not_any_audience(self):
        token = self.mint("--aud", "SN-1")
        self.fk("token", "verify", token, "--aud", "SN-1", "--now", LATER)
        r = self.fails(USAGE, "token", "verify", token, "--aud", "", "--now", LATER)
        self.assertEqual(r.err.replace(fk.TEST_KEY_WARNING, ""),
                         "fleetkey: error: --aud must name a device, not be empty\n")
        self.fails(USAGE, "--json", "token", "verify", "-", "--aud", "", "--now", LATER, input=token + "\n")

    def test_cwt_tag_of_any_other_length_is_a_bad_mac(self):
        key = self.key()
        for n in (0, 31, 33, 64):
            with self.subTest(n):
                c = cbor2.loads(b64d(make_cwt(key, claims())))
                c.value[3] = (c.value[3] + b"\x00" * 32)[:n]  # the right tag, cut short or followed by zeros
                token = b64e(cbor2.dumps(c))
                out = self.assert_rejected(token, TOKEN_BAD_MAC, "bad_mac")
                self.assertEqual(out["error"], "tag of %d bytes for a cwt token (needs 32)" % n)

    def test_times_out_of_range_are_usage_errors(self):
        before = self.snapshot()
        for args, option in [(["--now", "@9223372036854775000"], "--now"), (["--now", "@-1"], "--now"),
                             (["--now", "@253402300800"], "--now")]:
            r = self.fails(USAGE, "token", "mint", "--sub", "alice", "--role", "x", "--ttl", "1h", *args)
            self.assertEqual(r.err.replace(fk.TEST_KEY_WARNING, ""),
                             "fleetkey: error: %s %s is out of range (1970-01-01T00:00:00Z to "
                             "9999-12-31T23:59:59Z)\n" % (option, args[1]))
        self.assertEqual(self.snapshot(), before)
        token = self.mint()
        for now in ("@-9223372036854775808", "@9223372036854775807"):
            self.fails(USAGE, "token", "verify", token, "--now", now, "--leeway", "1s")
            self.fails(USAGE, "token", "verify", "-", "--now", now, input=token + "\n")
        # The last second in range works, and its exp is past it.
        j = self.fk("--json", "token", "mint", "--sub", "alice", "--role", "x", "--ttl", "1h",
                    "--now", "@253402300799").json()
        self.assertEqual(j["claims"]["exp"], 253402300799 + 3600)
        self.fk("token", "verify", j["token"], "--now", "@253402300799", "--leeway", "520w")

    def test_leeway_may_be_zero(self):
        token = self.mint("--ttl", "1h")
        for zero in ("0", "0s", "00s", "0m0s"):
            with self.subTest(zero):
                self.fk("token", "verify", token, "--now", "@%d" % (T0 + 3599), "--leeway", zero)
                self.assert_rejected(token, TOKEN_EXPIRED, "expired", "--now", "@%d" % (T0 + 3600), "--leeway", zero)
        for bad in ("-1s", "0x", "s", "", "0s0", "1h0"):
            with self.subTest(bad):
                self.fails(USAGE, "token", "verify", token, "--now", LATER, "--leeway", bad)

    def test_jwt_claim_errors_say_which_claim(self):
        for body, error in [({"jti": "", "exp": T0 + 60}, "jti must be 1 to 128 bytes"),
                            ({"jti": "j" * 129, "exp": T0 + 60}, "jti must be 1 to 128 bytes"),
                            ({"jti": "j", "epoch": -1}, "epoch claim is not an unsigned integer")]:
            with self.subTest(error):
                token = jwt.encode(body, self.key("--for", "jwt"), algorithm="HS256", headers={"kid": "v1"})
                out = self.assert_rejected(token, TOKEN_MALFORMED, "malformed")
                self.assertEqual(out["error"], "JWT claims: " + error)

    def test_minted_jwt_bytes_follow_the_documented_escaping(self):
        def string(s):
            """A JSON string as fleetkey-tokens(5) JWT LAYOUT says: only ", \\, U+0000-U+001F and DEL escaped."""
            out = ""
            for ch in s:
                if ch in "\"\\":
                    out += "\\" + ch
                elif ord(ch) < 0x20 or ord(ch) == 0x7F:
                    out += "\\u%04x" % ord(ch)
                else:
                    out += ch
            return '"' + out + '"'

        self.assertEqual(string('a"\\/\x01\x7fé'), '"a\\"\\\\/\\u0001\\u007fé"')
        sub, site = 'zoë "x"/y\\z', "Zürich – 東京 😀"
        token = self.fk("token", "mint", "--sub", sub, "--role", "owner", "--now", NOW, "--format", "jwt",
                        "--claim", "site=" + site, "--claim", "b=1").out.strip()
        jti = json.loads(b64d(token.split(".")[1]))["jti"]
        header = '{"alg":"HS256","typ":"JWT","kid":"v1"}'
        body = ('{"sub":%s,"scope":"owner","iat":%d,"nbf":%d,"exp":%d,"jti":%s,"site":%s,"b":"1"}'
                % (string(sub), T0, T0, T0 + 3600, string(jti), string(site)))
        signing_input = b64e(header.encode()) + "." + b64e(body.encode("utf-8"))
        tag = hmac.new(self.key("--for", "jwt"), signing_input.encode(), hashlib.sha256).digest()
        self.assertEqual(token, signing_input + "." + b64e(tag))
        self.assertEqual(jwt.decode(token, self.key("--for", "jwt"), algorithms=["HS256"],
                                    options={"verify_exp": False})["sub"], sub)

    def test_device_kid_must_name_the_version_the_device_was_registered_under(self):
        # SN-1 has keys of master version 1. A token under version 2's K_tok_dev(SN-1), MACed
        # correctly (the key built here from the test seed), is not accepted.
        self.fk("master", "rotate")
        seed = bytes.fromhex(fk.TEST_SEED)

        def k_tok_dev(version):
            k_dev = reference.device_key(reference.test_master_key(seed, version), "SN-1")
            return reference.hkdf_expand(reference.device_prk(k_dev), reference.info("token", "cose-hmac256/256"))

        forged = make_cwt(k_tok_dev(2), claims({3: "SN-1"}), kid=b"v2/SN-1")
        out = self.assert_rejected(forged, TOKEN_UNKNOWN_KEY, "unknown_key")
        self.assertEqual(out["error"], 'device "SN-1" has keys of master version 1, not 2')
        # Its own version's key is accepted, and is what fleetkey mints and exports for it.
        self.assertEqual(k_tok_dev(1), self.key("--aud", "SN-1"))
        self.assertEqual(self.fk("--json", "token", "inspect", self.mint("--aud", "SN-1")).json()["kid"], "v1/SN-1")
        self.fk("token", "verify", make_cwt(k_tok_dev(1), claims({3: "SN-1"}), kid=b"v1/SN-1"), "--now", LATER)

    # -- bulk --

    def test_bulk_verify_from_stdin(self):
        good = [self.mint("--claim", "n=%d" % i) for i in range(3)]
        expired = self.mint("--ttl", "60s")
        lines = [good[0], "", good[1] + "\r", "garbage", expired, good[2]]
        r = self.run_fk("token", "verify", "-", "--now", LATER, input="\n".join(lines))
        self.assertEqual(r.rc, TOKEN_MALFORMED, r)
        self.assertEqual(r.err.splitlines()[-1],
                         "fleetkey: error: 2 of 5 tokens are invalid (the exit code is the first one's reason)")
        out = r.jsonl()
        self.assertEqual([o["reason"] for o in out], ["ok", "ok", "malformed", "expired", "ok"])
        self.assertEqual([o["claims"]["n"] for o in out if o["valid"]], ["0", "1", "2"])
        # No argument means stdin too; exit 0 only when every token is valid.
        r = self.run_fk("token", "verify", "--now", LATER, input="\n".join(good) + "\n")
        self.assertEqual((r.rc, len(r.jsonl())), (OK, 3), r)
        r = self.run_fk("token", "verify", "--now", LATER, input=expired + "\n" + "x\n")
        self.assertEqual(r.rc, TOKEN_EXPIRED, r)
        # Many tokens across both workers keep their order.
        many = [self.mint("--claim", "n=%d" % i) for i in range(20)]
        r = self.run_fk("token", "verify", "--now", LATER, input="\n".join(many * 500) + "\n")
        self.assertEqual(r.rc, OK, r.err)
        self.assertEqual([o["claims"]["n"] for o in r.jsonl()], [str(i) for i in range(20)] * 500)
        # A line far longer than any token.
        r = self.run_fk("token", "verify", "--now", LATER, input="A" * (5 << 20) + "\n" + good[0] + "\n")
        self.assertEqual(r.rc, TOKEN_MALFORMED, r.err)
        self.assertEqual([o["reason"] for o in r.jsonl()], ["malformed", "ok"])
        # Output that cannot be written (a full disk) is an error, not a silent success.
        with open("/dev/full", "w") as full:
            proc = subprocess.run([fk.BIN, "token", "verify", "--now", LATER], input="\n".join(many * 500) + "\n",
                                  stdout=full, stderr=subprocess.PIPE, env=self.env, text=True, timeout=300)
        self.assertEqual((proc.returncode, proc.stderr.splitlines()[-1]),
                         (1, "fleetkey: error: cannot write to stdout: No space left on device"))

    # -- mint, inspect --

    def test_mint_is_reproducible_with_a_test_key_and_validates_input(self):
        self.assertEqual(self.mint(), self.mint())
        self.assertNotEqual(self.mint(), self.mint("--claim", "a=b"))
        r = self.fk("--json", "token", "mint", "--sub", "alice", "--role", "owner", "--now", NOW, "--format", "cwt64")
        j = r.json()
        self.assertEqual((j["format"], j["kid"], len(j["token_id"])), ("cwt64", "v1", 16))
        self.assertEqual(self.rows("SELECT action, subject, json_extract(details, '$.token_id') FROM audit "
                                   "WHERE action = 'token.mint' ORDER BY id DESC LIMIT 1"),
                         [("token.mint", "alice", j["token_id"])])
        before = self.snapshot()
        for args in (["--role", "bad role"], ["--role", "r", "--ttl", "0"], ["--role", "r", "--claim", "sub=x"],
                     ["--role", "r", "--claim", "a=1", "--claim", "a=2"], ["--role", "r", "--now", "yesterday"],
                     ["--role", "r", "--format", "paseto"]):
            self.fails(USAGE, "token", "mint", "--sub", "alice", *args)
        self.fails(NOT_FOUND, "token", "mint", "--sub", "alice", "--role", "r", "--aud", "SN-9")
        self.assertEqual(self.snapshot(), before)

    def test_real_key_tokens_get_random_ids(self):
        self.fk("init", "--no-passphrase", "--force") if False else None
        home = os.path.join(self.tmp, "real")
        env = {"FLEETKEY_HOME": home}
        self.fk("init", "--no-passphrase", env=env)
        args = ("token", "mint", "--sub", "a", "--role", "r", "--now", NOW)
        self.assertNotEqual(self.fk(*args, env=env).out, self.fk(*args, env=env).out)

    def test_inspect_says_it_did_not_verify(self):
        token = make_cwt(b"\x00" * 32, claims())
        r = self.fk("token", "inspect", token)
        self.assertTrue(r.out.startswith("NOT VERIFIED: decoded only; the MAC, times and revocation were not checked\n"))
        self.assertIn("format:   cwt (COSE_Mac0, HMAC 256/256 (alg 5))\n", r.out)
        j = self.fk("--json", "token", "inspect", token).json()
        self.assertEqual(j, {"verified": False, "format": "cwt", "alg": "COSE_Mac0, HMAC 256/256 (alg 5)",
                             "kid": "v1", "token_id": "01" * 16,
                             "claims": {"sub": "alice", "scope": "owner", "iat": T0, "nbf": T0, "exp": T0 + 3600,
                                        "cti": "01" * 16}})
        self.fails(TOKEN_MALFORMED, "token", "inspect", "x")

    def test_human_verify_output(self):
        token = self.mint()
        r = self.fk("token", "verify", token, "--now", LATER)
        tid = self.fk("--json", "token", "inspect", token).json()["token_id"]
        self.assertEqual(r.out, "valid cwt token\nkid:      v1\ntoken id: %s\nclaims:   "
                                '{"sub":"alice","scope":"owner","iat":%d,"nbf":%d,"exp":%d,"cti":"%s"}\n'
                         % (tid, T0, T0, T0 + 3600, tid))
        r = self.fails(TOKEN_EXPIRED, "token", "verify", token, "--now", "@%d" % (T0 + 7200))
        self.assertEqual(r.err.splitlines()[-1],
                         "fleetkey: error: token rejected (expired): expired at %d (now %d)" % (T0 + 3600, T0 + 7200))


if __name__ == "__main__":
    fk.main()
