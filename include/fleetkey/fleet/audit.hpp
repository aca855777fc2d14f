#pragma once
// The audit trail read back: every change to the registry, who made it and when, oldest first;
// and its hash chain checked (fleetkey-formats(5), AUDIT CHAIN).

#include <fleetkey/fleet/fleet.hpp>
#include <fleetkey/fleet/types.hpp>

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
void list_audit(Fleet& fleet, const AuditQuery& query, const std::function<void(const AuditEvent&)>& fn);

// The chain's head as an operator keeps it elsewhere, to prove later that no row up to it changed
// and none after it was cut off. Text form, one line:
//   fleetkey-audit-checkpoint seq=57 hash=<64 hex digits> at=2026-12-07T06:00:00Z
struct AuditCheckpoint
{
  int64_t seq = 0;
  std::string hash;
  std::string at; // the head row's time; empty for an empty trail
};

std::string format_checkpoint(const AuditCheckpoint& cp); // the line, with its newline
// Reads the text form or the JSON object of `audit checkpoint --json`; throws Error(usage).
AuditCheckpoint parse_checkpoint(std::string_view text);
// Reads a checkpoint from a file, or from stdin for "-"; throws Error(usage).
AuditCheckpoint read_checkpoint(const std::string& path);

enum class AuditProblem { none, changed, deleted, inserted, truncated, rewritten };
std::string_view problem_name(AuditProblem p); // "changed", ...; "" for none

struct AuditVerdict
{
  int64_t rows = 0;     // rows that verified, in chain order
  AuditCheckpoint head; // the last row that verified (seq 0 when none did)
  AuditProblem problem = AuditProblem::none;
  int64_t seq = 0;           // the first bad row's seq (the missing one for deleted and truncated)
  std::optional<int64_t> id; // its id, when the row is there
  std::string detail;        // one line: what is wrong with it
  bool ok() const { return problem == AuditProblem::none; }
};

// Walks the whole chain, in seq order, against `checkpoint` if given; stops at the first bad row.
AuditVerdict verify_audit(Fleet& fleet, const std::optional<AuditCheckpoint>& checkpoint);

// The head of a chain that verifies; throws Error(audit_chain) naming the first bad row otherwise.
AuditCheckpoint audit_checkpoint(Fleet& fleet);

// The one-line message of a failed verdict: "audit chain broken at seq 7 (id 7): changed: ...".
std::string verdict_message(const AuditVerdict& v);

} // namespace fleetkey::fleet
