/* Strict decoding of the state document (fleetkey-state(5)): a COSE_Mac0 over a fixed map. */
#include "fk_internal.h"

/* Walks an array of bstr (kind BSTR) or uint (kind UINT), or a map of bstr(8) -> uint (MAP), each
 * key strictly above the one before: sorted, without duplicates. */
static fk_status sorted_items(fk_cbor* r, unsigned kind, fk_str* items, size_t* count)
{
  uint64_t n, v, prev_v = 0;
  fk_str s, prev = {NULL, 0};
  size_t i;
  if (fk_cbor_expect(r, kind == FK_CBOR_MAP ? FK_CBOR_MAP : FK_CBOR_ARRAY, &n) != FK_OK
      || n > (uint64_t)(r->end - r->p)) {
    return FK_MALFORMED;
  }
  items->p = r->p;
  for (i = 0; i < (size_t)n; i++) {
    if (kind == FK_CBOR_UINT) {
      if (fk_cbor_uint(r, &v) != FK_OK || (i > 0 && v <= prev_v)) {
        return FK_MALFORMED;
      }
      prev_v = v;
      continue;
    }
    if (fk_cbor_str(r, FK_CBOR_BSTR, &s) != FK_OK || (i > 0 && fk_bytes_cmp(prev.p, prev.len, s.p, s.len) >= 0)) {
      return FK_MALFORMED;
    }
    if (kind == FK_CBOR_MAP ? (s.len != 8 || fk_cbor_uint(r, &v) != FK_OK) : (s.len < 1 || s.len > 64)) {
      return FK_MALFORMED;
    }
    prev = s;
  }
  items->len = (size_t)(r->p - items->p);
  *count = (size_t)n;
  return FK_OK;
}

fk_status fk_state_decode(const uint8_t* buf, size_t len, fk_state_doc* s)
{
  fk_cbor r;
  uint64_t n, key, v[10];
  uint8_t alg;
  memset(s, 0, sizeof *s);
  if (len > 0xffff || fk_cose_mac0(buf, len, 0, &alg, &s->protected_hdr, &s->kid, &s->payload, &s->tag) != FK_OK
      || alg != 5) {
    return FK_MALFORMED;
  }
  r.p = s->payload.p;
  r.end = s->payload.p + s->payload.len;
  if (fk_cbor_expect(&r, FK_CBOR_MAP, &n) != FK_OK || n != 10) {
    return FK_MALFORMED;
  }
  for (key = 0; key < 10; key++) { /* every member present, in key order */
    fk_status st;
    if (fk_cbor_uint(&r, &n) != FK_OK || n != key) {
      return FK_MALFORMED;
    }
    if (key == 1) {
      st = fk_cbor_str(&r, FK_CBOR_TSTR, &s->aud);
    } else if (key == 6) {
      st = sorted_items(&r, FK_CBOR_MAP, &s->epochs, &s->n_epochs);
    } else if (key == 7) {
      st = sorted_items(&r, FK_CBOR_BSTR, &s->revoked, &s->n_revoked);
    } else if (key == 8) {
      st = sorted_items(&r, FK_CBOR_UINT, &s->retired, &s->n_retired);
    } else {
      st = fk_cbor_uint(&r, &v[key]);
    }
    if (st != FK_OK) {
      return FK_MALFORMED;
    }
  }
  s->seq = v[2];
  s->iat = v[3];
  s->exp = v[4];
  s->status = v[5];
  s->pairing = v[9];
  /* version 1, seq >= 1, exp > iat, status 0 or 1, nothing after the map */
  return v[0] == 1 && v[2] >= 1 && v[4] > v[3] && v[5] <= 1 && r.p == r.end ? FK_OK : FK_MALFORMED;
}
