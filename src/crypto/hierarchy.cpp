#include "crypto/sha256.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/crypto/keyfile.hpp>

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

MasterDeriver::MasterDeriver(const MasterKey& master_key)
    : m_version(master_key.version)
{
  if (master_key.source) {
    m_keep = master_key.source;
    m_source = m_keep.get();
  } else {
    m_prk.emplace(extract(master_key.key));
  }
}

void MasterDeriver::expand(util::ByteView info, std::span<uint8_t> out) const
{
  if (m_prk) {
    m_prk->expand(info, out);
  } else {
    m_source->expand(m_version, std::span(&info, 1), out.size(), out);
  }
}

Secret MasterDeriver::expand(util::ByteView info, size_t length) const
{
  Secret out(length);
  expand(info, out.span());
  return out;
}

Secret MasterDeriver::device_key(std::string_view device_id) const
{
  return expand(Info("device").add(device_id).bytes(), k_key_len);
}

void MasterDeriver::device_keys(std::span<const std::string_view> device_ids, std::span<uint8_t> out) const
{
  if (out.size() != device_ids.size() * k_key_len) {
    throw Error(Exit::failure, "internal error: device_keys needs 32 bytes a device");
  }
  if (m_prk) {
    for (size_t i = 0; i < device_ids.size(); ++i) {
      device_key(device_ids[i], out.subspan(i * k_key_len).first<k_key_len>());
    }
    return;
  }
  std::vector<util::Bytes> infos;
  std::vector<util::ByteView> views;
  infos.reserve(device_ids.size());
  views.reserve(device_ids.size());
  for (const auto id : device_ids) {
    Info info("device");
    const auto bytes = info.add(id).bytes();
    infos.emplace_back(bytes.begin(), bytes.end());
    views.emplace_back(infos.back());
  }
  m_source->expand(m_version, views, k_key_len, out);
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
  expand(util::ByteView(info, 10 + n), out);
}

Secret MasterDeriver::token_key(std::string_view alg) const
{
  return expand(Info("token").add(alg).bytes(), k_key_len);
}

Secret MasterDeriver::derive(const Info& info, size_t length) const
{
  return expand(info.bytes(), length);
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
