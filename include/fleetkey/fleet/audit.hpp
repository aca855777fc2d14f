#pragma once
// The audit trail read back: every change to the registry, who made it and when, oldest first.

#include <fleetkey/fleet/fleet.hpp>

#include <functional>
#include <optional>
#include <string>

namespace fleetkey::fleet {

struct AuditQuery
{
  std::optional<std::string> action;  // "device.add", or a prefix ending in '.' ("user.")
  std::optional<std::string> subject; // a device id, user name, token id, ...
  std::optional<std::string> since;   // a time as fleetkey reads times: 2026-11-22T10:00:00Z, 2026-11-22, @UNIX
  std::optional<int64_t> last;        // only the last N matching events
};

// Calls `fn` for each matching event, oldest first, without holding them all. Throws
// Error(usage) for an unreadable time or a count below 1.
void list_audit(Fleet& fleet, const AuditQuery& query, const std::function<void(const registry::AuditRecord&)>& fn);

} // namespace fleetkey::fleet
