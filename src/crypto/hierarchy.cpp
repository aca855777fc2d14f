#include "crypto/sha256.hpp"

#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/util/error.hpp>

#include <sodium.h>

#include <cstring>

namespace fleetkey::crypto {

namespace {

Expander extract(const Secret& ikm)
{
  const Secret prk = hkdf_extract(util::as_bytes(k_salt), ikm.span());
  return Expander(prk.span());
}

} // namespace

MasterDeriver::MasterDeriver(const Secret& master_key)
    : m_prk(extract(master_key))
{
}

Secret MasterDeriver::device_key(std::string_view device_id) const
{
  return m_prk.expand(Info("device").add(device_id).bytes(), k_key_len);
}

void MasterDeriver::device_key(std::string_view device_id, std::span<uint8_t, k_key_len> out) const
{
  // Built by hand instead of with Info to avoid a heap allocation per device in batches.
  uint8_t info[2 + 6 + 2 + 1024];
  const size_t n = device_id.size();
  if (n > 1024) {
    throw Error(Exit::usage, "device id of {} bytes is too long", n);
  }
  info[0] = 0;
  info[1] = 6;
  std::memcpy(info + 2, "device", 6);
  info[8] = static_cast<uint8_t>(n >> 8);
  info[9] = static_cast<uint8_t>(n);
  std::memcpy(info + 10, device_id.data(), n);
  m_prk.expand(util::ByteView(info, 10 + n), out);
}

Secret MasterDeriver::token_key(std::string_view alg) const
{
  return m_prk.expand(Info("token").add(alg).bytes(), k_key_len);
}

Secret MasterDeriver::derive(const Info& info, size_t length) const
{
  return m_prk.expand(info.bytes(), length);
}

DeviceDeriver::DeviceDeriver(const Secret& device_key)
    : m_prk(extract(device_key))
{
}

Secret DeviceDeriver::user_key(std::string_view user, uint64_t epoch) const
{
  return m_prk.expand(Info("user").add(user).add_u64(epoch).bytes(), k_key_len);
}

Secret DeviceDeriver::purpose_key(std::string_view purpose) const
{
  return m_prk.expand(Info("purpose").add(purpose).bytes(), k_key_len);
}

Secret DeviceDeriver::token_key(std::string_view alg) const
{
  return m_prk.expand(Info("token").add(alg).bytes(), k_key_len);
}

Secret DeviceDeriver::revocation_key() const
{
  return m_prk.expand(Info("revocations").bytes(), k_key_len);
}

Secret DeviceDeriver::pairing_bytes(uint64_t counter, size_t length) const
{
  return m_prk.expand(Info("pairing").add_u64(counter).bytes(), length);
}

Secret DeviceDeriver::derive(const Info& info, size_t length) const
{
  return m_prk.expand(info.bytes(), length);
}

void fingerprint(util::ByteView key, std::span<uint8_t, 16> out)
{
  static constexpr std::string_view k_prefix = "fleetkey/v1 fingerprint";
  uint8_t digest[32];
  detail::sha256(util::as_bytes(k_prefix), key, digest);
  std::memcpy(out.data(), digest, out.size());
}

std::string fingerprint(util::ByteView key)
{
  uint8_t fp[16];
  fingerprint(key, fp);
  return util::to_hex(fp);
}

} // namespace fleetkey::crypto
