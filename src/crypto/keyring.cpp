// The master key ring in memory: its versions, the current one, creating and rotating (MK[v] random,
// or derived from the test seed). Its file, payload and encryption, is keyfile.cpp.
#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/crypto/hkdf.hpp>
#include <fleetkey/crypto/keyfile.hpp>
#include <fleetkey/util/bytes.hpp>

#include <algorithm>
#include <string_view>

namespace fleetkey::crypto {

namespace {

constexpr std::string_view k_test_seed_salt = "fleetkey/v1 test-seed";

} // namespace

Keyring Keyring::create(int64_t now, std::optional<Secret> test_seed)
{
  Keyring ring;
  if (test_seed) {
    ring.m_test_seed = std::move(*test_seed);
  }
  ring.m_versions.push_back(ring.make_version(1, now));
  ring.m_current = 1;
  return ring;
}

MasterKey Keyring::make_version(uint32_t version, int64_t now) const
{
  MasterKey mk;
  mk.version = version;
  mk.created = now;
  if (m_test_seed.empty()) {
    mk.key = Secret::random(k_key_len);
  } else {
    // MK[v] = HKDF("fleetkey/v1 test-seed", seed, info("master", v)): the same on every machine.
    mk.key =
        hkdf(util::as_bytes(k_test_seed_salt), m_test_seed.span(), Info("master").add_u64(version).bytes(), k_key_len);
  }
  return mk;
}

const MasterKey& Keyring::rotate(int64_t now)
{
  const uint32_t next = m_versions.back().version + 1;
  m_versions.push_back(make_version(next, now));
  m_current = next;
  return m_versions.back();
}

void Keyring::make_current(uint32_t version)
{
  m_current = get(version).version;
}

const MasterKey& Keyring::get(uint32_t version) const
{
  auto it =
      std::find_if(m_versions.begin(), m_versions.end(), [&](const MasterKey& k) { return k.version == version; });
  if (it == m_versions.end()) {
    throw Error(Exit::not_found, "master key version {} is not in the key file", version);
  }
  return *it;
}

std::string MasterKey::fingerprint() const
{
  return source ? source_fingerprint : crypto::fingerprint(key.span());
}

Keyring Keyring::held_elsewhere(std::vector<MasterKey> versions, uint32_t current, bool test_key)
{
  Keyring ring;
  ring.m_versions = std::move(versions);
  ring.m_current = current;
  ring.m_remote_test = test_key;
  ring.get(current);
  return ring;
}

} // namespace fleetkey::crypto
