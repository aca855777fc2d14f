#include "fleet/convert.hpp"

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
  const bool from_stdin = path == "-";
  const std::string name = from_stdin ? std::string("stdin") : path;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> owned(from_stdin ? nullptr : std::fopen(path.c_str(), "re"),
                                                        &std::fclose);
  if (!from_stdin && !owned) {
    throw Error(errno == ENOENT ? Exit::not_found : Exit::failure, "cannot read {}: {}", path, std::strerror(errno));
  }
  std::FILE* file = from_stdin ? stdin : owned.get();
  auto& reg = fleet.registry();
  std::vector<Device> devices;
  std::set<std::string, std::less<>> seen;
  size_t line_no = 0;
  std::string text;
  for (bool more = true; more;) {
    text.clear();
    int c = 0;
    // Each line bounded by the longest device id: a file of one huge line costs nothing.
    while ((c = getc_unlocked(file)) != EOF && c != '\n') {
      if (text.size() <= 129) {
        text.push_back(static_cast<char>(c));
      }
    }
    if (c == EOF) {
      if (std::ferror(file) != 0) {
        throw Error(Exit::failure, "cannot read {}: {}", name, std::strerror(errno));
      }
      more = false;
      if (text.empty()) {
        break;
      }
    }
    ++line_no;
    std::string_view line = text;
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    if (line.empty()) {
      continue;
    }
    if (line.size() > 128) {
      throw Error(Exit::usage, "{}:{}: line is longer than 128 bytes (the longest device id)", name, line_no);
    }
    if (!seen.emplace(line).second) {
      throw Error(Exit::usage, "{}:{}: device \"{}\" is listed twice", name, line_no, line);
    }
    auto d = reg.device(line);
    if (!d) {
      throw Error(Exit::not_found, "{}:{}: device \"{}\" is not registered", name, line_no, line);
    }
    if (d->status != "active") {
      throw Error(Exit::conflict, "{}:{}: device \"{}\" is revoked: its key is no longer issued", name, line_no, line)
          .with_reason("device_revoked");
    }
    devices.push_back(device_of(*d));
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
