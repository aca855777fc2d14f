#include <fleetkey/crypto/hkdf.hpp>
#include <fleetkey/util/error.hpp>

#include <sodium.h>

#include <cstring>

namespace fleetkey::crypto {

Secret hkdf_extract(util::ByteView salt, util::ByteView ikm)
{
  init();
  static constexpr uint8_t k_zero_salt[k_hash_len] = {};
  if (salt.empty()) {
    salt = k_zero_salt;
  }
  Secret prk(k_hash_len);
  Secret state(sizeof(crypto_auth_hmacsha256_state));
  auto* st = reinterpret_cast<crypto_auth_hmacsha256_state*>(state.data());
  crypto_auth_hmacsha256_init(st, salt.data(), salt.size());
  crypto_auth_hmacsha256_update(st, ikm.data(), ikm.size());
  crypto_auth_hmacsha256_final(st, prk.data());
  return prk;
}

Expander::Expander(util::ByteView prk)
  : m_state(sizeof(crypto_auth_hmacsha256_state)), m_work(sizeof(crypto_auth_hmacsha256_state) + k_hash_len)
{
  crypto_auth_hmacsha256_init(reinterpret_cast<crypto_auth_hmacsha256_state*>(m_state.data()), prk.data(),
                              prk.size());
}

void Expander::expand(util::ByteView info, std::span<uint8_t> out) const
{
  if (out.size() > 255 * k_hash_len) {
    throw Error(Exit::failure, "HKDF-Expand output of {} bytes is too long", out.size());
  }
  auto* st = reinterpret_cast<crypto_auth_hmacsha256_state*>(m_work.data());
  uint8_t* t = m_work.data() + sizeof(crypto_auth_hmacsha256_state);
  size_t done = 0;
  for (uint8_t counter = 1; done < out.size(); ++counter) {
    std::memcpy(st, m_state.data(), sizeof *st);
    if (counter > 1) {
      crypto_auth_hmacsha256_update(st, t, k_hash_len);
    }
    crypto_auth_hmacsha256_update(st, info.data(), info.size());
    crypto_auth_hmacsha256_update(st, &counter, 1);
    crypto_auth_hmacsha256_final(st, t);
    const size_t n = std::min(k_hash_len, out.size() - done);
    std::memcpy(out.data() + done, t, n);
    done += n;
  }
}

Secret Expander::expand(util::ByteView info, size_t length) const
{
  Secret out(length);
  expand(info, out.span());
  return out;
}

Secret hkdf(util::ByteView salt, util::ByteView ikm, util::ByteView info, size_t length)
{
  const Secret prk = hkdf_extract(salt, ikm);
  return Expander(prk.span()).expand(info, length);
}

Info& Info::add(util::ByteView field)
{
  if (field.size() > 0xFFFF) {
    throw Error(Exit::usage, "HKDF info field of {} bytes is too long", field.size());
  }
  util::append_u16be(m_bytes, static_cast<uint16_t>(field.size()));
  m_bytes.insert(m_bytes.end(), field.begin(), field.end());
  return *this;
}

Info& Info::add_u64(uint64_t value)
{
  util::Bytes be;
  util::append_u64be(be, value);
  return add(be);
}

void sha256(util::ByteView data, std::span<uint8_t, 32> out)
{
  init();
  crypto_hash_sha256(out.data(), data.data(), data.size());
}

} // namespace fleetkey::crypto
