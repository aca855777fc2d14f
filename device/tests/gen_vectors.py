#!/usr/bin/env python3
"""Writes the device library's test vectors as a C header, made by the fleetkey CLI itself.

    gen_vectors.py FLEETKEY_BIN OUT.h

Keys, tokens, pairing codes and every token's expected reason come from the built fleetkey
(init --test-seed, device key, user key, token mint --now, token verify --json, pair --json), so
that the CLI and the library cannot drift. The state documents are made here from
/work/spec/state.md (man/fleetkey-state.5 once it lands) with Python's hmac and cbor2: switch
state_doc.make_state() to `fleetkey device state` once that command is on main. The handshake and the
channel frames are computed here, independently of the C code, with hmac and python3-cryptography's
ChaCha20Poly1305: this script is the oracle for fleetkey-device(7).
"""
import base64
import hashlib
import hmac
import json
import os
import struct
import subprocess
import sys
import tempfile

import cbor2
from state_doc import make_state
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

SEED = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
T0 = 1796083200  # 2026-12-01T00:00:00Z
DEV, OTHER = "SN-0001", "SN-0002"


def field(x):
    if isinstance(x, int):
        x = struct.pack(">Q", x)
    elif isinstance(x, str):
        x = x.encode()
    return struct.pack(">H", len(x)) + x


def info(*xs):
    return b"".join(field(x) for x in xs)


def hkdf_extract(salt, ikm):
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def hkdf_expand(prk, inf, n):
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = hmac.new(prk, t + inf + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:n]


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unb64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class Fleet:
    def __init__(self, binary, home):
        self.bin = binary
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETKEY_")}
        self.env.update({"FLEETKEY_HOME": home, "FLEETKEY_ACTOR": "vectors", "LC_ALL": "C.UTF-8"})

    def run(self, *args, ok=(0,)):
        p = subprocess.run([self.bin, *args], capture_output=True, text=True, env=self.env,
                           stdin=subprocess.DEVNULL, timeout=120)
        if p.returncode not in ok:
            sys.exit(f"gen_vectors: fleetkey {' '.join(args)} failed ({p.returncode}): {p.stderr}")
        return p.stdout.strip()

    def mint(self, sub, role, now, ttl="1h", aud=DEV, fmt="cwt"):
        return self.run("token", "mint", "--aud", aud, "--sub", sub, "--role", role, "--now", f"@{now}",
                        "--ttl", ttl, "--format", fmt)

    def verify(self, token, now):
        out = self.run("--json", "token", "verify", token, "--aud", DEV, "--now", f"@{now}", ok=range(0, 17))
        return json.loads(out)["reason"]


def craft_token(key, kid, claims, alg=5, tag_len=None, raw_claims=None):
    """A token built by hand, to reach the reasons the CLI never mints (checked by token verify)."""
    protected = bytes([0xa2, 0x01, alg, 0x04]) + cbor2.dumps(kid.encode())
    payload = raw_claims if raw_claims is not None else cbor2.dumps(claims, canonical=True)
    tag = hmac.new(key, cbor2.dumps(["MAC0", protected, b"", payload]), hashlib.sha256).digest()
    tag = tag[:tag_len if tag_len is not None else (32 if alg == 5 else 8)]
    return b64url(cbor2.dumps(cbor2.CBORTag(17, [protected, {}, payload, tag])))


def handshake(k_user, dev, n_lock, n_phone, token):
    """fleetkey-device(7): the response, the confirmation, the session keys."""
    mac_p = hmac.new(k_user, info("fleetkey/v1 handshake", dev, n_lock, n_phone, token), hashlib.sha256).digest()
    m2 = b"\x02" + n_phone + struct.pack(">H", len(token)) + token + mac_p
    m3 = b"\x03" + hmac.new(k_user, info("fleetkey/v1 handshake lock", dev, n_lock, n_phone, mac_p),
                            hashlib.sha256).digest()
    prk = hkdf_extract(n_lock + n_phone, k_user)
    p2l = hkdf_expand(prk, info("session", "phone-to-lock", mac_p), 32)
    l2p = hkdf_expand(prk, info("session", "lock-to-phone", mac_p), 32)
    return m2, m3, p2l, l2p


def frame(key, ctr, pt):
    hdr = struct.pack(">Q", ctr)
    return hdr + ChaCha20Poly1305(key).encrypt(b"\0\0\0\0" + hdr, pt, hdr)


