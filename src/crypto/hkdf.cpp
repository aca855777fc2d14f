#include "crypto/sha256_fast.hpp"

#include <fleetkey/crypto/hkdf.hpp>
#include <fleetkey/util/error.hpp>

#include <sodium.h>

#include <algorithm>
#include <cstring>

namespace fleetkey::crypto {

namespace {
constexpr size_t k_fast_info_max = 512;
} // namespace

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
  const auto* keyed = reinterpret_cast<const crypto_auth_hmacsha256_state*>(m_state.data());
  if (info.size() <= k_fast_info_max && keyed->ictx.count == 512 && keyed->octx.count == 512
      && detail::sha256_fast_available()) {
    // The same HMAC from the chaining values after the ipad and opad blocks, on the CPU's SHA
    // instructions: about ten times faster than libsodium's portable SHA-256 for short infos.
    uint8_t msg[k_hash_len + k_fast_info_max + 1];
    uint8_t inner[k_hash_len];
    uint8_t t[k_hash_len];
    size_t done = 0;
    for (uint8_t counter = 1; done < out.size(); ++counter) {
      size_t n = 0;
      if (counter > 1) {
        std::memcpy(msg, t, k_hash_len);
        n = k_hash_len;
      }
      if (!info.empty()) { // memcpy from a null pointer is undefined even for 0 bytes
        std::memcpy(msg + n, info.data(), info.size());
      }
      n += info.size();
      msg[n++] = counter;
      detail::sha256_fast_finish(keyed->ictx.state, 64, util::ByteView(msg, n), inner);
      detail::sha256_fast_finish(keyed->octx.state, 64, inner, t);
      const size_t k = std::min(k_hash_len, out.size() - done);
      std::memcpy(out.data() + done, t, k);
      done += k;
    }
    sodium_memzero(msg, sizeof msg);
    sodium_memzero(inner, sizeof inner);
    sodium_memzero(t, sizeof t);
    return;
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
