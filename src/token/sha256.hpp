#pragma once
// HMAC-SHA256 for the token hot path: SHA-256 with the x86 SHA extensions when the CPU has them
// (about 6x libsodium 1.0.18's portable code), else a portable compression function. The key
// schedule (ipad/opad states) is computed once per key. Checked against libsodium in test_cose.cpp.

#include <cstddef>
#include <cstdint>

namespace fleetkey::token::sha256 {

struct State
{
  uint32_t h[8];
};

// The two chaining states of an HMAC key: after (key ^ ipad) and after (key ^ opad).
struct HmacKey
{
  State inner;
  State outer;
};

void hmac_init(HmacKey& key, const uint8_t* k, size_t len);
void hmac(const HmacKey& key, const uint8_t* data, size_t len, uint8_t out[32]);
void hash(const uint8_t* data, size_t len, uint8_t out[32]);

// Which compression function runs; tests force the portable one to check both.
enum class Impl { auto_detect, portable };
void force_impl(Impl impl);
bool using_sha_extensions();

} // namespace fleetkey::token::sha256
