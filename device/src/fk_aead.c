/* ChaCha20-Poly1305 AEAD (RFC 8439): ChaCha20 on 32-bit words, Poly1305 on five 26-bit limbs
 * (poly1305-donna's 32-bit layout), so that a Cortex-M3 needs only 32x32->64 multiplies. */
#include "fk_internal.h"

static uint32_t rotl(uint32_t x, unsigned n)
{
  return (x << n) | (x >> (32 - n));
}

static void quarter_round(uint32_t* x, unsigned a, unsigned b, unsigned c, unsigned d)
{
  x[a] += x[b];
  x[d] = rotl(x[d] ^ x[a], 16);
  x[c] += x[d];
  x[b] = rotl(x[b] ^ x[c], 12);
  x[a] += x[b];
  x[d] = rotl(x[d] ^ x[a], 8);
  x[c] += x[d];
  x[b] = rotl(x[b] ^ x[c], 7);
}

static void chacha_block(const uint8_t key[32], uint32_t counter, const uint8_t nonce[12], uint8_t out[64])
{
  static const uint32_t sigma[4] = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574};
  uint32_t in[16], x[16];
  unsigned i;
  memcpy(in, sigma, sizeof sigma);
  for (i = 0; i < 8; i++) {
    in[4 + i] = fk_load32_le(key + 4 * i);
  }
  in[12] = counter;
  for (i = 0; i < 3; i++) {
    in[13 + i] = fk_load32_le(nonce + 4 * i);
  }
  memcpy(x, in, sizeof x);
  for (i = 0; i < 80; i++) { /* 10 double rounds: 4 column then 4 diagonal quarter rounds */
    unsigned k = i & 3, diag = (i >> 2) & 1;
    quarter_round(x, k, 4 + ((k + diag) & 3), 8 + ((k + 2 * diag) & 3), 12 + ((k + 3 * diag) & 3));
  }
  for (i = 0; i < 16; i++) {
    fk_store32_le(out + 4 * i, x[i] + in[i]);
  }
  fk_wipe(x, sizeof x);
  fk_wipe(in, sizeof in);
}

static void chacha_xor(const uint8_t key[32], const uint8_t nonce[12], const uint8_t* in, size_t len, uint8_t* out)
{
  uint8_t ks[64];
  uint32_t ctr = 1;
  while (len > 0) {
    size_t i, n = len < 64 ? len : 64;
    chacha_block(key, ctr++, nonce, ks);
    for (i = 0; i < n; i++) {
      out[i] = (uint8_t)(in[i] ^ ks[i]);
    }
    in += n;
    out += n;
    len -= n;
  }
  fk_wipe(ks, sizeof ks);
}

typedef struct poly1305
{
  uint32_t r[5], h[5], pad[4];
} poly1305;

static void poly_init(poly1305* p, const uint8_t key[32])
{
  p->r[0] = (fk_load32_le(key + 0)) & 0x3ffffff;
  p->r[1] = (fk_load32_le(key + 3) >> 2) & 0x3ffff03;
  p->r[2] = (fk_load32_le(key + 6) >> 4) & 0x3ffc0ff;
  p->r[3] = (fk_load32_le(key + 9) >> 6) & 0x3f03fff;
  p->r[4] = (fk_load32_le(key + 12) >> 8) & 0x00fffff;
  memset(p->h, 0, sizeof p->h);
  p->pad[0] = fk_load32_le(key + 16);
  p->pad[1] = fk_load32_le(key + 20);
  p->pad[2] = fk_load32_le(key + 24);
  p->pad[3] = fk_load32_le(key + 28);
}

/* One 16-byte block, zero-padded (RFC 8439 pads every part of the AEAD input to 16 bytes, so
 * every block gets the 2^128 bit). */