def aead_cases():
    """ChaCha20-Poly1305 cases from python3-cryptography: lengths across block edges, and
    ciphertexts of all ff bytes (the Poly1305 accumulator near 2^130 - 5)."""
    cases = []
    for i in range(24):
        key = hashlib.sha256(b"key%d" % i).digest()
        nonce = hashlib.sha256(b"nonce%d" % i).digest()[:12]
        aad = hashlib.sha256(b"aad%d" % i).digest()[:i % 17]
        n = (i * 23) % 160
        if i % 2:
            stream = Cipher(algorithms.ChaCha20(key, b"\1\0\0\0" + nonce), None).encryptor().update(bytes(n))
            pt = bytes(b ^ 0xff for b in stream)
        else:
            pt = (hashlib.sha256(b"pt%d" % i).digest() * 6)[:n]
        cases.append((key, nonce, aad, pt, ChaCha20Poly1305(key).encrypt(nonce, pt, aad)))
    return cases


def c_bytes(name, b):
    body = ",".join(f"0x{x:02x}" for x in b) or "0"
    return f"static const uint8_t {name}[] = {{{body}}};\nstatic const size_t {name}_len = {len(b)};\n"


def c_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


REASONS = ["ok", "malformed", "bad_mac", "expired", "not_yet_valid", "revoked", "unknown_key",
           "wrong_audience", "stale", "replayed", "forbidden"]


