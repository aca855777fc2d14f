#include "sha256.hpp"

#include <sodium.h>

#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

namespace fleetkey::token::sha256 {

namespace {

alignas(16) constexpr uint32_t k_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

constexpr State k_iv = {
    {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}};

inline uint32_t rotr(uint32_t x, int n)
{
  return (x >> n) | (x << (32 - n));
}

inline uint32_t load_be(const uint8_t* p)
{
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
}

void compress_portable(State& s, const uint8_t* data, size_t blocks)
{
  for (; blocks > 0; --blocks, data += 64) {
    uint32_t w[64];
    for (int t = 0; t < 16; ++t) {
      w[t] = load_be(data + 4 * t);
    }
    for (int t = 16; t < 64; ++t) {
      const uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
      const uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
      w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = s.h[0], b = s.h[1], c = s.h[2], d = s.h[3], e = s.h[4], f = s.h[5], g = s.h[6], h = s.h[7];
    for (int t = 0; t < 64; ++t) {
      const uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k_k[t] + w[t];
      const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      h = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    s.h[0] += a;
    s.h[1] += b;
    s.h[2] += c;
    s.h[3] += d;
    s.h[4] += e;
    s.h[5] += f;
    s.h[6] += g;
    s.h[7] += h;
  }
}

#if defined(__x86_64__)
// Four rounds per step with SHA256RNDS2; the message schedule with SHA256MSG1/MSG2.
__attribute__((target("sha,sse4.1,ssse3"))) void compress_shani(State& s, const uint8_t* data, size_t blocks)
{
  const __m128i mask = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  __m128i tmp = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&s.h[0]));
  __m128i state1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&s.h[4]));
  tmp = _mm_shuffle_epi32(tmp, 0xB1);               // CDAB
  state1 = _mm_shuffle_epi32(state1, 0x1B);         // EFGH
  __m128i state0 = _mm_alignr_epi8(tmp, state1, 8); // ABEF
  state1 = _mm_blend_epi16(state1, tmp, 0xF0);      // CDGH

  for (; blocks > 0; --blocks, data += 64) {
    const __m128i abef_save = state0;
    const __m128i cdgh_save = state1;
    __m128i m[4];
    for (int i = 0; i < 16; ++i) {
      if (i < 4) {
        m[i] = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(data + 16 * i)), mask);
      }
      __m128i msg = _mm_add_epi32(m[i % 4], _mm_load_si128(reinterpret_cast<const __m128i*>(&k_k[4 * i])));
      state1 = _mm_sha256rnds2_epu32(state1, state0, msg);
      if (i >= 3 && i < 15) {
        const __m128i t = _mm_alignr_epi8(m[i % 4], m[(i + 3) % 4], 4);
        m[(i + 1) % 4] = _mm_add_epi32(m[(i + 1) % 4], t);
        m[(i + 1) % 4] = _mm_sha256msg2_epu32(m[(i + 1) % 4], m[i % 4]);
      }
      msg = _mm_shuffle_epi32(msg, 0x0E);
      state0 = _mm_sha256rnds2_epu32(state0, state1, msg);
      if (i >= 1 && i < 13) {
        m[(i + 3) % 4] = _mm_sha256msg1_epu32(m[(i + 3) % 4], m[i % 4]);
      }
    }
    state0 = _mm_add_epi32(state0, abef_save);
    state1 = _mm_add_epi32(state1, cdgh_save);
  }

  tmp = _mm_shuffle_epi32(state0, 0x1B);       // FEBA
  state1 = _mm_shuffle_epi32(state1, 0xB1);    // DCHG
  state0 = _mm_blend_epi16(tmp, state1, 0xF0); // DCBA
  state1 = _mm_alignr_epi8(state1, tmp, 8);    // ABEF
  _mm_storeu_si128(reinterpret_cast<__m128i*>(&s.h[0]), state0);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(&s.h[4]), state1);
}

bool cpu_has_sha()
{
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0) {
    return false;
  }
  const bool sha = (b & (1u << 29)) != 0;
  __get_cpuid(1, &a, &b, &c, &d);
  const bool sse41 = (c & (1u << 19)) != 0;
  const bool ssse3 = (c & (1u << 9)) != 0;
  return sha && sse41 && ssse3;
}
#endif

using Compress = void (*)(State&, const uint8_t*, size_t);

Compress detect()
{
#if defined(__x86_64__)
  if (cpu_has_sha()) {
    return compress_shani;
  }
#endif
  return compress_portable;
}

Compress g_compress = detect();

// Hashes the rest of a message whose first `prefix_len` bytes are already in `s`.
void finish(State s, size_t prefix_len, const uint8_t* data, size_t len, uint8_t out[32])
{
  const size_t full = len / 64;
  g_compress(s, data, full);
  uint8_t last[128] = {};
  const size_t rest = len - full * 64;
  std::memcpy(last, data + full * 64, rest);
  last[rest] = 0x80;
  const size_t blocks = rest + 9 > 64 ? 2 : 1;
  const uint64_t bits = (uint64_t{prefix_len} + len) * 8;
  for (int i = 0; i < 8; ++i) {
    last[blocks * 64 - 1 - static_cast<size_t>(i)] = static_cast<uint8_t>(bits >> (8 * i));
  }
  g_compress(s, last, blocks);
  for (int i = 0; i < 8; ++i) {
    out[4 * i] = static_cast<uint8_t>(s.h[i] >> 24);
    out[4 * i + 1] = static_cast<uint8_t>(s.h[i] >> 16);
    out[4 * i + 2] = static_cast<uint8_t>(s.h[i] >> 8);
    out[4 * i + 3] = static_cast<uint8_t>(s.h[i]);
  }
  sodium_memzero(last, sizeof last);
  sodium_memzero(&s, sizeof s);
}

} // namespace

void force_impl(Impl impl)
{
  g_compress = impl == Impl::portable ? compress_portable : detect();
}

bool using_sha_extensions()
{
  return g_compress != compress_portable;
}

void hash(const uint8_t* data, size_t len, uint8_t out[32])
{
  finish(k_iv, 0, data, len, out);
}

void hmac_init(HmacKey& key, const uint8_t* k, size_t len)
{
  uint8_t block[64] = {};
  if (len > 64) {
    hash(k, len, block);
  } else if (len > 0) {
    std::memcpy(block, k, len);
  }
  uint8_t pad[64];
  for (size_t i = 0; i < 64; ++i) {
    pad[i] = block[i] ^ 0x36;
  }
  key.inner = k_iv;
  g_compress(key.inner, pad, 1);
  for (size_t i = 0; i < 64; ++i) {
    pad[i] = block[i] ^ 0x5c;
  }
  key.outer = k_iv;
  g_compress(key.outer, pad, 1);
  sodium_memzero(block, sizeof block);
  sodium_memzero(pad, sizeof pad);
}

void hmac(const HmacKey& key, const uint8_t* data, size_t len, uint8_t out[32])
{
  uint8_t inner[32];
  finish(key.inner, 64, data, len, inner);
  finish(key.outer, 64, inner, sizeof inner, out);
  sodium_memzero(inner, sizeof inner);
}

} // namespace fleetkey::token::sha256
