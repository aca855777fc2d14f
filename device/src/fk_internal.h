/* Internal helpers of the device library: byte order, the HKDF-Expand stream, the CBOR reader. */
#ifndef FK_INTERNAL_H
#define FK_INTERNAL_H

#include "fleetkey_device.h"

#include <string.h>

static inline uint32_t fk_load32_be(const uint8_t* p)
{
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}
static inline uint32_t fk_load32_le(const uint8_t* p)
{
  return ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | (uint32_t)p[0];
}
static inline uint64_t fk_load64_be(const uint8_t* p)
{
  return ((uint64_t)fk_load32_be(p) << 32) | fk_load32_be(p + 4);
}
static inline void fk_store32_be(uint8_t* p, uint32_t v)
{
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}
static inline void fk_store32_le(uint8_t* p, uint32_t v)
{
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}
static inline void fk_store64_be(uint8_t* p, uint64_t v)
{
  fk_store32_be(p, (uint32_t)(v >> 32));
  fk_store32_be(p + 4, (uint32_t)v);
}

/* Keeps a function's locals off its caller's stack frame (the deepest path is budgeted). */
#if defined(__GNUC__) || defined(__clang__)
#define FK_NOINLINE __attribute__((noinline))
#else
#define FK_NOINLINE
#endif

/* HKDF-Expand one block at a time, with the info fed by the caller between begin and end:
 * T(i) = HMAC(PRK, T(i-1) || info || i), so a long stream needs no buffer. */
typedef struct fk_expander
{
  const uint8_t* prk;
  uint8_t t[32];
  uint8_t i;
} fk_expander;
void fk_expander_init(fk_expander* e, const uint8_t prk[32]);
void fk_expander_begin(fk_expander* e, fk_hmac* c);
void fk_expander_end(fk_expander* e, fk_hmac* c);

/* The one-block HKDF-Expand of a device key: HKDF-Expand(PRK_dev, info(label, x), 32), where x
 * is a text field (x != NULL) and/or a u64 field (has_n). */
void fk_derive(const uint8_t prk[32], const char* label, size_t label_len, const uint8_t* x, size_t x_len, int has_n,
               uint64_t n, uint8_t out[32]);

/* HKDF-Expand(PRK_s, info("session", direction, MAC_P), 32): a session key (fleetkey-device(7)). */
void fk_derive_session(const uint8_t prk[32], const char* direction, const uint8_t mac_p[32], uint8_t out[32]);
/* A string literal and its length, for fk_derive's label. */
#define FK_LIT(s) s, (sizeof(s) - 1)

/* A strict reader of deterministic CBOR (RFC 8949 4.2.1), over one buffer. */
typedef struct fk_cbor
{
  const uint8_t* p;
  const uint8_t* end;
} fk_cbor;

enum {
  FK_CBOR_UINT = 0,
  FK_CBOR_NINT = 1,
  FK_CBOR_BSTR = 2,
  FK_CBOR_TSTR = 3,
  FK_CBOR_ARRAY = 4,
  FK_CBOR_MAP = 5,
  FK_CBOR_TAG = 6
};

/* Reads one head: its major type and argument, in shortest form. FK_MALFORMED otherwise. */
fk_status fk_cbor_head(fk_cbor* r, unsigned* major, uint64_t* arg);
/* A head of the given major type. */
fk_status fk_cbor_expect(fk_cbor* r, unsigned major, uint64_t* arg);
fk_status fk_cbor_uint(fk_cbor* r, uint64_t* v);
fk_status fk_cbor_int(fk_cbor* r, int64_t* v);
/* A byte string (or, for TSTR, a valid UTF-8 text string) pointing into the buffer. */
fk_status fk_cbor_str(fk_cbor* r, unsigned major, fk_str* s);
int fk_utf8_valid(const uint8_t* p, size_t n);
int fk_str_eq(fk_str a, const char* b, size_t b_len);
/* Bytewise order of two byte strings (shorter prefix first): <0, 0, >0. */
int fk_bytes_cmp(const uint8_t* a, size_t an, const uint8_t* b, size_t bn);

/* COSE_Mac0 shell shared by tokens and state documents: 17([bstr(a2 01 alg 04 bstr(kid)), {},
 * bstr(payload), bstr(tag)]) with nothing trailing. */
fk_status fk_cose_mac0(const uint8_t* buf, size_t len, int allow_cwt_tag, uint8_t* alg, fk_str* prot, fk_str* kid,
                       fk_str* payload, fk_str* tag);
/* HMAC-SHA256(key, ["MAC0", bstr(protected), h'', bstr(payload)]) */
void fk_cose_mac(const uint8_t key[32], fk_str prot, fk_str payload, uint8_t out[32]);
/* Parses "vN/D": version N and device D. FK_UNKNOWN_KEY when it is not of that form. */
fk_status fk_kid_parse(fk_str kid, uint32_t* version, fk_str* device);

/* fk_lock_check_token without its last step; fk_lock_accepted raises the hwm to the token's iat. */
fk_status fk_lock_check_token_only(fk_lock* l, const uint8_t* tok, size_t len, const char* const* scopes,
                                   size_t n_scopes, fk_token* t);
fk_status fk_lock_accepted(fk_lock* l, const fk_token* t);

#endif
