#pragma once
// The SQLite registry: devices, users, grants, revocations, master key versions and the audit
// trail. Schema in schema/NNNN_name.sql. Holds no secret: keys appear only as fingerprints.

#include <fleetkey/registry/sqlite.hpp>

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
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

enum class OpenMode { existing, create };

class Registry
{
public:
  // Opens (or creates) the registry, checks application_id and the schema version, applies
  // pending migrations in one transaction, and sets WAL, busy_timeout and foreign keys.
  static Registry open(const std::string& path, OpenMode mode);

  Db& db() { return m_db; }
  // The schema version this binary writes (the highest NNNN in schema/).
  static int latest_schema_version();

  // Appends to the audit trail, linked to the chain's head; call inside the transaction of the
  // change it records (whose write lock keeps concurrent writers' rows in one order). Outside a
  // transaction, it takes its own.
  void audit(std::string_view action, std::string_view subject,
             const nlohmann::json& details = nlohmann::json::object());
  // The row with the highest seq; seq 0 when there is none.
  AuditHead audit_head();
  // Every row in chain order: rows without a seq first (by id), then by seq and id.
  void for_each_audit_row(const std::function<void(const AuditChainRow&)>& fn);
  std::vector<AuditRecord> audit_events(int64_t limit); // the last `limit` events, oldest first
  // The matching events, oldest first, one at a time.
  void for_each_audit(const AuditFilter& filter, const std::function<void(const AuditRecord&)>& fn);

  // Master key versions.
  void insert_master_key(const MasterKeyRecord& r);
  std::vector<MasterKeyRecord> master_keys();
  std::optional<MasterKeyRecord> master_key(uint32_t version);
  void set_current_master_key(uint32_t version);
  void retire_master_key(uint32_t version, std::string_view when);

  // Devices.
  void insert_device(const DeviceRecord& r);
  std::optional<DeviceRecord> device(std::string_view id);
  // Streams rows in id order without holding them all; `status` empty means every device.
  void for_each_device(std::string_view status, const std::function<void(const DeviceRecord&)>& fn);
  void revoke_device(std::string_view id, std::string_view when, std::string_view reason);

  // Users and grants.
  void insert_user(const UserRecord& r);
  std::optional<UserRecord> user(std::string_view name);
  void for_each_user(const std::function<void(const UserRecord&)>& fn);
  std::optional<GrantRecord> grant(std::string_view user, std::string_view device);
  std::vector<GrantRecord> grants_of_user(std::string_view user);
  // Every grant row on a device, in user order: who can open it, and who could.
  std::vector<GrantRecord> grants_of_device(std::string_view device);
  void upsert_grant(const GrantRecord& r);

  void insert_revocation(std::string_view kind, std::optional<std::string> device, std::optional<std::string> user,
                         std::optional<std::string> token_id, std::string_view reason, std::string_view when);

  // Who the audit trail names: $FLEETKEY_ACTOR, else the login name of the effective user.
  static std::string actor();

private:
  explicit Registry(Db db)
      : m_db(std::move(db))
  {
  }
  void migrate(bool fresh);
  // Links the rows that have no hash yet, in id order, after the chain's head (migration 5).
  void link_audit_rows();

  Db m_db;
};

} // namespace fleetkey::registry
