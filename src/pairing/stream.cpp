#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/pairing/stream.hpp>

#include <sodium.h>

#include <cstring>

namespace fleetkey::pairing {

namespace {
constexpr size_t k_state_len = sizeof(crypto_auth_hmacsha256_state);
}

StreamDeriver::StreamDeriver()
    : m_state(k_state_len)
    , m_work(k_state_len + crypto::k_hash_len)
    , m_out(k_max_length)
{
  crypto::init();
}

void StreamDeriver::rekey(std::span<const uint8_t> device_key)
{
  auto* st = reinterpret_cast<crypto_auth_hmacsha256_state*>(m_work.data());
  uint8_t* prk = m_work.data() + k_state_len;
  crypto_auth_hmacsha256_init(st, reinterpret_cast<const uint8_t*>(crypto::k_salt.data()), crypto::k_salt.size());
  crypto_auth_hmacsha256_update(st, device_key.data(), device_key.size());
  crypto_auth_hmacsha256_final(st, prk);
  crypto_auth_hmacsha256_init(reinterpret_cast<crypto_auth_hmacsha256_state*>(m_state.data()), prk, crypto::k_hash_len);
  sodium_memzero(m_work.data(), m_work.size());
}

std::span<const uint8_t> StreamDeriver::read(const crypto::Info& info, size_t length) const
{
  if (length > k_max_length) {
    throw Error(Exit::failure, "pairing stream of {} bytes is too long", length);
  }
  auto* st = reinterpret_cast<crypto_auth_hmacsha256_state*>(m_work.data());
  uint8_t* t = m_work.data() + k_state_len;
  const auto bytes = info.bytes();
  size_t done = 0;
  for (uint8_t counter = 1; done < length; ++counter) {
    std::memcpy(st, m_state.data(), k_state_len);
    if (counter > 1) {
      crypto_auth_hmacsha256_update(st, t, crypto::k_hash_len);
    }
    crypto_auth_hmacsha256_update(st, bytes.data(), bytes.size());
    crypto_auth_hmacsha256_update(st, &counter, 1);
    crypto_auth_hmacsha256_final(st, t);
    const size_t n = std::min(crypto::k_hash_len, length - done);
    std::memcpy(m_out.data() + done, t, n);
    done += n;
  }
  return {m_out.data(), length};
}

} // namespace fleetkey::pairing
