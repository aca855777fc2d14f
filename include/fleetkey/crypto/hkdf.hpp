#pragma once
// HKDF-SHA256 (RFC 5869) on libsodium's HMAC-SHA256, and the length-prefixed `info` encoding.

#include <fleetkey/crypto/secret.hpp>
#include <fleetkey/util/bytes.hpp>

#include <cstdint>
#include <string_view>

namespace fleetkey::crypto {

inline constexpr size_t k_hash_len = 32;

// PRK = HMAC-SHA256(salt, ikm); an empty salt means 32 zero bytes, as RFC 5869 says.
Secret hkdf_extract(util::ByteView salt, util::ByteView ikm);

// HKDF-Expand keyed once: the HMAC state for the PRK is computed in the constructor and reused
// by every expand(), so a batch of derivations from one PRK pays for the key schedule once.
// expand() works in a scratch buffer owned by the object: one Expander per thread.
class Expander
{
public:
  explicit Expander(util::ByteView prk);

  // `out` may be at most 255 * 32 bytes.
  void expand(util::ByteView info, std::span<uint8_t> out) const;
  Secret expand(util::ByteView info, size_t length) const;

private:
  Secret m_state;        // a crypto_auth_hmacsha256_state, kept in guarded memory
  mutable Secret m_work; // the working copy of the state and T(i), reused by every expand()
};

// One-shot HKDF (extract then expand).
Secret hkdf(util::ByteView salt, util::ByteView ikm, util::ByteView info, size_t length);

// info = field(label) || field(x1) || ... || field(xn), where field(x) = uint16_be(len(x)) || x
// and an integer is first written as 8 bytes big-endian. Every field carries its length, so no
// two different input lists give the same info ("alice","admin" differs from "alicea","dmin").
class Info
{
public:
  explicit Info(std::string_view label) { add(label); }
  Info& add(std::string_view field) { return add(util::as_bytes(field)); }
  Info& add(util::ByteView field);
  Info& add_u64(uint64_t value);
  util::ByteView bytes() const { return m_bytes; }

private:
  util::Bytes m_bytes;
};

// SHA-256, for fingerprints and digests.
void sha256(util::ByteView data, std::span<uint8_t, 32> out);

} // namespace fleetkey::crypto
