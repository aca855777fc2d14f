#include "crypto/sha256.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/hkdf.hpp>

#include <sodium.h>

#include <algorithm>
#include <cstring>

namespace fleetkey::crypto {

Secret hkdf_extract(util::ByteView salt, util::ByteView ikm)
{
  init();
  static constexpr uint8_t k_zero_salt[k_hash_len] = {};
  if (salt.empty()) {
    salt = k_zero_salt;
  }
  Secret key(sizeof(detail::HmacKey));
  auto* k = reinterpret_cast<detail::HmacKey*>(key.data());
  detail::hmac_init(*k, salt);
  Secret prk(k_hash_len);
  detail::hmac(*k, ikm, {}, {}, prk.data());
  return prk;
}

Expander::Expander(util::ByteView prk)
    : m_state(sizeof(detail::HmacKey))
    , m_work(k_hash_len)
{
  init();
  detail::hmac_init(*reinterpret_cast<detail::HmacKey*>(m_state.data()), prk);
}

void Expander::expand(util::ByteView info, std::span<uint8_t> out) const
{
  if (out.size() > 255 * k_hash_len) {
    throw Error(Exit::failure, "HKDF-Expand output of {} bytes is too long", out.size());
  }
  const auto& key = *reinterpret_cast<const detail::HmacKey*>(m_state.data());
  uint8_t* t = m_work.data();
  size_t done = 0;
  for (uint8_t counter = 1; done < out.size(); ++counter) {
    // T(i) = HMAC(PRK, T(i-1) || info || i), with T(0) empty.
    const util::ByteView prev = counter > 1 ? util::ByteView(t, k_hash_len) : util::ByteView();
    detail::hmac(key, prev, info, util::ByteView(&counter, 1), t);
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
  detail::sha256(data, {}, out.data());
}

} // namespace fleetkey::crypto
