#include "fleet/convert.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/fleet/devices.hpp>
#include <fleetkey/fleet/keys.hpp>
#include <fleetkey/fleet/users.hpp>
#include <fleetkey/registry/store.hpp>
#include <fleetkey/util/text.hpp>

namespace fleetkey::fleet {

AddedDevice add_device(Fleet& fleet, const DeviceSpec& spec, IfMissing if_missing)
{
  validate_name(spec.id, "device id");
  if (spec.model) {
    validate_name(*spec.model, "model");
  }
  auto& reg = fleet.registry();
  fleet.keyring(); // before the transaction: it may ask for a passphrase
  registry::Transaction tx(reg);
  const auto& mk = fleet.current_master_key(); // inside: serialised with rotate and retire
  if (auto existing = reg.device(spec.id)) {
    if (if_missing == IfMissing::yes) {
      return {device_of(*existing), false};
    }
    throw Error(Exit::conflict, "device \"{}\" is already registered (use --if-missing to skip)", spec.id)
        .with_reason("exists");
  }
  registry::DeviceRecord rec;
  rec.id = spec.id;
  rec.model = spec.model;
  rec.labels = labels_json(spec.labels);
  rec.key_version = mk.version;
  rec.fingerprint = crypto::fingerprint(crypto::MasterDeriver(mk).device_key(spec.id).span());
  rec.created = util::format_time(util::unix_now());
  reg.insert_device(rec);
  reg.audit("device.add", spec.id, {{"key_version", rec.key_version}, {"fingerprint", rec.fingerprint}});
  tx.commit();
  return {device_of(rec), true};
}

registry::DeviceRecord require_device(Fleet& fleet, std::string_view id)
{
  validate_name(id, "device id");
  auto rec = fleet.registry().device(id);
  if (!rec) {
    throw Error(Exit::not_found, "device \"{}\" is not registered", id);
  }
  return std::move(*rec);
}

Device show_device(Fleet& fleet, std::string_view id)
{
  return device_of(require_device(fleet, id));
}

DeviceDetails device_details(Fleet& fleet, std::string_view id)
{
  auto& reg = fleet.registry();
  const auto d = require_device(fleet, id);
  DeviceDetails out{device_of(d), {}, reg.device_state_seq(d.id)};
  for (const auto& g : reg.grants_of_device(d.id)) {
    out.grants.push_back(grant_of(g));
  }
  return out;
}

void list_devices(Fleet& fleet, std::string_view status, const std::function<void(const Device&)>& fn)
{
  if (!status.empty() && status != "active" && status != "revoked") {
    throw Error(Exit::usage, "unknown status \"{}\" (active or revoked)", status);
  }
  fleet.registry().for_each_device(status, [&fn](const registry::DeviceRecord& d) { fn(device_of(d)); });
}

Device revoke_device(Fleet& fleet, std::string_view id, std::string_view reason)
{
  validate_reason(reason);
  auto& reg = fleet.registry();
  registry::Transaction tx(reg);
  auto rec = require_device(fleet, id);
  if (rec.status == "revoked") {
    throw Error(Exit::conflict, "device \"{}\" is already revoked", id).with_reason("already_revoked");
  }
  const auto now = util::format_time(util::unix_now());
  reg.revoke_device(id, now, reason);
  reg.insert_revocation("device", std::string(id), std::nullopt, std::nullopt, reason, now);
  reg.audit("device.revoke", id, {{"reason", reason}});
  // Its grants end with it, in the same transaction: no key or token of them is issued or accepted.
  for (auto& g : reg.grants_of_device(id)) {
    if (g.status == "active") {
      end_grant(reg, g, reason, now, {{"device_revoked", true}});
    }
  }
  reg.raise_device_state(id);
  tx.commit();
  return show_device(fleet, id);
}

crypto::Secret derive_device_key(Fleet& fleet, const registry::DeviceRecord& device)
{
  const auto& mk = fleet.master_key(device.key_version);
  auto key = crypto::MasterDeriver(mk).device_key(device.id);
  if (crypto::fingerprint(key.span()) != device.fingerprint) {
    throw Error(Exit::key, "device \"{}\": derived key does not match its registered fingerprint", device.id);
  }
  return key;
}

DeviceKey export_device_key(Fleet& fleet, std::string_view id, const std::optional<std::string>& purpose)
{
  if (purpose) {
    validate_purpose(*purpose);
  }
  auto rec = require_device(fleet, id);
  if (rec.status == "revoked") {
    throw Error(Exit::conflict, "device \"{}\" is revoked: its key is no longer issued", id)
        .with_reason("device_revoked");
  }
  auto key = derive_device_key(fleet, rec);
  if (purpose) {
    key = crypto::DeviceDeriver(key).purpose_key(*purpose);
  }
  auto fp = crypto::fingerprint(key.span());
  auto& reg = fleet.registry();
  registry::Transaction tx(reg);
  reg.audit("device.key.export", id,
            {{"purpose", purpose ? nlohmann::json(*purpose) : nlohmann::json(nullptr)}, {"fingerprint", fp}});
  tx.commit();
  return {device_of(rec), std::move(key), std::move(fp)};
}

} // namespace fleetkey::fleet
