#include "fleet/convert.hpp"

namespace fleetkey::fleet {

Labels labels_of(const nlohmann::json& labels)
{
  Labels out;
  for (const auto& [k, v] : labels.items()) {
    out.emplace(k, v.get<std::string>()); // device add, user add and import store strings only
  }
  return out;
}

nlohmann::json labels_json(const Labels& labels)
{
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [k, v] : labels) {
    out[k] = v;
  }
  return out;
}

Device device_of(const registry::DeviceRecord& r)
{
  return {r.id,     r.model,           labels_of(r.labels), r.key_version, r.fingerprint,
          r.status, r.pairing_counter, r.created,           r.revoked,     r.revoke_reason};
}

User user_of(const registry::UserRecord& r)
{
  return {r.name, labels_of(r.labels), r.created};
}

GrantInfo grant_of(const registry::GrantRecord& r)
{
  return {r.user, r.device, r.role, r.epoch, r.status, r.created, r.expires, r.revoked, r.revoke_reason};
}

MasterKeyVersion master_key_of(const registry::MasterKeyRecord& r)
{
  return {r.version, r.created, r.fingerprint, r.test_key, r.status, r.retired};
}

AuditEvent audit_event_of(const registry::AuditRecord& r)
{
  return {r.id, r.at, r.actor, r.action, r.subject, r.details};
}

} // namespace fleetkey::fleet
