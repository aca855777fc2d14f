#include "crypto/sha256.hpp"

#include <fleetkey/crypto/hmac.hpp>

namespace fleetkey::crypto {

HmacSha256::HmacSha256(util::ByteView key)
    : m_state(sizeof(detail::HmacKey))
{
  detail::hmac_init(*reinterpret_cast<detail::HmacKey*>(m_state.data()), key);
}

void HmacSha256::mac(util::ByteView data, uint8_t out[k_hmac_sha256_size]) const
{
  detail::hmac(*reinterpret_cast<const detail::HmacKey*>(m_state.data()), data, {}, {}, out);
}

void HmacSha256::mac(util::ByteView a, util::ByteView b, util::ByteView c, uint8_t out[k_hmac_sha256_size]) const
{
  detail::hmac(*reinterpret_cast<const detail::HmacKey*>(m_state.data()), a, b, c, out);
}

bool sha256_extensions_in_use()
{
  return detail::sha256_fast_available();
}

} // namespace fleetkey::crypto
