/* ChaCha20-Poly1305 AEAD (RFC 8439): ChaCha20 on 32-bit words, Poly1305 on five 26-bit limbs
 * (poly1305-donna's 32-bit layout), so that a Cortex-M3 needs only 32x32->64 multiplies. */
#include "fk_internal.h"

#define ROTL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))
#define QR(a, b, c, d)                                                                                                 \
  a += b;                                                                                                              \
  d ^= a;                                                                                                              \
  d = ROTL(d, 16);                                                                                                     \
  c += d;                                                                                                              \
  b ^= c;                                                                                                              \
  b = ROTL(b, 12);                                                                                                     \
  a += b;                                                                                                              \
  d ^= a;                                                                                                              \
  d = ROTL(d, 8);                                                                                                      \
  c += d;                                                                                                              \
  b ^= c;                                                                                                              \
  b = ROTL(b, 7)

static void chacha_block(const uint8_t key[32], uint32_t counter, const uint8_t nonce[12], uint8_t out[64])
{
  uint32_t in[16], x[16];
  unsigned i;
  in[0] = 0x61707865;
  in[1] = 0x3320646e;
  in[2] = 0x79622d32;
  in[3] = 0x6b206574;
  for (i = 0; i < 8; i++) {
    in[4 + i] = fk_load32_le(key + 4 * i);
  }
  in[12] = counter;
  for (i = 0; i < 3; i++) {
    in[13 + i] = fk_load32_le(nonce + 4 * i);
  }
  memcpy(x, in, sizeof x);
  for (i = 0; i < 10; i++) {
    QR(x[0], x[4], x[8], x[12]);
    QR(x[1], x[5], x[9], x[13]);
    QR(x[2], x[6], x[10], x[14]);
    QR(x[3], x[7], x[11], x[15]);
    QR(x[0], x[5], x[10], x[15]);
    QR(x[1], x[6], x[11], x[12]);
    QR(x[2], x[7], x[8], x[13]);
    QR(x[3], x[4], x[9], x[14]);
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

/* One 16-byte block, zero-padded (RFC 8439 pads every part of the AEAD input to 16 bytes). */
static void poly_block(poly1305* p, const uint8_t* m, size_t n)
{
  uint8_t b[16];
  const uint32_t r0 = p->r[0], r1 = p->r[1], r2 = p->r[2], r3 = p->r[3], r4 = p->r[4];
  const uint32_t s1 = r1 * 5, s2 = r2 * 5, s3 = r3 * 5, s4 = r4 * 5;
  uint32_t h0, h1, h2, h3, h4, c;
  uint64_t d0, d1, d2, d3, d4;
  memset(b, 0, sizeof b);
  memcpy(b, m, n);
  h0 = p->h[0] + (fk_load32_le(b + 0) & 0x3ffffff);
  h1 = p->h[1] + ((fk_load32_le(b + 3) >> 2) & 0x3ffffff);
  h2 = p->h[2] + ((fk_load32_le(b + 6) >> 4) & 0x3ffffff);
  h3 = p->h[3] + ((fk_load32_le(b + 9) >> 6) & 0x3ffffff);
  h4 = p->h[4] + ((fk_load32_le(b + 12) >> 8) | (1u << 24));
  d0 = (uint64_t)h0 * r0 + (uint64_t)h1 * s4 + (uint64_t)h2 * s3 + (uint64_t)h3 * s2 + (uint64_t)h4 * s1;
  d1 = (uint64_t)h0 * r1 + (uint64_t)h1 * r0 + (uint64_t)h2 * s4 + (uint64_t)h3 * s3 + (uint64_t)h4 * s2;
  d2 = (uint64_t)h0 * r2 + (uint64_t)h1 * r1 + (uint64_t)h2 * r0 + (uint64_t)h3 * s4 + (uint64_t)h4 * s3;
  d3 = (uint64_t)h0 * r3 + (uint64_t)h1 * r2 + (uint64_t)h2 * r1 + (uint64_t)h3 * r0 + (uint64_t)h4 * s4;
  d4 = (uint64_t)h0 * r4 + (uint64_t)h1 * r3 + (uint64_t)h2 * r2 + (uint64_t)h3 * r1 + (uint64_t)h4 * r0;
  c = (uint32_t)(d0 >> 26);
  h0 = (uint32_t)d0 & 0x3ffffff;
  d1 += c;
  c = (uint32_t)(d1 >> 26);
  h1 = (uint32_t)d1 & 0x3ffffff;
  d2 += c;
  c = (uint32_t)(d2 >> 26);
  h2 = (uint32_t)d2 & 0x3ffffff;
  d3 += c;
  c = (uint32_t)(d3 >> 26);
  h3 = (uint32_t)d3 & 0x3ffffff;
  d4 += c;
  c = (uint32_t)(d4 >> 26);
  h4 = (uint32_t)d4 & 0x3ffffff;
  h0 += c * 5;
  c = h0 >> 26;
  h0 &= 0x3ffffff;
  h1 += c;
  p->h[0] = h0;
  p->h[1] = h1;
  p->h[2] = h2;
  p->h[3] = h3;
  p->h[4] = h4;
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
  uint32_t h0 = p->h[0], h1 = p->h[1], h2 = p->h[2], h3 = p->h[3], h4 = p->h[4], c, g0, g1, g2, g3, g4, mask;
  uint64_t f;
  c = h1 >> 26;
  h1 &= 0x3ffffff;
  h2 += c;
  c = h2 >> 26;
  h2 &= 0x3ffffff;
  h3 += c;
  c = h3 >> 26;
  h3 &= 0x3ffffff;
  h4 += c;
  c = h4 >> 26;
  h4 &= 0x3ffffff;
  h0 += c * 5;
  c = h0 >> 26;
  h0 &= 0x3ffffff;
  h1 += c;
  /* h - p, selected in constant time when h >= p */
  g0 = h0 + 5;
  c = g0 >> 26;
  g0 &= 0x3ffffff;
  g1 = h1 + c;
  c = g1 >> 26;
  g1 &= 0x3ffffff;
  g2 = h2 + c;
  c = g2 >> 26;
  g2 &= 0x3ffffff;
  g3 = h3 + c;
  c = g3 >> 26;
  g3 &= 0x3ffffff;
  g4 = h4 + c - (1u << 26);
  mask = (g4 >> 31) - 1;
  h0 = (h0 & ~mask) | (g0 & mask);
  h1 = (h1 & ~mask) | (g1 & mask);
  h2 = (h2 & ~mask) | (g2 & mask);
  h3 = (h3 & ~mask) | (g3 & mask);
  h4 = (h4 & ~mask) | (g4 & mask);
  h0 = (h0 | (h1 << 26));
  h1 = ((h1 >> 6) | (h2 << 20));
  h2 = ((h2 >> 12) | (h3 << 14));
  h3 = ((h3 >> 18) | (h4 << 8));
  f = (uint64_t)h0 + p->pad[0];
  fk_store32_le(tag + 0, (uint32_t)f);
  f = (uint64_t)h1 + p->pad[1] + (f >> 32);
  fk_store32_le(tag + 4, (uint32_t)f);
  f = (uint64_t)h2 + p->pad[2] + (f >> 32);
  fk_store32_le(tag + 8, (uint32_t)f);
  f = (uint64_t)h3 + p->pad[3] + (f >> 32);
  fk_store32_le(tag + 12, (uint32_t)f);
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
