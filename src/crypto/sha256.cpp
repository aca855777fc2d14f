#include "crypto/sha256.hpp"

#include <sodium.h>

#include <cstdlib>
#include <cstring>
#include <initializer_list>

#if defined(__x86_64__)
#include <immintrin.h>
// glibc 2.33+; its inline functions return _Bool, which GCC's C++ accepts and clang's does not.
#if __has_include(<sys/platform/x86.h>) && !defined(__clang__)
#include <sys/platform/x86.h>
#else
#include <cpuid.h>
#endif
#define FLEETKEY_SHA_NI 1
#endif

namespace fleetkey::crypto::detail {

#ifdef FLEETKEY_SHA_NI

namespace {

alignas(16) constexpr uint32_t k_round[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

__attribute__((target("sha,sse4.1,ssse3"))) void compress(uint32_t state[8], const uint8_t* data, size_t blocks)
{
  const __m128i swap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
  __m128i tmp = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&state[0]));
  __m128i s1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&state[4]));
  tmp = _mm_shuffle_epi32(tmp, 0xB1);       // CDAB
  s1 = _mm_shuffle_epi32(s1, 0x1B);         // EFGH
  __m128i s0 = _mm_alignr_epi8(tmp, s1, 8); // ABEF
  s1 = _mm_blend_epi16(s1, tmp, 0xF0);      // CDGH
  for (; blocks > 0; --blocks, data += 64) {
    const __m128i abef = s0;
    const __m128i cdgh = s1;
    __m128i w[4];
    for (int i = 0; i < 4; ++i) {
      w[i] = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(data + 16 * i)), swap);
    }
#pragma GCC unroll 16
    for (int j = 0; j < 16; ++j) {
      // w[j % 4] holds W[4j-16..4j-13] and becomes W[4j..4j+3] (FIPS 180-4 message schedule).
      if (j >= 4) {
        const __m128i t = _mm_add_epi32(_mm_sha256msg1_epu32(w[j % 4], w[(j + 1) % 4]),
                                        _mm_alignr_epi8(w[(j + 3) % 4], w[(j + 2) % 4], 4));
        w[j % 4] = _mm_sha256msg2_epu32(t, w[(j + 3) % 4]);
      }
      __m128i msg = _mm_add_epi32(w[j % 4], _mm_load_si128(reinterpret_cast<const __m128i*>(&k_round[4 * j])));
      s1 = _mm_sha256rnds2_epu32(s1, s0, msg);
      msg = _mm_shuffle_epi32(msg, 0x0E);
      s0 = _mm_sha256rnds2_epu32(s0, s1, msg);
    }
    s0 = _mm_add_epi32(s0, abef);
    s1 = _mm_add_epi32(s1, cdgh);
  }
  tmp = _mm_shuffle_epi32(s0, 0x1B);   // FEBA
  s1 = _mm_shuffle_epi32(s1, 0xB1);    // DCHG
  s0 = _mm_blend_epi16(tmp, s1, 0xF0); // DCBA
  s1 = _mm_alignr_epi8(s1, tmp, 8);    // ABEF
  _mm_storeu_si128(reinterpret_cast<__m128i*>(&state[0]), s0);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(&state[4]), s1);
}

bool cpu_has_sha()
{
#ifdef CPU_FEATURE_ACTIVE
  // What glibc found at start-up: no CPUID here, an instruction that in a VM traps to the
  // hypervisor (about 2 us each on the machine of bench/README.md; this took four).
  return CPU_FEATURE_ACTIVE(SSSE3) && CPU_FEATURE_ACTIVE(SSE4_1) && CPU_FEATURE_ACTIVE(SHA);
#else
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(1, &a, &b, &c, &d) == 0) {
    return false;
  }
  const bool sse41 = (c & (1u << 19)) != 0;
  const bool ssse3 = (c & (1u << 9)) != 0;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0) {
    return false;
  }
  return sse41 && ssse3 && (b & (1u << 29)) != 0;
#endif
}

// The fast path is used only if it reproduces libsodium on every length class of the padding.
bool self_test()
{
  uint8_t msg[200];
  for (size_t i = 0; i < sizeof msg; ++i) {
    msg[i] = static_cast<uint8_t>(i * 131 + 7);
  }
  for (size_t len : {0u, 1u, 55u, 56u, 63u, 64u, 65u, 119u, 120u, 200u}) {
    uint8_t want[32];
    uint8_t got[32];
    crypto_hash_sha256(want, msg, len);
    sha256_fast_finish(k_sha256_iv, 0, util::ByteView(msg, len), got);
    if (std::memcmp(want, got, 32) != 0) {
      return false;
    }
  }
  return true;
}

} // namespace

