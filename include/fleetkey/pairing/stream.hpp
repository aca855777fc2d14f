#pragma once
// The pairing streams HKDF-Expand(PRK_dev(D), info(label, n), L) of fleetkey-pairing(5), for
// device after device: the same bytes as crypto::DeviceDeriver::derive, but its guarded buffers
// are allocated once and rekeyed per device, so a production run does not pay for a
// sodium_malloc (mmap, mprotect, mlock) per key. One per thread.

#include <fleetkey/crypto/hkdf.hpp>

#include <cstdint>
#include <span>

namespace fleetkey::pairing {

class StreamDeriver
{
public:
  StreamDeriver();
  explicit StreamDeriver(std::span<const uint8_t> device_key)
      : StreamDeriver()
  {
    rekey(device_key);
  }

  // PRK_dev = HKDF-Extract("fleetkey/v1", K_dev(D)), kept as a keyed HMAC state.
  void rekey(std::span<const uint8_t> device_key);

  // The first `length` (at most 8160) bytes of the stream, in a buffer valid until the next read.
  std::span<const uint8_t> read(const crypto::Info& info, size_t length) const;

  static constexpr size_t k_max_length = 255 * crypto::k_hash_len;

private:
  crypto::Secret m_state;        // crypto_auth_hmacsha256_state keyed with PRK_dev
  mutable crypto::Secret m_work; // a copy of the state, then T(i)
  mutable crypto::Secret m_out;  // the stream
};

} // namespace fleetkey::pairing
