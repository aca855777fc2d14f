#pragma once
// The SQLite registry: devices, users, grants, revocations, master key versions and the audit
// trail. Schema in schema/NNNN_name.sql. Holds no secret: keys appear only as fingerprints.

#include <fleetkey/registry/records.hpp>
#include <fleetkey/registry/sqlite.hpp>

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace fleetkey::registry {

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
