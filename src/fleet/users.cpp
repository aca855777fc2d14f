#include "fleet/convert.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/fleet/devices.hpp>
#include <fleetkey/fleet/users.hpp>
#include <fleetkey/registry/store.hpp>
#include <fleetkey/util/text.hpp>

namespace fleetkey::fleet {

namespace {

registry::UserRecord require_user(registry::Store& reg, std::string_view name)
{
  validate_name(name, "user name");
  auto rec = reg.user(name);
  if (!rec) {
    throw Error(Exit::not_found, "user \"{}\" does not exist", name);
  }
  return std::move(*rec);
}

} // namespace

User add_user(Fleet& fleet, const std::string& name, const Labels& labels)
{
  validate_name(name, "user name");
  auto& reg = fleet.registry();
  registry::Transaction tx(reg);
  if (reg.user(name)) {
    throw Error(Exit::conflict, "user \"{}\" already exists", name).with_reason("exists");
  }
  registry::UserRecord rec{name, labels_json(labels), util::format_time(util::unix_now())};
  reg.insert_user(rec);
  reg.audit("user.add", name);
  tx.commit();
  return user_of(rec);
}

UserDetails show_user(Fleet& fleet, std::string_view name)
{
  auto& reg = fleet.registry();
  UserDetails out{user_of(require_user(reg, name)), {}};
  for (const auto& g : reg.grants_of_user(name)) {
    out.grants.push_back(grant_of(g));
  }
  return out;
}

void list_users(Fleet& fleet, const std::function<void(const User&)>& fn)
{
  fleet.registry().for_each_user([&fn](const registry::UserRecord& u) { fn(user_of(u)); });
}

void validate_role(std::string_view role)
{
  if (role.empty() || role.size() > 64
      || role.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-")
             != std::string_view::npos) {
    throw Error(Exit::usage, "role \"{}\" must be 1 to 64 characters of a-z A-Z 0-9 _ . : -", role);
  }
}

namespace {

std::string_view status_at(std::string_view status, std::optional<int64_t> expiry, int64_t now)
{
  if (status != "active") {
    return "revoked";
  }
  if (expiry && now >= *expiry) {
    return "expired";
  }
  return "active";
}

} // namespace

std::string_view grant_status(const registry::GrantRecord& grant, int64_t now)
{
  return status_at(grant.status, grant_expiry(grant), now);
}

std::string_view grant_status(const GrantInfo& grant, int64_t now)
{
  return status_at(grant.status, grant_expiry(grant), now);
}

std::optional<int64_t> grant_expiry(const registry::GrantRecord& grant)
{
  return grant_expiry(grant.user, grant.device, grant.expires);
}

std::optional<int64_t> grant_expiry(std::string_view user, std::string_view device,
                                    std::optional<std::string_view> expires)
{
  if (!expires) {
    return std::nullopt;
  }
  const auto t = util::parse_time(*expires);
  if (!t) {
    throw Error(Exit::registry, "grant of \"{}\" on device \"{}\": bad expiry time \"{}\" in the registry", user,
                device, *expires);
  }
  return *t;
}

Grant grant_user(Fleet& fleet, registry::Transaction& /*tx*/, std::string_view name, std::string_view device_id,
                 std::string_view role, std::optional<int64_t> ttl_seconds, int64_t now, KeepEpoch keep)
{
  validate_role(role);
  auto& reg = fleet.registry();
  require_user(reg, name);
  auto device = require_device(fleet, device_id);
  if (device.status == "revoked") {
    throw Error(Exit::conflict, "device \"{}\" is revoked", device_id).with_reason("device_revoked");
  }
  const auto device_key = derive_device_key(fleet, device);
  registry::GrantRecord g;
  std::optional<uint64_t> previous_epoch;
  if (auto old = reg.grant(name, device_id)) {
    if (keep == KeepEpoch::yes && old->role == role && grant_status(*old, now) == "active") {
      // Nothing changes: the same epoch's key, and no audit row (the caller's token mint has its own).
      auto key = crypto::DeviceDeriver(device_key).user_key(name, old->epoch);
      auto fp = crypto::fingerprint(key.span());
      return {grant_of(*old), device_of(device), std::move(key), std::move(fp), true};
    }
    g = std::move(*old);
    // A revoked grant's epoch was bumped when it was revoked. An active one (expired or not) is
    // bumped now: whatever the new role or expiry, nothing issued under the old grant stays valid.
    if (g.status == "active") {
      previous_epoch = g.epoch;
      g.epoch += 1;
    }
  }
  g.user = std::string(name);
  g.device = std::string(device_id);
  g.role = std::string(role);
  g.status = "active";
  g.created = util::format_time(now);
  g.expires = ttl_seconds ? std::optional(util::format_time(now + *ttl_seconds)) : std::nullopt;
  g.revoked.reset();
  g.revoke_reason.reset();
  reg.upsert_grant(g);
  nlohmann::json details = {{"device", device_id},
                            {"role", role},
                            {"epoch", g.epoch},
                            {"expires", g.expires ? nlohmann::json(*g.expires) : nlohmann::json(nullptr)}};
  if (previous_epoch) {
    details["replaced_epoch"] = *previous_epoch;
  }
  reg.audit("user.grant", name, details);
  reg.raise_device_state(device_id);
  auto key = crypto::DeviceDeriver(device_key).user_key(name, g.epoch);
  auto fp = crypto::fingerprint(key.span());
  return {grant_of(g), device_of(device), std::move(key), std::move(fp)};
}

std::vector<GrantInfo> revoke_user(Fleet& fleet, std::string_view name, const std::optional<std::string>& device,
                                   std::string_view reason)
{
  validate_reason(reason);
  auto& reg = fleet.registry();
  registry::Transaction tx(reg);
  require_user(reg, name);
  std::vector<registry::GrantRecord> targets;
  if (device) {
    require_device(fleet, *device);
    auto g = reg.grant(name, *device);
    if (!g) {
      throw Error(Exit::not_found, "user \"{}\" has no grant on device \"{}\"", name, *device);
    }
    if (g->status == "revoked") {
      throw Error(Exit::conflict, "user \"{}\"'s grant on device \"{}\" is already revoked", name, *device)
          .with_reason("already_revoked");
    }
    targets.push_back(std::move(*g));
  } else {
    for (auto& g : reg.grants_of_user(name)) {
      if (g.status == "active") {
        targets.push_back(std::move(g));
      }
    }
    if (targets.empty()) {
      if (reg.grants_of_user(name).empty()) {
        throw Error(Exit::not_found, "user \"{}\" has no grant", name);
      }
      throw Error(Exit::conflict, "user \"{}\" has no active grant to revoke", name).with_reason("already_revoked");
    }
  }
  const auto now = util::format_time(util::unix_now());
  for (auto& g : targets) {
    end_grant(reg, g, reason, now);
    reg.raise_device_state(g.device);
  }
  tx.commit();
  std::vector<GrantInfo> out;
  for (const auto& g : targets) {
    out.push_back(grant_of(g));
  }
  return out;
}

void end_grant(registry::Store& reg, registry::GrantRecord& g, std::string_view reason, std::string_view when,
               const nlohmann::json& details)
{
  g.status = "revoked";
  g.epoch += 1;
  g.revoked = std::string(when);
  g.revoke_reason = std::string(reason);
  reg.upsert_grant(g);
  reg.insert_revocation("grant", g.device, g.user, std::nullopt, reason, when);
  nlohmann::json d = {{"device", g.device}, {"reason", reason}, {"new_epoch", g.epoch}};
  d.update(details);
  reg.audit("user.revoke", g.user, d);
}

Grant export_user_key(Fleet& fleet, std::string_view name, std::string_view device_id)
{
  auto& reg = fleet.registry();
  require_user(reg, name);
  auto device = require_device(fleet, device_id);
  auto g = reg.grant(name, device_id);
  if (!g) {
    throw Error(Exit::not_found, "user \"{}\" has no grant on device \"{}\" (use fleetkey user grant)", name,
                device_id);
  }
  if (g->status == "revoked") {
    throw Error(Exit::conflict, "user \"{}\"'s grant on device \"{}\" is revoked", name, device_id)
        .with_reason("grant_revoked");
  }
  if (const auto expiry = grant_expiry(*g); expiry && util::unix_now() >= *expiry) {
    throw Error(Exit::conflict, "grant of \"{}\" on device \"{}\" expired at {} (renew it with fleetkey user grant)",
                name, device_id, *g->expires)
        .with_reason("grant_expired");
  }
  if (device.status == "revoked") {
    throw Error(Exit::conflict, "device \"{}\" is revoked", device_id).with_reason("device_revoked");
  }
  auto key = crypto::DeviceDeriver(derive_device_key(fleet, device)).user_key(name, g->epoch);
  auto fp = crypto::fingerprint(key.span());
  registry::Transaction tx(reg);
  reg.audit("user.key.export", name, {{"device", device_id}, {"epoch", g->epoch}, {"fingerprint", fp}});
  tx.commit();
  return {grant_of(*g), device_of(device), std::move(key), std::move(fp)};
}

} // namespace fleetkey::fleet
