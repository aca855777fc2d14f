#pragma once
// Registry records to fleet values and back (labels: a JSON object of strings in the registry, a
// sorted map in fleet). Private to src/fleet.

#include <fleetkey/fleet/types.hpp>
#include <fleetkey/registry/records.hpp>

namespace fleetkey::fleet {

Labels labels_of(const nlohmann::json& labels);
nlohmann::json labels_json(const Labels& labels);

Device device_of(const registry::DeviceRecord& r);
User user_of(const registry::UserRecord& r);
GrantInfo grant_of(const registry::GrantRecord& r);
MasterKeyVersion master_key_of(const registry::MasterKeyRecord& r);
AuditEvent audit_event_of(const registry::AuditRecord& r);

class Fleet;
// The registered device `id` as the registry holds it; throws Error(not_found).
registry::DeviceRecord require_device(Fleet& fleet, std::string_view id);
// grant_status and grant_expiry (users.hpp) of a registry row.
std::string_view grant_status(const registry::GrantRecord& grant, int64_t now);
std::optional<int64_t> grant_expiry(const registry::GrantRecord& grant);

} // namespace fleetkey::fleet
