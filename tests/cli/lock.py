"""An independent lock, written from fleetkey-state(5) (LOCK RULES) and fleetkey-tokens(5)
(VERIFICATION steps 1 to 8) on Python's hmac and cbor2 alone: it holds only its id, its master
version and K_dev(D), and applies the lock's rules to state documents and CWT tokens.

Reasons are the names of fleetkey-state(5): ok, malformed, bad_mac, expired, not_yet_valid, revoked,
unknown_key, wrong_audience, stale, replayed."""
import base64
import hashlib
import hmac

import cbor2

from reference import device_prk, hkdf_expand, info

ALG_KEY_LABEL = {5: "cose-hmac256/256", 4: "cose-hmac256/64"}
ALG_TAG_LEN = {5: 32, 4: 8}


def b64url_decode(text):
    """base64url without padding, strictly: no '=', no whitespace, unused bits zero."""
    if not text or any(c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" for c in text):
        raise ValueError("not base64url")
    if len(text) % 4 == 1:
        raise ValueError("bad length")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != text:
        raise ValueError("unused bits set")
    return raw


def strict_loads(data):
    """cbor2 decoding that accepts only deterministic CBOR: the item, encoded again canonically,
    must be the same bytes (cbor2's canonical order and RFC 8949's agree for the keys used here:
    small integers, and byte strings of one length)."""
    item = cbor2.loads(data)
    if cbor2.dumps(item, canonical=True) != data:
        raise ValueError("not deterministic CBOR, or trailing bytes")
    return item


def is_uint(x):
    return type(x) is int and x >= 0


def decode_mac0(data):
    """COSE_Mac0 -> (protected bytes, protected map, payload bytes, tag); raises ValueError."""
    item = strict_loads(data)
    if isinstance(item, cbor2.CBORTag) and item.tag == 61:
        item = item.value
    if not (isinstance(item, cbor2.CBORTag) and item.tag == 17):
        raise ValueError("not COSE_Mac0")
    body = item.value
    if not (isinstance(body, list) and len(body) == 4):
        raise ValueError("not an array of 4")
    protected, unprotected, payload, tag = body
    if not (isinstance(protected, bytes) and isinstance(unprotected, dict) and isinstance(payload, bytes)
            and isinstance(tag, bytes)):
        raise ValueError("wrong item types")
    header = strict_loads(protected)
    if not isinstance(header, dict) or header.get(1) not in (4, 5) or not isinstance(header.get(4), bytes):
        raise ValueError("bad protected header")
    if 2 in header or 1 in unprotected or 4 in unprotected:
        raise ValueError("bad headers")
    return protected, header, payload, tag


def mac_structure(protected, payload):
    return cbor2.dumps(["MAC0", protected, b"", payload])


class Lock:
    """One lock. Persistent state: seq, iat (of the accepted document), hwm and the document's parts."""

    def __init__(self, device, version, k_dev, grace=0):
        self.device = device
        self.version = version
        self.kid = ("v%d/%s" % (version, device)).encode()
        self.prk = device_prk(k_dev)
        self.k_rev = hkdf_expand(self.prk, info("revocations"))
        self.k_tok = {alg: hkdf_expand(self.prk, info("token", label)) for alg, label in ALG_KEY_LABEL.items()}
        self.grace = grace
        self.state = None  # the accepted payload map
        self.seq = 0
        self.iat = 0
        self.hwm = 0

    def uid(self, user):
        return hkdf_expand(self.prk, info("state-user", user), 8)

    def now_eff(self, clock):
        return max(clock, self.hwm)

    # fleetkey-state(5), LOCK RULES, "Applying a state document".
    def apply_state(self, doc, clock):
        try:
            protected, header, payload_bytes, tag = decode_mac0(doc)
            if header[1] != 5 or len(tag) != 32:
                raise ValueError("state documents are HMAC 256/256")
            p = strict_loads(payload_bytes)
            if not isinstance(p, dict) or sorted(p) != list(range(10)):
                raise ValueError("payload members")
            if p[0] != 1 or not isinstance(p[1], str):
                raise ValueError("version or device")
            if not all(is_uint(p[k]) for k in (2, 3, 4, 5, 9)) or p[2] < 1 or p[5] not in (0, 1) or p[4] <= p[3]:
                raise ValueError("integers")
            if not isinstance(p[6], dict) or not all(isinstance(k, bytes) and len(k) == 8 and is_uint(v)
                                                      for k, v in p[6].items()):
                raise ValueError("epochs")
            if not isinstance(p[7], list) or not all(isinstance(x, bytes) for x in p[7]) \
                    or p[7] != sorted(set(p[7])):
                raise ValueError("revoked")
            if not isinstance(p[8], list) or not all(is_uint(x) for x in p[8]) or p[8] != sorted(set(p[8])):
                raise ValueError("retired")
        except (ValueError, cbor2.CBORDecodeError, KeyError, TypeError):
            return "malformed"
        if header[4] != self.kid:
            return "unknown_key"
        expected = hmac.new(self.k_rev, mac_structure(protected, payload_bytes), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, tag):
            return "bad_mac"
        if p[1] != self.device:
            return "wrong_audience"
        if not self.now_eff(clock) < p[4]:
            return "expired"
        if not (p[2] > self.seq or (p[2] == self.seq and p[3] > self.iat)):
            return "replayed"
        self.state, self.seq, self.iat = p, p[2], p[3]
        self.hwm = max(self.hwm, p[3])
        return "ok"

    # fleetkey-tokens(5) VERIFICATION steps 1 to 8, then fleetkey-state(5) LOCK RULES, "Checking a token".
    def check_token(self, text, clock):
        now = self.now_eff(clock)
        try:
            protected, header, payload, tag = decode_mac0(b64url_decode(text))
            c = strict_loads(payload)
            if not isinstance(c, dict):
                raise ValueError("claims")
        except (ValueError, cbor2.CBORDecodeError):
            return "malformed"
        if not isinstance(c.get(7), bytes):
            return "malformed"  # no cti
        if 4 not in c and "epoch" not in c:
            return "malformed"  # no exp
        if header[4] != self.kid:
            return "unknown_key"
        alg = header[1]
        expected = hmac.new(self.k_tok[alg], mac_structure(protected, payload), hashlib.sha256).digest()
        if len(tag) != ALG_TAG_LEN[alg] or not hmac.compare_digest(expected[:ALG_TAG_LEN[alg]], tag):
            return "bad_mac"
        if 4 in c and now >= c[4]:
            return "expired"
        if 5 in c and now < c[5]:
            return "not_yet_valid"
        if c.get(3) != self.device:
            return "wrong_audience"
        s = self.state
        if s is None or now >= s[4] + self.grace:
            return "stale"
        if s[5] == 1:
            return "revoked"
        if self.version in s[8]:
            return "unknown_key"
        if c[7] in s[7]:
            return "revoked"
        sub = c.get(2)
        min_epoch = s[6].get(self.uid(sub)) if isinstance(sub, str) else None
        if min_epoch is not None:
            if not is_uint(c.get("epoch")) or c["epoch"] < min_epoch:
                return "revoked"
        elif "epoch" in c:
            return "revoked"
        if 6 in c:
            self.hwm = max(self.hwm, c[6])
        return "ok"
