#pragma once
// The SQLite registry (the default backend): one file, WAL, one connection per process. Schema in
// schema/NNNN_name.sql. Private to src/registry: the rest of fleetkey sees registry::Store.

#include "registry/sqlite.hpp"

#include <fleetkey/registry/store.hpp>

namespace fleetkey::registry {

class SqliteStore final : public Store
{
public:
  // Opens (or creates) the registry file, checks application_id and the schema version, applies
  // pending migrations in one transaction, and sets WAL, busy_timeout and foreign keys.
  static std::unique_ptr<SqliteStore> open(const std::string& path, OpenMode mode);

  // The connection, for src/registry and its unit tests only.
  Db& db() { return m_db; }

  std::string_view backend() const override { return "sqlite"; }
  std::string location() const override { return m_db.path(); }

  void begin_write() override { m_db.begin_immediate(); }
  void begin_read() override { m_db.exec("BEGIN DEFERRED"); }
  void commit() override { m_db.commit(); }
  void rollback() noexcept override { m_db.rollback(); }
  bool in_transaction() const noexcept override { return m_db.in_transaction(); }

  void audit(std::string_view action, std::string_view subject,
             const nlohmann::json& details = nlohmann::json::object()) override;
  AuditHead audit_head() override;
  void for_each_audit_row(const std::function<void(const AuditChainRow&)>& fn) override;
  void for_each_audit(const AuditFilter& filter, const std::function<void(const AuditRecord&)>& fn) override;
  int64_t last_audit_id() override;
  std::optional<std::string> audit_action(int64_t id) override;

  void insert_master_key(const MasterKeyRecord& r) override;
  std::vector<MasterKeyRecord> master_keys() override;
  std::optional<MasterKeyRecord> master_key(uint32_t version) override;
  void set_current_master_key(uint32_t version) override;
  void retire_master_key(uint32_t version, std::string_view when) override;

  void insert_device(const DeviceRecord& r) override;
  std::optional<DeviceRecord> device(std::string_view id) override;
  void for_each_device(std::string_view status, const std::function<void(const DeviceRecord&)>& fn) override;
  void revoke_device(std::string_view id, std::string_view when, std::string_view reason) override;
  std::unique_ptr<DeviceBulkInsert> bulk_insert(uint32_t key_version, std::string created) override;

  void insert_user(const UserRecord& r) override;
  std::optional<UserRecord> user(std::string_view name) override;
  void for_each_user(const std::function<void(const UserRecord&)>& fn) override;
  std::optional<GrantRecord> grant(std::string_view user, std::string_view device) override;
  std::vector<GrantRecord> grants_of_user(std::string_view user) override;
  std::vector<GrantRecord> grants_of_device(std::string_view device) override;
  void upsert_grant(const GrantRecord& r) override;

  void insert_revocation(std::string_view kind, std::optional<std::string> device, std::optional<std::string> user,
                         std::optional<std::string> token_id, std::string_view reason, std::string_view when) override;
  std::optional<TokenRevocation> token_revocation(std::string_view token_id) override;
  void insert_token_revocation(const TokenRevocation& r) override;
  void for_each_revoked_token(const std::function<void(std::string_view token_id)>& fn) override;
  void for_each_grant_state(
      const std::function<void(std::string_view user, std::string_view device, std::string_view role, uint64_t epoch,
                               std::string_view status, std::string_view expires)>& fn) override;
  void for_each_user_name(const std::function<void(std::string_view name)>& fn) override;

  int64_t bump_pairing_counter(std::string_view device_id) override;
  void raise_device_state(std::string_view device) override;
  void raise_global_state() override;
  uint64_t device_state_seq(std::string_view device) override;
  void for_each_live_revoked_token(std::string_view device, int64_t at,
                                   const std::function<void(std::string_view token_id)>& fn) override;

  // Truncates the WAL, so that a copy of the directory (or the file alone) is whole.
  void checkpoint() override;

private:
  explicit SqliteStore(Db db)
      : m_db(std::move(db))
  {
  }
  void migrate(bool fresh);
  // Links the rows that have no hash yet, in id order, after the chain's head (migration 5).
  void link_audit_rows();
  void raise_counter();

  Db m_db;
};

} // namespace fleetkey::registry
