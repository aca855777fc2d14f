#include "fleet/convert.hpp"
#include "fleet/device_list.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/fleet/key_batch.hpp>
#include <fleetkey/fleet/keys.hpp>
#include <fleetkey/util/bytes.hpp>

#include <nlohmann/json.hpp>
#include <sodium.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <set>

namespace fleetkey::fleet {

namespace {

constexpr size_t k_batch = 2048;

} // namespace

std::vector<Device> read_device_list(Fleet& fleet, const std::string& path)
{
  const DeviceListRules rules{true, Exit::not_found, ": its key is no longer issued", "device_revoked"};
  std::vector<Device> devices;
  for (const auto& d : read_listed_devices(fleet.registry(), path, rules)) {
    devices.push_back(device_of(d));
  }
  return devices;
}

void export_device_keys(Fleet& fleet, std::string_view source, const std::vector<Device>& devices,
                        const std::optional<std::string>& purpose, const DeviceKeyFn& fn)
{
  if (purpose) {
    validate_purpose(*purpose);
  }
  auto& reg = fleet.registry();
  fleet.keyring(); // one unlock (or the agent), before the transaction
  registry::Transaction tx(reg);
  std::map<uint32_t, crypto::MasterDeriver> derivers;
  crypto::Secret keys(k_batch * crypto::k_key_len);
  std::vector<std::string_view> ids;
  std::vector<size_t> slots;
  for (size_t begin = 0; begin < devices.size(); begin += k_batch) {
    const size_t end = std::min(devices.size(), begin + k_batch);
    // One request a master key version in the batch (one in all, unless the fleet was rotated).
    std::map<uint32_t, std::vector<size_t>> by_version;
    for (size_t i = begin; i < end; ++i) {
      by_version[devices[i].key_version].push_back(i - begin);
    }
    crypto::Secret batch((end - begin) * crypto::k_key_len);
    for (const auto& [version, members] : by_version) {
      auto it = derivers.find(version);
      if (it == derivers.end()) {
        it = derivers.try_emplace(version, fleet.master_key(version)).first;
      }
      ids.clear();
      for (const size_t m : members) {
        ids.push_back(devices[begin + m].id);
      }
      it->second.device_keys(ids, std::span(keys.data(), members.size() * crypto::k_key_len));
      for (size_t j = 0; j < members.size(); ++j) {
        std::memcpy(batch.data() + members[j] * crypto::k_key_len, keys.data() + j * crypto::k_key_len,
                    crypto::k_key_len);
      }
    }
    for (size_t i = begin; i < end; ++i) {
      const auto& d = devices[i];
      auto key = crypto::Secret::copy_of(batch.span().subspan((i - begin) * crypto::k_key_len, crypto::k_key_len));
      if (crypto::fingerprint(key.span()) != d.fingerprint) {
        throw Error(Exit::key, "device \"{}\": derived key does not match its registered fingerprint", d.id);
      }
      if (purpose) {
        key = crypto::DeviceDeriver(key).purpose_key(*purpose);
      }
      fn(d, key, crypto::fingerprint(key.span()));
    }
  }
  // One event for the batch, as device import records one: reading the actor and linking the audit chain
  // once a device would cost more than deriving the keys.
  std::vector<std::string_view> sorted;
  sorted.reserve(devices.size());
  for (const auto& d : devices) {
    sorted.emplace_back(d.id);
  }
  std::sort(sorted.begin(), sorted.end());
  crypto_hash_sha256_state digest;
  crypto_hash_sha256_init(&digest);
  for (const auto id : sorted) {
    crypto_hash_sha256_update(&digest, reinterpret_cast<const uint8_t*>(id.data()), id.size());
    crypto_hash_sha256_update(&digest, reinterpret_cast<const uint8_t*>("\n"), 1);
  }
  uint8_t hash[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&digest, hash);
  reg.audit("device.keys.export", source,
            {{"count", devices.size()},
             {"ids_sha256", util::to_hex(hash)},
             {"purpose", purpose ? nlohmann::json(*purpose) : nlohmann::json(nullptr)}});
  tx.commit();
}

} // namespace fleetkey::fleet
