#pragma once
// Users, their grants on devices, and the per-device user keys K_user(D, U, e).

#include <fleetkey/fleet/fleet.hpp>

#include <optional>
#include <string>
#include <vector>

namespace fleetkey::fleet {

registry::UserRecord add_user(Fleet& fleet, const std::string& name, const nlohmann::json& labels);

struct UserDetails
{
  registry::UserRecord user;
  std::vector<registry::GrantRecord> grants;
};

UserDetails show_user(Fleet& fleet, std::string_view name); // throws Error(not_found)
void list_users(Fleet& fleet, const std::function<void(const registry::UserRecord&)>& fn);

// A grant's lifetime when `user grant` is given no --ttl: 30 days (`--ttl never` for none).
inline constexpr int64_t k_default_grant_ttl = 30LL * 24 * 3600;

// The grant's status as of `now` (Unix seconds): "revoked", "expired" (active in the registry,
// past its expiry) or "active".
std::string_view grant_status(const registry::GrantRecord& grant, int64_t now);

// Roles: 1-64 characters of a-z A-Z 0-9 _ . : -
void validate_role(std::string_view role);

struct Grant
{
  registry::GrantRecord grant;
  registry::DeviceRecord device;
  crypto::Secret user_key; // K_user(D, U, e)
  std::string fingerprint; // of user_key
  bool kept = false;       // an existing grant kept as it was (KeepEpoch::yes)
};

// `user grant --keep-epoch`: an active, unexpired grant with the same role is kept as it is (epoch,
// created, expires), so that re-running a grant does not invalidate the user key and tokens.
enum class KeepEpoch { no, yes };

// Records (or renews) NAME's grant on DEVICE with ROLE, and its audit row, inside the caller's
// transaction `tx` (which it does not commit), and derives the user key for its epoch. A new grant
// has epoch 1; renewing an active grant bumps its epoch (a revoked grant's was bumped by
// revoke_user), so that the previous user key and every token bound to the old epoch stop working.
// Read the key file (fleet.keyring()) before opening `tx`: a passphrase prompt must not hold the lock.
// `now` (Unix seconds) is the grant's creation time; the caller mints the grant's token at the same.
Grant grant_user(Fleet& fleet, registry::Transaction& tx, std::string_view name, std::string_view device,
                 std::string_view role, std::optional<int64_t> ttl_seconds, int64_t now,
                 KeepEpoch keep = KeepEpoch::no);

// The Unix time the grant expires at, if it has an expiry (`expires` as stored).
std::optional<int64_t> grant_expiry(std::string_view user, std::string_view device,
                                    std::optional<std::string_view> expires);
inline std::optional<int64_t> grant_expiry(const registry::GrantRecord& grant)
{
  return grant_expiry(grant.user, grant.device, grant.expires);
}

// Revokes NAME's grant on DEVICE, or every active grant of NAME; each revoked grant's epoch is
// bumped so that the old user key and tokens stop working, and each device's state sequence
// number is raised. Returns the revoked grants.
std::vector<registry::GrantRecord> revoke_user(Fleet& fleet, std::string_view name,
                                               const std::optional<std::string>& device, std::string_view reason);

// Ends one grant inside the caller's transaction: status revoked, epoch + 1, a revocation row and a
// "user.revoke" audit row (`details` added to it). Does not raise the device's state seq.
void end_grant(registry::Store& reg, registry::GrantRecord& grant, std::string_view reason, std::string_view when,
               const nlohmann::json& details = nlohmann::json::object());

// K_user(D, U, e) for NAME's active, unexpired grant on DEVICE; records the export in the audit trail.
Grant export_user_key(Fleet& fleet, std::string_view name, std::string_view device);

} // namespace fleetkey::fleet
