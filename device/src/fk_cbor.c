/* A strict, bounded reader of the deterministic CBOR fleetkey emits, and the COSE_Mac0 shell. */
#include "fk_internal.h"

fk_status fk_cbor_head(fk_cbor* r, unsigned* major, uint64_t* arg)
{
  unsigned ai, n, i;
  uint64_t v = 0;
  if (r->p >= r->end) {
    return FK_MALFORMED;
  }
  *major = (unsigned)(*r->p >> 5);
  ai = *r->p & 31u;
  r->p++;
  if (*major == 7) {
    return FK_MALFORMED; /* no float or simple value appears in the profile */
  }
  if (ai < 24) {
    *arg = ai;
    return FK_OK;
  }
  if (ai > 27) {
    return FK_MALFORMED; /* reserved, or indefinite length */
  }
  n = 1u << (ai - 24);
  if ((size_t)(r->end - r->p) < n) {
    return FK_MALFORMED;
  }
  for (i = 0; i < n; i++) {
    v = (v << 8) | *r->p++;
  }
  /* shortest form: the value must not fit the next smaller head */
  if ((n == 1 && v < 24) || (n == 2 && v <= 0xff) || (n == 4 && v <= 0xffff) || (n == 8 && v <= 0xffffffffu)) {
    return FK_MALFORMED;
  }
  *arg = v;
  return FK_OK;
}

fk_status fk_cbor_expect(fk_cbor* r, unsigned major, uint64_t* arg)
{
  unsigned m;
  fk_status st = fk_cbor_head(r, &m, arg);
  if (st != FK_OK) {
    return st;
  }
  return m == major ? FK_OK : FK_MALFORMED;
}

fk_status fk_cbor_uint(fk_cbor* r, uint64_t* v)
{
  return fk_cbor_expect(r, FK_CBOR_UINT, v);
}

fk_status fk_cbor_int(fk_cbor* r, int64_t* v)
{
  unsigned m;
  uint64_t a;
  fk_status st = fk_cbor_head(r, &m, &a);
  if (st != FK_OK) {
    return st;
  }
  if ((m != FK_CBOR_UINT && m != FK_CBOR_NINT) || a > (uint64_t)INT64_MAX) {
    return FK_MALFORMED; /* outside int64: no time fleetkey accepts is there */
  }
  *v = m == FK_CBOR_UINT ? (int64_t)a : -1 - (int64_t)a;
  return FK_OK;
}

fk_status fk_cbor_str(fk_cbor* r, unsigned major, fk_str* s)
{
  uint64_t n;
  fk_status st = fk_cbor_expect(r, major, &n);
  if (st != FK_OK) {
    return st;
  }
  if (n > (uint64_t)(r->end - r->p)) {
    return FK_MALFORMED;
  }
  s->p = r->p;
  s->len = (size_t)n;
  r->p += (size_t)n;
  if (major == FK_CBOR_TSTR && !fk_utf8_valid(s->p, s->len)) {
    return FK_MALFORMED;
  }
  return FK_OK;
}

int fk_utf8_valid(const uint8_t* p, size_t n)
{
  size_t i = 0;
  while (i < n) {
    uint8_t c = p[i];
    size_t k, len;
    uint32_t cp;
    if (c < 0x80) {
      i++;
      continue;
    }
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
      cp = c & 0x1fu;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      cp = c & 0x0fu;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      cp = c & 0x07u;
    } else {
      return 0;
    }
    if (n - i < len) {
      return 0;
    }
    for (k = 1; k < len; k++) {
      if ((p[i + k] & 0xc0) != 0x80) {
        return 0;
      }
      cp = (cp << 6) | (p[i + k] & 0x3fu);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff))) {
      return 0;
    }
    i += len;
  }
  return 1;
}

int fk_str_eq(fk_str a, const char* b, size_t b_len)
{
  return fk_bytes_cmp(a.p, a.len, (const uint8_t*)b, b_len) == 0;
}

int fk_bytes_cmp(const uint8_t* a, size_t an, const uint8_t* b, size_t bn)
{
  size_t i, n = an < bn ? an : bn;
  for (i = 0; i < n; i++) {
    if (a[i] != b[i]) {
      return a[i] < b[i] ? -1 : 1;
    }
  }
  return an < bn ? -1 : an > bn ? 1 : 0;
}

