/* SHA-256 (FIPS 180-4), HMAC (RFC 2104), HKDF (RFC 5869), constant-time compare and wipe. */
#include "fk_internal.h"

#ifndef FK_SHA256_HOOK
static const uint32_t k_round[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t ror(uint32_t x, unsigned n)
{
  return (x >> n) | (x << (32 - n));
}

static void compress(uint32_t h[8], const uint8_t* p)
{
  uint32_t w[16], s[8];
  unsigned i;
  for (i = 0; i < 16; i++) {
    w[i] = fk_load32_be(p + 4 * i);
  }
  memcpy(s, h, sizeof s);
  for (i = 0; i < 64; i++) {
    uint32_t t1, t2;
    if (i >= 16) {
      uint32_t a = w[(i + 1) & 15], b = w[(i + 14) & 15];
      w[i & 15] += (ror(a, 7) ^ ror(a, 18) ^ (a >> 3)) + (ror(b, 17) ^ ror(b, 19) ^ (b >> 10)) + w[(i + 9) & 15];
    }
    t1 = s[7] + (ror(s[4], 6) ^ ror(s[4], 11) ^ ror(s[4], 25)) + ((s[4] & s[5]) ^ (~s[4] & s[6])) + k_round[i]
         + w[i & 15];
    t2 = (ror(s[0], 2) ^ ror(s[0], 13) ^ ror(s[0], 22)) + ((s[0] & s[1]) ^ (s[0] & s[2]) ^ (s[1] & s[2]));
    s[7] = s[6];
    s[6] = s[5];
    s[5] = s[4];
    s[4] = s[3] + t1;
    s[3] = s[2];
    s[2] = s[1];
    s[1] = s[0];
    s[0] = t1 + t2;
  }
  for (i = 0; i < 8; i++) {
    h[i] += s[i];
  }
  fk_wipe(w, sizeof w);
  fk_wipe(s, sizeof s);
}

void fk_sha256_init(fk_sha256* c)
{
  static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(c->h, iv, sizeof iv);
  c->bytes = 0;
}

void fk_sha256_update(fk_sha256* c, const uint8_t* p, size_t n)
{
  while (n > 0) {
    size_t used = (size_t)(c->bytes & 63), take = 64 - used;
    if (take > n) {
      take = n;
    }
    memcpy(c->buf + used, p, take);
    c->bytes += take;
    p += take;
    n -= take;
    if (used + take == 64) {
      compress(c->h, c->buf);
    }
  }
}

void fk_sha256_final(fk_sha256* c, uint8_t out[32])
{
  static const uint8_t pad = 0x80, zero = 0;
  uint8_t bits[8];
  unsigned i;
  fk_store64_be(bits, c->bytes * 8);
  fk_sha256_update(c, &pad, 1);
  while ((c->bytes & 63) != 56) {
    fk_sha256_update(c, &zero, 1);
  }
  fk_sha256_update(c, bits, 8);
  for (i = 0; i < 8; i++) {
    fk_store32_be(out + 4 * i, c->h[i]);
  }
  fk_wipe(c, sizeof *c);
}
#endif

static void xor_key(fk_hmac* c, uint8_t x)
{
  unsigned i;
  for (i = 0; i < 64; i++) {
    c->key[i] ^= x;
  }
}

/* One hash state at a time: the key block is kept instead of a second state (less stack). */
void fk_hmac_init(fk_hmac* c, const uint8_t* key, size_t key_len)
{
  memset(c->key, 0, sizeof c->key);
  if (key_len > 64) {
    fk_sha256_init(&c->sha);
    fk_sha256_update(&c->sha, key, key_len);
    fk_sha256_final(&c->sha, c->key);
  } else if (key_len > 0) {
    memcpy(c->key, key, key_len);
  }
  xor_key(c, 0x36);
  fk_sha256_init(&c->sha);
  fk_sha256_update(&c->sha, c->key, 64);
  xor_key(c, 0x36);
}

void fk_hmac_update(fk_hmac* c, const uint8_t* p, size_t n)
{
  fk_sha256_update(&c->sha, p, n);
}

void fk_hmac_final(fk_hmac* c, uint8_t out[32])
{
  fk_sha256_final(&c->sha, out); /* the inner hash, in out until the outer one replaces it */
  xor_key(c, 0x5c);
  fk_sha256_init(&c->sha);
  fk_sha256_update(&c->sha, c->key, 64);
  fk_sha256_update(&c->sha, out, 32);
  fk_sha256_final(&c->sha, out);
  fk_wipe(c, sizeof *c);
}

void fk_hmac_sha256(const uint8_t* key, size_t key_len, const uint8_t* p, size_t n, uint8_t out[32])
{
  fk_hmac c;
  fk_hmac_init(&c, key, key_len);
  fk_hmac_update(&c, p, n);
  fk_hmac_final(&c, out);
}

void fk_hmac_field(fk_hmac* c, const uint8_t* p, size_t n)
{
  uint8_t len[2];
  len[0] = (uint8_t)(n >> 8);
  len[1] = (uint8_t)n;
  fk_hmac_update(c, len, 2);
  fk_hmac_update(c, p, n);
}

void fk_hmac_field_u64(fk_hmac* c, uint64_t v)
{
  uint8_t b[8];
  fk_store64_be(b, v);
  fk_hmac_field(c, b, 8);
}

void fk_hkdf_extract(const uint8_t* salt, size_t salt_len, const uint8_t* ikm, size_t ikm_len, uint8_t prk[32])
{
  fk_hmac_sha256(salt, salt_len, ikm, ikm_len, prk);
}

fk_status fk_hkdf_expand(const uint8_t prk[32], const uint8_t* info, size_t info_len, uint8_t* out, size_t out_len)
{
  fk_expander e;
  if (out_len > 255 * 32) {
    return FK_INVALID_ARGUMENT;
  }
  fk_expander_init(&e, prk);
  while (out_len > 0) {
    size_t n = out_len < 32 ? out_len : 32;
    fk_hmac c;
    fk_expander_begin(&e, &c);
    fk_hmac_update(&c, info, info_len);
    fk_expander_end(&e, &c);
    memcpy(out, e.t, n);
    out += n;
    out_len -= n;
  }
  fk_wipe(&e, sizeof e);
  return FK_OK;
}

void fk_expander_init(fk_expander* e, const uint8_t prk[32])
{
  e->prk = prk;
  e->i = 0;
}

void fk_expander_begin(fk_expander* e, fk_hmac* c)
{
  fk_hmac_init(c, e->prk, 32);
  if (e->i > 0) {
    fk_hmac_update(c, e->t, 32);
  }
}

void fk_expander_end(fk_expander* e, fk_hmac* c)
{
  e->i++;
  fk_hmac_update(c, &e->i, 1);
  fk_hmac_final(c, e->t);
}

int fk_equal(const uint8_t* a, const uint8_t* b, size_t n)
{
  volatile uint8_t d = 0;
  size_t i;
  for (i = 0; i < n; i++) {
    d |= (uint8_t)(a[i] ^ b[i]);
  }
  return (int)(1u & (((unsigned)d - 1u) >> 8));
}

void fk_wipe(void* p, size_t n)
{
  volatile uint8_t* v = (volatile uint8_t*)p;
  while (n--) {
    *v++ = 0;
  }
}

const char* fk_status_name(fk_status s)
{
  static const char* const names[] = {"ok",        "malformed",        "bad_mac",        "expired", "not_yet_valid",
                                      "revoked",   "unknown_key",      "wrong_audience", "stale",   "replayed",
                                      "forbidden", "invalid_argument", "platform_error"};
  return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "invalid_argument";
}