def main():
    binary, out_path = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="fleetkey-vectors-") as home:
        fk = Fleet(binary, os.path.join(home, "h"))
        fk.run("init", "--no-passphrase", "--test-seed", SEED)
        fk.run("device", "add", DEV)
        fk.run("device", "add", OTHER)
        k_dev = bytes.fromhex(fk.run("device", "key", DEV))
        k_other = bytes.fromhex(fk.run("device", "key", OTHER))
        k_purpose = bytes.fromhex(fk.run("device", "key", DEV, "--purpose", "enc"))
        for u in ("alice", "bob"):
            fk.run("user", "add", u)
        fk.run("user", "grant", "alice", "--device", DEV, "--role", "owner")
        fk.run("user", "grant", "bob", "--device", DEV, "--role", "guest")
        fk.run("user", "grant", "alice", "--device", OTHER, "--role", "owner")  # for "other_device"
        k_alice1 = base64.b64decode(json.loads(fk.run("--json", "user", "key", "alice", "--device", DEV,
                                                      "--format", "base64"))["key"])
        pair = json.loads(fk.run("--json", "pair", DEV))
        matter = json.loads(fk.run("--json", "pair", DEV, "--scheme", "matter", "--vendor-id", "65521",
                                   "--product-id", "32768"))
        k_tok = bytes.fromhex(fk.run("token", "key", "--aud", DEV))

        now = T0 + 60
        tok = {
            "alice_e1": fk.mint("alice", "owner", T0),
            "alice_e1_cwt64": fk.mint("alice", "owner", T0, fmt="cwt64"),
            "bob_guest": fk.mint("bob", "guest", T0),
            "bob_revoked": fk.mint("bob", "guest", T0, ttl="2h"),
            "service": fk.mint("svc", "service", T0),
            "service_30d": fk.mint("svc", "service", T0, ttl="30d"),
            "alice_future": fk.mint("alice", "owner", T0 + 7200),
            "alice_expired": fk.mint("alice", "owner", T0 - 7200),
            "other_device": fk.mint("alice", "owner", T0, aud=OTHER),
        }
        claims = {2: "alice", 3: OTHER, 4: T0 + 3600, 5: T0, 6: T0, 7: bytes(16), 9: "owner"}
        tok["crafted_wrong_aud"] = craft_token(k_tok, f"v1/{DEV}", claims)
        good = dict(claims)
        good[3] = DEV
        tok["crafted_short_tag"] = craft_token(k_tok, f"v1/{DEV}", good, tag_len=8)
        tok["crafted_bad_mac"] = craft_token(bytes(32), f"v1/{DEV}", good)
        nocti = dict(good)
        del nocti[7]
        tok["crafted_no_cti"] = craft_token(k_tok, f"v1/{DEV}", nocti)
        # exp as a non-shortest integer (1a where 1a is right, but 1b: 8 bytes): not deterministic
        raw = bytearray(cbor2.dumps(good, canonical=True))
        i = raw.index(bytes([0x04, 0x1a]))
        raw[i + 1:i + 6] = bytes([0x1b, 0, 0, 0, 0]) + raw[i + 2:i + 6]
        tok["crafted_long_int"] = craft_token(k_tok, f"v1/{DEV}", None, raw_claims=bytes(raw))
        tok["crafted_unknown_key"] = craft_token(k_tok, f"v2/{DEV}", good)

        def tid(t):
            return json.loads(fk.run("--json", "token", "inspect", t))["claims"]["cti"]

        fk.run("token", "revoke", tok["bob_revoked"], "--reason", "lost")
        revoked_a = [bytes.fromhex(tid(tok["bob_revoked"]))]

        steps = []  # (kind, name, data, now, lock reason, cli reason or None, scope)

        def token_step(name, when, lock_reason, scope=None, cli=True):
            cli_reason = fk.verify(tok[name], when) if cli else None
            steps.append(("t", name, tok[name], when, lock_reason, cli_reason, scope))

        def state_step(name, doc, when, reason, kind="s"):
            steps.append((kind, name, doc, when, reason, None, None))

        token_step("alice_e1", now, "stale")  # no state document yet: fail closed
        exp = T0 + 72 * 3600
        st_a = make_state(k_dev, DEV, DEV, 5, T0, exp, 0, {"alice": 1, "bob": 1}, revoked_a, [], 0)
        state_step("state_wrong_kid", make_state(k_other, OTHER, OTHER, 5, T0, exp, 0, {}, [], [], 0), now,
                   "unknown_key")
        bad = bytearray(st_a)
        bad[-1] ^= 1
        state_step("state_bad_mac", bytes(bad), now, "bad_mac")
        state_step("state_truncated", st_a[:-1], now, "malformed")
        state_step("state_wrong_aud", make_state(k_dev, DEV, DEV, 5, T0, exp, 0, {}, [], [], 0, aud=OTHER), now,
                   "wrong_audience")
        state_step("state_expired", make_state(k_dev, DEV, DEV, 5, T0 - 100, T0, 0, {}, [], [], 0), now, "expired")
        state_step("state_a", st_a, now, "ok")
        state_step("state_a_again", st_a, now, "replayed")
        state_step("state_a_restore", st_a, now, "ok", kind="r")
        state_step("state_older", make_state(k_dev, DEV, DEV, 4, T0 + 10, exp, 0, {}, [], [], 0), now, "replayed")
        st_a2 = make_state(k_dev, DEV, DEV, 5, T0 + 1, exp + 1, 0, {"alice": 1, "bob": 1}, revoked_a, [], 0)
        state_step("state_a_reissued", st_a2, now, "ok")
        state_step("state_a_restore_old", st_a, now, "replayed", kind="r")
        for name, reason in [("alice_e1", "ok"), ("alice_e1_cwt64", "ok"), ("bob_guest", "ok"),
                             ("bob_revoked", "revoked"), ("service", "ok"), ("alice_future", "not_yet_valid"),
                             ("alice_expired", "expired"), ("other_device", "unknown_key"),
                             ("crafted_wrong_aud", "wrong_audience"), ("crafted_short_tag", "bad_mac"),
                             ("crafted_bad_mac", "bad_mac"), ("crafted_no_cti", "malformed"),
                             ("crafted_long_int", "malformed"), ("crafted_unknown_key", "unknown_key")]:
            token_step(name, now, reason)
        token_step("bob_guest", now, "forbidden", scope="owner")
        token_step("alice_e1", now, "ok", scope="owner")
        token_step("service_30d", exp + 1, "stale", cli=False)

        # Stage B: alice loses her phone; her grant is renewed at epoch 2.
        fk.run("user", "revoke", "alice", "--device", DEV, "--reason", "phone lost")
        fk.run("user", "grant", "alice", "--device", DEV, "--role", "owner")
        k_alice2 = base64.b64decode(json.loads(fk.run("--json", "user", "key", "alice", "--device", DEV,
                                                      "--format", "base64"))["key"])
        tok["alice_e2"] = fk.mint("alice", "owner", T0 + 120)
        st_b = make_state(k_dev, DEV, DEV, 6, T0 + 120, T0 + 120 + 72 * 3600, 0, {"alice": 2, "bob": 1}, revoked_a,
                          [], 0)
        state_step("state_b", st_b, T0 + 180, "ok")
        token_step("alice_e1", T0 + 180, "revoked")
        token_step("alice_e2", T0 + 180, "ok")

        # The handshake and the channel, with alice's epoch 2 token, fixed nonces.
        n_lock, n_phone = bytes(range(16)), bytes(range(16, 32))
        token_bytes = unb64url(tok["alice_e2"])
        m2, m3, p2l, l2p = handshake(k_alice2, DEV, n_lock, n_phone, token_bytes)
        frames = [frame(p2l, 0, b"open"), frame(l2p, 0, b"opened"), frame(p2l, 1, b"status")]

        # Stage C: the device is revoked.
        fk.run("device", "revoke", DEV, "--reason", "stolen")
        st_c = make_state(k_dev, DEV, DEV, 7, T0 + 240, T0 + 240 + 72 * 3600, 1, {"alice": 2, "bob": 1}, revoked_a,
                          [], 0)
        state_step("state_c", st_c, T0 + 300, "ok")
        token_step("alice_e2", T0 + 300, "revoked")

    # token verify and the lock agree on every token, except: no state document yet (stale), a role the
    # lock requires (forbidden), and another device's token, which the registry can check for that
    # device (wrong_audience) but the lock has no key for (unknown_key, fleetkey-tokens(5) step 4).
    for s in steps:
        if s[5] is not None and s[5] != s[4] and s[1] != "other_device" and s[4] not in ("stale", "forbidden"):
            sys.exit(f"gen_vectors: {s[1]}: token verify says {s[5]}, the lock rules {s[4]}")

    out = ["/* Generated by device/tests/gen_vectors.py from the fleetkey CLI: do not edit. */",
           "#include <stddef.h>", "#include <stdint.h>", ""]
    out.append(f"#define V_DEVICE_ID {c_str(DEV)}")
    out.append(f"#define V_T0 {T0}u")
    out.append(c_bytes("v_k_dev", k_dev))
    out.append(c_bytes("v_k_purpose_enc", k_purpose))
    out.append(c_bytes("v_k_user_alice_1", k_alice1))
    out.append(c_bytes("v_k_user_alice_2", k_alice2))
    out.append(f"#define V_PIN_CODE {c_str(pair['pin'])}")
    out.append(f"#define V_PIN_DIGITS {pair['pin_digits']}")
    out.append(f"#define V_MATTER_PASSCODE {matter['passcode']}u")
    out.append(f"#define V_MATTER_DISCRIMINATOR {matter['discriminator']}u")
    for i, s in enumerate(steps):
        if s[0] != "t":
            out.append(c_bytes(f"v_doc_{i}", s[2]))
    out.append("typedef struct { char kind; const char* name; const uint8_t* doc; size_t doc_len; const char* token;")
    out.append("  uint64_t now; int expect; int cli; const char* scope; } v_step;")
    out.append("static const v_step v_steps[] = {")
    for i, s in enumerate(steps):
        cli = REASONS.index(s[5]) if s[5] is not None else -1
        scope = c_str(s[6]) if s[6] else "NULL"
        if s[0] == "t":
            out.append(f"  {{'t', {c_str(s[1])}, NULL, 0, {c_str(s[2])}, {s[3]}u, {REASONS.index(s[4])}, {cli}, "
                       f"{scope}}},")
        else:
            out.append(f"  {{'{s[0]}', {c_str(s[1])}, v_doc_{i}, sizeof v_doc_{i}, NULL, {s[3]}u, "
                       f"{REASONS.index(s[4])}, {cli}, NULL}},")
    out.append("};")
    out.append(c_bytes("v_hs_n_lock", n_lock))
    out.append(c_bytes("v_hs_n_phone", n_phone))
    out.append(f"static const char v_hs_token[] = {c_str(tok['alice_e2'])};")
    out.append(f"#define V_HS_NOW {T0 + 180}u")
    out.append(c_bytes("v_hs_m2", m2))
    out.append(c_bytes("v_hs_m3", m3))
    out.append(c_bytes("v_hs_p2l", p2l))
    out.append(c_bytes("v_hs_l2p", l2p))
    for i, f in enumerate(frames):
        out.append(c_bytes(f"v_frame_{i}", f))
    cases = aead_cases()
    for i, (key, nonce, aad, pt, ct) in enumerate(cases):
        out.append(c_bytes(f"v_aead_{i}_key", key) + c_bytes(f"v_aead_{i}_nonce", nonce) +
                   c_bytes(f"v_aead_{i}_aad", aad) + c_bytes(f"v_aead_{i}_pt", pt) + c_bytes(f"v_aead_{i}_ct", ct))
    out.append("typedef struct { const uint8_t *key, *nonce, *aad, *pt, *ct; size_t aad_len, pt_len; } v_aead;")
    out.append("static const v_aead v_aead_cases[] = {")
    for i in range(len(cases)):
        out.append(f"  {{v_aead_{i}_key, v_aead_{i}_nonce, v_aead_{i}_aad, v_aead_{i}_pt, v_aead_{i}_ct, "
                   f"{len(cases[i][2])}, {len(cases[i][3])}}},")
    out.append("};")
    text = "\n".join(out) + "\n"
    tmp = out_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, out_path)


if __name__ == "__main__":
    main()