fk_status fk_cose_mac0(const uint8_t* buf, size_t len, int allow_cwt_tag, uint8_t* alg, fk_str* prot, fk_str* kid,
                       fk_str* payload, fk_str* tag)
{
  fk_cbor r, h;
  unsigned m;
  uint64_t v;
  r.p = buf;
  r.end = buf + len;
  if (fk_cbor_head(&r, &m, &v) != FK_OK || m != FK_CBOR_TAG) {
    return FK_MALFORMED;
  }
  if (v == 61 && allow_cwt_tag && (fk_cbor_head(&r, &m, &v) != FK_OK || m != FK_CBOR_TAG)) {
    return FK_MALFORMED;
  }
  if (v != 17 || fk_cbor_expect(&r, FK_CBOR_ARRAY, &v) != FK_OK || v != 4
      || fk_cbor_str(&r, FK_CBOR_BSTR, prot) != FK_OK) {
    return FK_MALFORMED;
  }
  /* The protected header is exactly {1: alg, 4: bstr(kid)}, as fleetkey writes it: a2 01 alg 04 ... */
  h.p = prot->p + 4;
  h.end = prot->p + prot->len;
  if (prot->len < 5 || prot->p[0] != 0xa2 || prot->p[1] != 0x01 || (prot->p[2] != 4 && prot->p[2] != 5)
      || prot->p[3] != 0x04 || fk_cbor_str(&h, FK_CBOR_BSTR, kid) != FK_OK || h.p != h.end
      || !fk_utf8_valid(kid->p, kid->len)) {
    return FK_MALFORMED;
  }
  *alg = prot->p[2];
  if (fk_cbor_expect(&r, FK_CBOR_MAP, &v) != FK_OK || v != 0 || fk_cbor_str(&r, FK_CBOR_BSTR, payload) != FK_OK
      || fk_cbor_str(&r, FK_CBOR_BSTR, tag) != FK_OK || r.p != r.end) {
    return FK_MALFORMED;
  }
  return FK_OK;
}

static void bstr_head(fk_hmac* c, size_t n)
{
  uint8_t h[3];
  size_t k;
  if (n < 24) {
    h[0] = (uint8_t)(0x40 | n);
    k = 1;
  } else if (n < 256) {
    h[0] = 0x58;
    h[1] = (uint8_t)n;
    k = 2;
  } else {
    h[0] = 0x59; /* bodies are under 64 KiB: fk_cose_mac0's callers bound them */
    h[1] = (uint8_t)(n >> 8);
    h[2] = (uint8_t)n;
    k = 3;
  }
  fk_hmac_update(c, h, k);
}

void fk_cose_mac(const uint8_t key[32], fk_str prot, fk_str payload, uint8_t out[32])
{
  static const uint8_t mac0[] = {0x84, 0x64, 'M', 'A', 'C', '0'};
  static const uint8_t empty = 0x40;
  fk_hmac c;
  fk_hmac_init(&c, key, 32);
  fk_hmac_update(&c, mac0, sizeof mac0);
  bstr_head(&c, prot.len);
  fk_hmac_update(&c, prot.p, prot.len);
  fk_hmac_update(&c, &empty, 1);
  bstr_head(&c, payload.len);
  fk_hmac_update(&c, payload.p, payload.len);
  fk_hmac_final(&c, out);
}

fk_status fk_kid_parse(fk_str kid, uint32_t* version, fk_str* device)
{
  size_t i = 1;
  uint64_t v = 0;
  if (kid.len < 4 || kid.p[0] != 'v' || kid.p[1] == '0') {
    return FK_UNKNOWN_KEY;
  }
  while (i < kid.len && kid.p[i] >= '0' && kid.p[i] <= '9' && i <= 10) {
    v = v * 10 + (uint64_t)(kid.p[i] - '0');
    i++;
  }
  if (i == 1 || i >= kid.len || kid.p[i] != '/' || v > 0xffffffffu || kid.len - i - 1 > 128 || kid.len - i - 1 == 0) {
    return FK_UNKNOWN_KEY;
  }
  *version = (uint32_t)v;
  device->p = kid.p + i + 1;
  device->len = kid.len - i - 1;
  return FK_OK;
}
