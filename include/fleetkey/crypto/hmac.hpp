#pragma once
// HMAC-SHA256 (RFC 2104) with the key schedule done once: the interface other layers use for MACs
// (token tags). Small messages run on the x86 SHA extensions when the CPU has them and they pass a
// known-answer check at first use, on libsodium otherwise (src/crypto/sha256.hpp).

#include <fleetkey/crypto/secret.hpp>
#include <fleetkey/util/bytes.hpp>

#include <cstdint>

namespace fleetkey::crypto {

inline constexpr size_t k_hmac_sha256_size = 32;

// A key with its ipad and opad blocks absorbed, kept in guarded memory. mac() is const and
// thread-safe: one key serves every worker thread.
class HmacSha256
{
public:
  explicit HmacSha256(util::ByteView key);
  // HMAC-SHA256(key, data) into `out` (32 bytes).
  void mac(util::ByteView data, uint8_t out[k_hmac_sha256_size]) const;
  // HMAC-SHA256(key, a || b || c), without assembling the message.
  void mac(util::ByteView a, util::ByteView b, util::ByteView c, uint8_t out[k_hmac_sha256_size]) const;

private:
  Secret m_state;
};

// Whether small MACs run on the CPU's SHA extensions (false when the CPU lacks them, they failed
// the self-test, or FLEETKEY_NO_SHA_EXT is set in the environment: bench/tokens.sh --no-sha-ext).
bool sha256_extensions_in_use();

} // namespace fleetkey::crypto
