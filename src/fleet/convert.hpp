#pragma once
// Private to src/fleet: registry records to fleet values and back (labels: a JSON object of
// strings in the registry, a sorted map in fleet), and the steps of src/fleet that work on records.

#include <fleetkey/crypto/secret.hpp>
#include <fleetkey/fleet/types.hpp>
#include <fleetkey/fleet/users.hpp>
#include <fleetkey/registry/store.hpp>

namespace fleetkey::fleet {

Labels labels_of(const nlohmann::json& labels);
nlohmann::json labels_json(const Labels& labels);

Device device_of(const registry::DeviceRecord& r);
User user_of(const registry::UserRecord& r);
GrantInfo grant_of(const registry::GrantRecord& r);
MasterKeyVersion master_key_of(const registry::MasterKeyRecord& r);
AuditEvent audit_event_of(const registry::AuditRecord& r);

// The registered device `id` as the registry holds it; throws Error(not_found).
registry::DeviceRecord require_device(Fleet& fleet, std::string_view id);
// K_dev(D) under the master key version the device was registered with; checks the registered
// fingerprint.
crypto::Secret derive_device_key(Fleet& fleet, const registry::DeviceRecord& device);
// grant_status and grant_expiry (users.hpp) of a registry row.
std::string_view grant_status(const registry::GrantRecord& grant, int64_t now);
std::optional<int64_t> grant_expiry(const registry::GrantRecord& grant);

// Records (or renews) NAME's grant on DEVICE with ROLE, and its audit row, inside the caller's
// transaction `tx` (which it does not commit), and derives the user key for its epoch. A new grant
// has epoch 1; renewing an active grant bumps its epoch (a revoked grant's was bumped by
// revoke_user), so that the previous user key and every token bound to the old epoch stop working.
// Read the key file (fleet.keyring()) before opening `tx`: a passphrase prompt must not hold the lock.
// `now` (Unix seconds) is the grant's creation time; the caller mints the grant's token at the same.
Grant grant_user(Fleet& fleet, registry::Transaction& tx, std::string_view name, std::string_view device,
                 std::string_view role, std::optional<int64_t> ttl_seconds, int64_t now,
                 KeepEpoch keep = KeepEpoch::no);

// Ends one grant inside the caller's transaction: status revoked, epoch + 1, a revocation row and a
// "user.revoke" audit row (`details` added to it). Does not raise the device's state seq.
void end_grant(registry::Store& reg, registry::GrantRecord& grant, std::string_view reason, std::string_view when,
               const nlohmann::json& details = nlohmann::json::object());

// Empty if the key ring is the one the registry's master key versions were made with, version by
// version; else what differs ("version 2 is missing", "version 1 has another fingerprint").
std::string keyring_mismatch(const std::vector<registry::MasterKeyRecord>& records, const crypto::Keyring& ring);

} // namespace fleetkey::fleet
