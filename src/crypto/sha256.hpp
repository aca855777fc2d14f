#pragma once
// SHA-256 and HMAC-SHA256 for the hot paths (HKDF-Expand and fingerprints for a million devices,
// token MACs in bulk verification). The key schedule is libsodium's; the final blocks run on the
// x86 SHA extensions when the CPU has them and they agree with libsodium on a known answer, and
// on libsodium otherwise. No portable SHA-256 of our own: libsodium is the reference.

#include <fleetkey/util/bytes.hpp>

#include <sodium.h>

#include <cstdint>

namespace fleetkey::crypto::detail {

// True when the CPU has the SHA extensions and they agree with libsodium on a known answer.
bool sha256_fast_available();

// Completes a SHA-256 whose chaining value `h` has absorbed `prior_bytes` (a multiple of 64),
// over `data`, with the standard padding; writes the 32-byte digest. Only when available.
void sha256_fast_finish(const uint32_t h[8], uint64_t prior_bytes, util::ByteView data, uint8_t out[32]);

// An HMAC-SHA256 key with its ipad and opad blocks absorbed. Key material: keep it in a Secret.
struct HmacKey
{
  crypto_auth_hmacsha256_state state;
};

void hmac_init(HmacKey& key, util::ByteView k);
// HMAC over a || b || c.
void hmac(const HmacKey& key, util::ByteView a, util::ByteView b, util::ByteView c, uint8_t out[32]);
// SHA-256 of a || b.
void sha256(util::ByteView a, util::ByteView b, uint8_t out[32]);

inline constexpr uint32_t k_sha256_iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                            0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

} // namespace fleetkey::crypto::detail
