#pragma once
// Matter's SPAKE2+ verifier (Matter Core Specification 3.10 and 5.1.1.6; connectedhomeip's
// Spake2pVerifier): what a device stores instead of its setup passcode.
//
//   ws       = PBKDF2-HMAC-SHA256(passcode as 4 little-endian bytes, salt, iterations, 80 bytes)
//   w0, w1   = ws[0:40] mod n, ws[40:80] mod n           (n: the order of P-256)
//   L        = w1 * G                                    (uncompressed: 04 || x || y, 65 bytes)
//   verifier = w0 (32 bytes, big-endian) || L            (97 bytes)
//
// fleetkey derives the salt per device and pairing counter; the layouts are in fleetkey-pairing(5).
// OpenSSL's libcrypto does PBKDF2 and the curve arithmetic (libsodium has no P-256).

#include <fleetkey/crypto/secret.hpp>
#include <fleetkey/pairing/stream.hpp>
#include <fleetkey/util/bytes.hpp>
#include <fleetkey/util/result.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

namespace fleetkey::pairing {

inline constexpr uint32_t k_spake2p_min_iterations = 1000;      // Matter: 1000 to 100000
inline constexpr uint32_t k_spake2p_max_iterations = 100000;    //
inline constexpr uint32_t k_spake2p_default_iterations = 10000; // esp-matter-mfg-tool's value
inline constexpr size_t k_spake2p_min_salt_len = 16;
inline constexpr size_t k_spake2p_max_salt_len = 32;
inline constexpr size_t k_spake2p_salt_len = 32; // fleetkey's derived salts
inline constexpr size_t k_spake2p_w0_len = 32;
inline constexpr size_t k_spake2p_point_len = 65;
inline constexpr size_t k_spake2p_verifier_len = k_spake2p_w0_len + k_spake2p_point_len; // 97

// Why an iteration count is refused (outside 1000-100000), or nullopt.
std::optional<std::string> iterations_problem(uint64_t iterations);

// The salt of device D at pairing counter n: the first 32 bytes of stream("pairing-matter-salt", n).
util::Bytes derive_salt(const StreamDeriver& device, uint64_t counter);

// Computes verifiers, device after device: keeps the P-256 group and a BN_CTX between calls.
// Not shared between threads: one per thread.
class Spake2p
{
public:
  Spake2p(); // throws Error(failure) when libcrypto cannot set up P-256
  ~Spake2p();
  Spake2p(const Spake2p&) = delete;
  Spake2p& operator=(const Spake2p&) = delete;

  // w0 || L into `out`. Refuses an invalid passcode (fleetkey-pairing(5)), a salt of other than
  // 16-32 bytes and an iteration count outside 1000-100000; fails if libcrypto does.
  Result<bool> verifier(uint32_t passcode, util::ByteView salt, uint32_t iterations,
                        std::span<uint8_t, k_spake2p_verifier_len> out) const;
  // The same in a new Secret.
  Result<crypto::Secret> verifier(uint32_t passcode, util::ByteView salt, uint32_t iterations) const;

private:
  struct State;
  std::unique_ptr<State> m_state;
};

} // namespace fleetkey::pairing