bool sha256_fast_available()
{
  // FLEETKEY_NO_SHA_EXT (any value) keeps every hash on libsodium, so that bench/tokens.sh can
  // measure what the extensions gain.
  static const bool available = std::getenv("FLEETKEY_NO_SHA_EXT") == nullptr && cpu_has_sha() && self_test();
  return available;
}

void sha256_fast_finish(const uint32_t h[8], uint64_t prior_bytes, util::ByteView data, uint8_t out[32])
{
  uint32_t state[8];
  std::memcpy(state, h, sizeof state);
  const size_t full = data.size() / 64;
  if (full > 0) {
    compress(state, data.data(), full);
  }
  // The tail, 0x80, zeros and the bit length: one block, or two when the tail is 56 bytes or more.
  uint8_t last[128] = {};
  const size_t tail = data.size() - full * 64;
  if (tail > 0) {
    std::memcpy(last, data.data() + full * 64, tail);
  }
  last[tail] = 0x80;
  const size_t blocks = tail < 56 ? 1 : 2;
  const uint64_t bits = (prior_bytes + data.size()) * 8;
  for (int i = 0; i < 8; ++i) {
    last[blocks * 64 - 1 - static_cast<size_t>(i)] = static_cast<uint8_t>(bits >> (8 * i));
  }
  compress(state, last, blocks);
  for (size_t i = 0; i < 8; ++i) {
    out[4 * i] = static_cast<uint8_t>(state[i] >> 24);
    out[4 * i + 1] = static_cast<uint8_t>(state[i] >> 16);
    out[4 * i + 2] = static_cast<uint8_t>(state[i] >> 8);
    out[4 * i + 3] = static_cast<uint8_t>(state[i]);
  }
  sodium_memzero(last, sizeof last);
  sodium_memzero(state, sizeof state);
}

#else

bool sha256_fast_available()
{
  return false;
}
void sha256_fast_finish(const uint32_t*, uint64_t, util::ByteView, uint8_t*) {}

#endif

namespace {

// Messages up to this size are assembled on the stack for the fast path; longer ones go to libsodium.
constexpr size_t k_fast_max = 1024;

size_t gather(uint8_t* buf, std::initializer_list<util::ByteView> parts)
{
  size_t n = 0;
  for (const auto& p : parts) {
    if (!p.empty()) { // memcpy from a null pointer is undefined even for 0 bytes
      std::memcpy(buf + n, p.data(), p.size());
      n += p.size();
    }
  }
  return n;
}

} // namespace

void hmac_init(HmacKey& key, util::ByteView k)
{
  crypto_auth_hmacsha256_init(&key.state, k.data(), k.size());
}

void hmac(const HmacKey& key, util::ByteView a, util::ByteView b, util::ByteView c, uint8_t out[32])
{
  const size_t total = a.size() + b.size() + c.size();
  // After init, each of libsodium's two contexts has absorbed exactly one block (ipad, opad).
  if (total <= k_fast_max && key.state.ictx.count == 512 && key.state.octx.count == 512 && sha256_fast_available()) {
    uint8_t msg[k_fast_max];
    uint8_t inner[32];
    const size_t n = gather(msg, {a, b, c});
    sha256_fast_finish(key.state.ictx.state, 64, util::ByteView(msg, n), inner);
    sha256_fast_finish(key.state.octx.state, 64, util::ByteView(inner, sizeof inner), out);
    sodium_memzero(msg, n);
    sodium_memzero(inner, sizeof inner);
    return;
  }
  crypto_auth_hmacsha256_state st = key.state;
  for (const auto& p : {a, b, c}) {
    crypto_auth_hmacsha256_update(&st, p.data(), p.size());
  }
  crypto_auth_hmacsha256_final(&st, out);
  sodium_memzero(&st, sizeof st);
}

void sha256(util::ByteView a, util::ByteView b, uint8_t out[32])
{
  if (a.size() + b.size() <= k_fast_max && sha256_fast_available()) {
    uint8_t msg[k_fast_max];
    const size_t n = gather(msg, {a, b});
    sha256_fast_finish(k_sha256_iv, 0, util::ByteView(msg, n), out);
    sodium_memzero(msg, n);
    return;
  }
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  crypto_hash_sha256_update(&st, a.data(), a.size());
  crypto_hash_sha256_update(&st, b.data(), b.size());
  crypto_hash_sha256_final(&st, out);
  sodium_memzero(&st, sizeof st);
}

} // namespace fleetkey::crypto::detail