static void poly_block(poly1305* p, const uint8_t* m, size_t n)
{
  uint8_t b[16];
  uint64_t d[5], c = 0;
  unsigned i, j;
  memset(b, 0, sizeof b);
  memcpy(b, m, n);
  for (i = 0; i < 5; i++) {
    p->h[i] += i < 4 ? (fk_load32_le(b + 3 * i) >> (2 * i)) & 0x3ffffff : (fk_load32_le(b + 12) >> 8) | (1u << 24);
  }
  for (i = 0; i < 5; i++) { /* h * r mod 2^130 - 5: limbs past the top wrap around times 5 */
    d[i] = 0;
    for (j = 0; j < 5; j++) {
      d[i] += (uint64_t)p->h[j] * (j <= i ? p->r[i - j] : 5 * p->r[i + 5 - j]);
    }
  }
  for (i = 0; i < 5; i++) {
    d[i] += c;
    p->h[i] = (uint32_t)d[i] & 0x3ffffff;
    c = d[i] >> 26;
  }
  p->h[0] += (uint32_t)c * 5;
  p->h[1] += p->h[0] >> 26;
  p->h[0] &= 0x3ffffff;
}

static void poly_padded(poly1305* p, const uint8_t* m, size_t n)
{
  while (n > 0) {
    size_t k = n < 16 ? n : 16;
    poly_block(p, m, k);
    m += k;
    n -= k;
  }
}

static void poly_finish(poly1305* p, uint8_t tag[16])
{
  uint32_t* h = p->h;
  uint32_t g[5], c = 0, mask;
  uint64_t f = 0;
  unsigned i;
  for (i = 1; i < 5; i++) { /* full carry, then h - p selected in constant time when h >= p */
    h[i] += c;
    c = h[i] >> 26;
    h[i] &= 0x3ffffff;
  }
  h[0] += c * 5;
  h[1] += h[0] >> 26;
  h[0] &= 0x3ffffff;
  c = 5;
  for (i = 0; i < 4; i++) {
    g[i] = h[i] + c;
    c = g[i] >> 26;
    g[i] &= 0x3ffffff;
  }
  g[4] = h[4] + c - (1u << 26);
  mask = (g[4] >> 31) - 1; /* all ones when h + 5 reached 2^130, that is h >= p */
  for (i = 0; i < 5; i++) {
    h[i] = (h[i] & ~mask) | (g[i] & mask);
  }
  for (i = 0; i < 4; i++) {
    f += (uint64_t)((h[i] >> (6 * i)) | (h[i + 1] << (26 - 6 * i))) + p->pad[i];
    fk_store32_le(tag + 4 * i, (uint32_t)f);
    f >>= 32;
  }
  fk_wipe(g, sizeof g);
  fk_wipe(p, sizeof *p);
}

static void aead_tag(const uint8_t key[32], const uint8_t nonce[12], const uint8_t* ad, size_t ad_len,
                     const uint8_t* ct, size_t len, uint8_t tag[16])
{
  uint8_t otk[64], lens[16];
  poly1305 p;
  chacha_block(key, 0, nonce, otk);
  poly_init(&p, otk);
  poly_padded(&p, ad, ad_len);
  poly_padded(&p, ct, len);
  fk_store32_le(lens + 0, (uint32_t)ad_len);
  fk_store32_le(lens + 4, (uint32_t)((uint64_t)ad_len >> 32));
  fk_store32_le(lens + 8, (uint32_t)len);
  fk_store32_le(lens + 12, (uint32_t)((uint64_t)len >> 32));
  poly_block(&p, lens, 16);
  poly_finish(&p, tag);
  fk_wipe(otk, sizeof otk);
}

void fk_aead_seal(const uint8_t key[32], const uint8_t nonce[12], const uint8_t* ad, size_t ad_len, const uint8_t* pt,
                  size_t len, uint8_t* ct, uint8_t tag[16])
{
  chacha_xor(key, nonce, pt, len, ct);
  aead_tag(key, nonce, ad, ad_len, ct, len, tag);
}

fk_status fk_aead_open(const uint8_t key[32], const uint8_t nonce[12], const uint8_t* ad, size_t ad_len,
                       const uint8_t* ct, size_t len, const uint8_t tag[16], uint8_t* pt)
{
  uint8_t want[16];
  int ok;
  aead_tag(key, nonce, ad, ad_len, ct, len, want);
  ok = fk_equal(want, tag, 16);
  fk_wipe(want, sizeof want);
  if (!ok) {
    return FK_BAD_MAC; /* nothing is decrypted */
  }
  chacha_xor(key, nonce, ct, len, pt);
  return FK_OK;
}
