#pragma once
// Users, their grants on devices, and the per-device user keys K_user(D, U, e).

#include <fleetkey/fleet/fleet.hpp>
#include <fleetkey/fleet/types.hpp>

#include <optional>
#include <string>
#include <vector>

namespace fleetkey::fleet {

User add_user(Fleet& fleet, const std::string& name, const Labels& labels);

struct UserDetails
{
  User user;
  std::vector<GrantInfo> grants;
};

UserDetails show_user(Fleet& fleet, std::string_view name); // throws Error(not_found)
void list_users(Fleet& fleet, const std::function<void(const User&)>& fn);

// A grant's lifetime when `user grant` is given no --ttl: 30 days (`--ttl never` for none).
inline constexpr int64_t k_default_grant_ttl = 30LL * 24 * 3600;

// The grant's status as of `now` (Unix seconds): "revoked", "expired" (active in the registry,
// past its expiry) or "active".
std::string_view grant_status(const GrantInfo& grant, int64_t now);

// Roles: 1-64 characters of a-z A-Z 0-9 _ . : -
void validate_role(std::string_view role);

struct Grant
{
  GrantInfo grant;
  Device device;
  crypto::Secret user_key; // K_user(D, U, e)
  std::string fingerprint; // of user_key
  bool kept = false;       // an existing grant kept as it was (KeepEpoch::yes)
};

// `user grant --keep-epoch`: an active, unexpired grant with the same role is kept as it is (epoch,
// created, expires), so that re-running a grant does not invalidate the user key and tokens.
enum class KeepEpoch { no, yes };

// The Unix time the grant expires at, if it has an expiry (`expires` as stored).
std::optional<int64_t> grant_expiry(std::string_view user, std::string_view device,
                                    std::optional<std::string_view> expires);
inline std::optional<int64_t> grant_expiry(const GrantInfo& grant)
{
  return grant_expiry(grant.user, grant.device, grant.expires);
}

// Revokes NAME's grant on DEVICE, or every active grant of NAME; each revoked grant's epoch is
// bumped so that the old user key and tokens stop working, and each device's state sequence
// number is raised. Returns the revoked grants.
std::vector<GrantInfo> revoke_user(Fleet& fleet, std::string_view name, const std::optional<std::string>& device,
                                   std::string_view reason);

// K_user(D, U, e) for NAME's active, unexpired grant on DEVICE; records the export in the audit trail.
Grant export_user_key(Fleet& fleet, std::string_view name, std::string_view device);

} // namespace fleetkey::fleet
