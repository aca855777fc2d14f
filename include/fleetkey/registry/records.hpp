#pragma once
// The registry's records: plain values that cross the registry interface (store.hpp), the same
// for every backend. They hold no secret: keys appear only as fingerprints.

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fleetkey::registry {

// "FKRG": marks an SQLite file as a fleetkey registry (PRAGMA application_id).
inline constexpr int64_t k_application_id = 0x464B5247;

struct MasterKeyRecord
{
  uint32_t version = 0;
  std::string created;
  std::string fingerprint;
  bool test_key = false;
  std::string status; // current, active or retired
  std::optional<std::string> retired;
};

struct DeviceRecord
{
  std::string id;
  std::optional<std::string> model;
  nlohmann::json labels = nlohmann::json::object();
  uint32_t key_version = 0;
  std::string fingerprint;
  std::string status = "active";
  int64_t pairing_counter = 0;
  std::string created;
  std::optional<std::string> revoked;
  std::optional<std::string> revoke_reason;
};

struct UserRecord
{
  std::string name;
  nlohmann::json labels = nlohmann::json::object();
  std::string created;
};

struct GrantRecord
{
  std::string user;
  std::string device;
  std::string role;
  uint64_t epoch = 1;
  std::string status = "active";
  std::string created;
  std::optional<std::string> expires;
  std::optional<std::string> revoked;
  std::optional<std::string> revoke_reason;
};

struct AuditRecord
{
  int64_t id = 0;
  std::string at;
  std::string actor;
  std::string action;
  std::string subject;
  nlohmann::json details;
};

// The audit chain (fleetkey-formats(5), AUDIT CHAIN): row n carries seq = n and
//   hash(n) = SHA-256(k_audit_domain || hash(n-1) || u64be(n) || f(at) || f(actor) || f(action)
//                     || f(subject) || f(details)),   f(x) = u32be(len(x)) || x,
// with hash(0) = 32 zero bytes; stored as 64 lower-case hex digits.
inline constexpr std::string_view k_audit_domain = "fleetkey/audit/v1";
using AuditHash = std::array<uint8_t, 32>;

// An audit row as stored, for walking the chain: seq and hash are null only in a row that
// fleetkey did not write.
struct AuditChainRow
{
  int64_t id = 0;
  std::optional<int64_t> seq;
  std::optional<std::string> hash;
  std::string at;
  std::string actor;
  std::string action;
  std::string subject;
  std::string details; // the JSON text as stored
};

// Text as the audit trail stores it, on both backends (its subject; the details' strings alike):
// each byte that is not part of valid UTF-8 becomes U+FFFD (fleetkey-formats(5), AUDIT EVENTS).
std::string audit_text(std::string_view s);

// hash(seq) of `row`'s contents, given hash(seq - 1).
AuditHash audit_link(const AuditHash& prev, int64_t seq, const AuditChainRow& row);

// 64 lower-case hex digits, read back; nullopt for anything else.
std::optional<AuditHash> audit_hash_from_hex(std::string_view hex);

// The chain's last row.
struct AuditHead
{
  int64_t seq = 0; // 0 and hash(0) for an empty trail
  std::string hash;
  std::string at;
};

// Which audit events to read; unset fields match everything.
struct AuditFilter
{
  std::optional<std::string> action; // an action ("device.add"), or a prefix ending in '.' ("device.")
  std::optional<std::string> subject;
  std::optional<std::string> since; // "YYYY-MM-DDTHH:MM:SSZ": events at or after it
  int64_t last = -1;                // only the last N matching events; -1 for all
};

// A revoked token.
struct TokenRevocation
{
  std::string token_id;
  std::string reason;
  std::string created;
  std::optional<int64_t> token_exp;
  std::optional<std::string> device; // the registered device the token was for, when known
};

enum class OpenMode { existing, create };

} // namespace fleetkey::registry
