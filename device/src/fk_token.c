/* Strict decoding of cwt and cwt64 tokens (fleetkey-tokens(5) DECODING) and of base64url text. */
#include "fk_internal.h"

static int registered_name(fk_str k)
{
  static const char* const names[] = {"iss", "sub", "aud", "exp", "nbf", "iat", "cti", "jti", "scope"};
  size_t i;
  for (i = 0; i < sizeof names / sizeof names[0]; i++) {
    const char* n = names[i];
    if (fk_str_eq(k, n, n[3] ? 5 : 3)) {
      return 1;
    }
  }
  return 0;
}

static fk_status decode_claims(fk_str claims, fk_token* t)
{
  fk_cbor r;
  uint64_t n, v;
  const uint8_t* prev = NULL;
  size_t prev_len = 0;
  int has_cti = 0;
  r.p = claims.p;
  r.end = claims.p + claims.len;
  if (fk_cbor_expect(&r, FK_CBOR_MAP, &n) != FK_OK) {
    return FK_MALFORMED;
  }
  while (n--) {
    const uint8_t* key_start = r.p;
    unsigned m;
    fk_status st = FK_OK;
    fk_str s;
    if (fk_cbor_head(&r, &m, &v) != FK_OK) {
      return FK_MALFORMED;
    }
    if (m == FK_CBOR_TSTR) {
      r.p = key_start;
      if (fk_cbor_str(&r, FK_CBOR_TSTR, &s) != FK_OK) {
        return FK_MALFORMED;
      }
    } else if (m != FK_CBOR_UINT) {
      return FK_MALFORMED;
    }
    /* deterministic order, which also rules out duplicate keys */
    if (prev != NULL && fk_bytes_cmp(prev, prev_len, key_start, (size_t)(r.p - key_start)) >= 0) {
      return FK_MALFORMED;
    }
    prev = key_start;
    prev_len = (size_t)(r.p - key_start);
    if (m == FK_CBOR_TSTR) {
      if (fk_str_eq(s, "epoch", 5)) {
        st = fk_cbor_uint(&r, &t->epoch);
        t->has_epoch = 1;
      } else if (registered_name(s)) {
        return FK_MALFORMED;
      } else {
        st = fk_cbor_str(&r, FK_CBOR_TSTR, &s); /* an extra claim: text, not interpreted */
      }
    } else if (v == 1) {
      st = fk_cbor_str(&r, FK_CBOR_TSTR, &t->iss);
    } else if (v == 2) {
      st = fk_cbor_str(&r, FK_CBOR_TSTR, &t->sub);
    } else if (v == 3) {
      st = fk_cbor_str(&r, FK_CBOR_TSTR, &t->aud);
    } else if (v == 4) {
      st = fk_cbor_int(&r, &t->exp);
      t->has_exp = 1;
    } else if (v == 5) {
      st = fk_cbor_int(&r, &t->nbf);
      t->has_nbf = 1;
    } else if (v == 6) {
      st = fk_cbor_int(&r, &t->iat);
      t->has_iat = 1;
    } else if (v == 7) {
      st = fk_cbor_str(&r, FK_CBOR_BSTR, &t->cti);
      if (t->cti.len < 1 || t->cti.len > 64) {
        return FK_MALFORMED;
      }
      has_cti = 1;
    } else if (v == 9) {
      st = fk_cbor_str(&r, FK_CBOR_TSTR, &t->scope);
    } else {
      return FK_MALFORMED;
    }
    if (st != FK_OK) {
      return FK_MALFORMED;
    }
  }
  if (r.p != r.end || !has_cti || (!t->has_exp && !t->has_epoch)) {
    return FK_MALFORMED; /* trailing bytes; steps 2 and 3: no cti, neither exp nor epoch */
  }
  return FK_OK;
}

fk_status fk_token_decode(const uint8_t* buf, size_t len, fk_token* t)
{
  memset(t, 0, sizeof *t);
  if (len == 0 || len > 6144) {
    return FK_MALFORMED; /* 8192 base64url characters */
  }
  if (fk_cose_mac0(buf, len, 1, &t->alg, &t->protected_hdr, &t->kid, &t->claims, &t->tag) != FK_OK) {
    return FK_MALFORMED;
  }
  return decode_claims(t->claims, t);
}

static int b64_value(char c)
{
  if (c >= 'A' && c <= 'Z') {
    return c - 'A';
  }
  if (c >= 'a' && c <= 'z') {
    return c - 'a' + 26;
  }
  if (c >= '0' && c <= '9') {
    return c - '0' + 52;
  }
  return c == '-' ? 62 : c == '_' ? 63 : -1;
}

fk_status fk_base64url_decode(const char* in, size_t in_len, uint8_t* out, size_t* out_len)
{
  uint32_t acc = 0;
  unsigned bits = 0;
  size_t i, n = 0;
  if (in_len == 0 || in_len > 8192 || in_len % 4 == 1) {
    return FK_MALFORMED;
  }
  if (*out_len < in_len / 4 * 3 + (in_len % 4 ? in_len % 4 - 1 : 0)) {
    return FK_INVALID_ARGUMENT;
  }
  for (i = 0; i < in_len; i++) {
    int v = b64_value(in[i]);
    if (v < 0) {
      return FK_MALFORMED;
    }
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (uint8_t)(acc >> bits);
    }
  }
  if (acc & ((1u << bits) - 1)) {
    return FK_MALFORMED; /* unused bits of the last character must be zero */
  }
  *out_len = n;
  return FK_OK;
}
