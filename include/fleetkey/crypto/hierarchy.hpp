#pragma once
// The key hierarchy of DESIGN section 1, specified byte by byte in fleetkey-formats(5):
//
//   PRK[v]          = HKDF-Extract("fleetkey/v1", MK[v])
//   K_dev(D)        = HKDF-Expand(PRK[v], info("device", D), 32)
//   PRK_dev(D)      = HKDF-Extract("fleetkey/v1", K_dev(D))
//   K_user(D, U, e) = HKDF-Expand(PRK_dev(D), info("user", U, e), 32)
//   K_purpose(D, P) = HKDF-Expand(PRK_dev(D), info("purpose", P), 32)
//   K_tok           = HKDF-Expand(PRK[v], info("token", alg), 32)
//   K_tok_dev(D)    = HKDF-Expand(PRK_dev(D), info("token", alg), 32)
//   K_rev(D)        = HKDF-Expand(PRK_dev(D), info("revocations"), 32)
//   pairing(D, n)   = HKDF-Expand(PRK_dev(D), info("pairing", n), L)

#include <fleetkey/crypto/hkdf.hpp>
#include <fleetkey/crypto/keysource.hpp>

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace fleetkey::crypto {

inline constexpr std::string_view k_salt = "fleetkey/v1";
inline constexpr size_t k_key_len = 32;

struct MasterKey;

// Derives from one master key version. Construct once per batch: the PRK's HMAC state is reused.
class MasterDeriver
{
public:
  explicit MasterDeriver(const Secret& master_key);
  // From a key ring's version, wherever its key lives (in this process or the agent's).
  explicit MasterDeriver(const MasterKey& master_key);

  Secret device_key(std::string_view device_id) const;
  // The batch form: writes K_dev(D) into `out` without allocating.
  void device_key(std::string_view device_id, std::span<uint8_t, k_key_len> out) const;
  // K_dev for many devices at once into out[i * 32, (i + 1) * 32): one request to the agent.
  void device_keys(std::span<const std::string_view> device_ids, std::span<uint8_t> out) const;
  // `alg` names the MAC the key is for ("hmac256/256", "hmac256/64"), so no two algorithms share a key.
  Secret token_key(std::string_view alg) const;
  // Any other label under PRK[v], for extensions documented in fleetkey-formats(5).
  Secret derive(const Info& info, size_t length = k_key_len) const;

private:
  void expand(util::ByteView info, std::span<uint8_t> out) const;
  Secret expand(util::ByteView info, size_t length) const;

  std::optional<Expander> m_prk;       // the key is here
  const KeySource* m_source = nullptr; // or elsewhere
  std::shared_ptr<const KeySource> m_keep;
  uint32_t m_version = 0;
};

// Derives what one device can recompute from its own key K_dev(D).
class DeviceDeriver
{
public:
  explicit DeviceDeriver(const Secret& device_key);

  Secret user_key(std::string_view user, uint64_t epoch) const;
  Secret purpose_key(std::string_view purpose) const;
  Secret token_key(std::string_view alg) const;
  Secret revocation_key() const;
  Secret pairing_bytes(uint64_t counter, size_t length) const;
  Secret derive(const Info& info, size_t length = k_key_len) const;

private:
  Expander m_prk;
};

// A key's fingerprint: the first 16 bytes of SHA-256("fleetkey/v1 fingerprint" || key), as 32
// lower-case hex digits. It identifies a key; being a one-way hash, it cannot stand in for one.
std::string fingerprint(util::ByteView key);
void fingerprint(util::ByteView key, std::span<uint8_t, 16> out);

} // namespace fleetkey::crypto
