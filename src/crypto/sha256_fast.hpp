#pragma once
// SHA-256 on the x86 SHA extensions, for the batch paths (HKDF-Expand and fingerprints of a
// million devices). Private to src/crypto: callers fall back to libsodium when unavailable.

#include <fleetkey/util/bytes.hpp>

#include <cstdint>

namespace fleetkey::crypto::detail {

// True when the CPU has the SHA extensions and they agree with libsodium on a known answer.
bool sha256_fast_available();

// Completes a SHA-256 whose chaining value `h` has absorbed `prior_bytes` (a multiple of 64),
// over `data`, with the standard padding; writes the 32-byte digest. Only when available.
void sha256_fast_finish(const uint32_t h[8], uint64_t prior_bytes, util::ByteView data, uint8_t out[32]);

inline constexpr uint32_t k_sha256_iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                            0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

} // namespace fleetkey::crypto::detail
