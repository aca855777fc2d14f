#pragma once
// PgStore: the registry on PostgreSQL through libpq (fleetkey-postgresql(7)). Private to
// src/registry: the rest of fleetkey sees registry::Store. Its methods are defined in pg_store.cpp
// (open, migrations, transactions, the audit trail, master keys), pg_records.cpp (devices, users,
// grants), pg_tokens.cpp (revocations, what token verification reads), pg_state.cpp (counters,
// state sequence numbers) and pg_bulk.cpp (the bulk import); shared helpers in pg_rows.hpp.

#include "registry/pg_conn.hpp"

#include <fleetkey/registry/store.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fleetkey::registry::pg {

class PgStore final : public Store
{
public:
  PgStore(Conn conn, std::string location)
      : m_conn(std::move(conn))
      , m_location(std::move(location))
  {
  }
  ~PgStore() override { m_conn.rollback(); }

  std::string_view backend() const override { return "postgresql"; }
  std::string location() const override { return m_location; }

  void begin_write() override;
  void begin_read() override;
  void commit() override;
  void rollback() noexcept override;
  bool in_transaction() const noexcept override { return m_conn.in_transaction(); }
  void reset() override;

  void audit(std::string_view action, std::string_view subject, const nlohmann::json& details) override;
  AuditHead audit_head() override;
  void link_audit_rows();
  void for_each_audit_row(const std::function<void(const AuditChainRow&)>& fn) override;
  void for_each_audit(const AuditFilter& f, const std::function<void(const AuditRecord&)>& fn) override;
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

  void migrate(bool fresh);

  // Which registry the database holds: the marker row, or nothing at all (a new registry).
  void check_and_migrate(OpenMode mode);

private:
  // Hands out the next value of the registry-wide state counter (UPDATE ... RETURNING, inside the
  // write transaction), setting `also` too.
  int64_t raise_counter(std::string_view also);

  std::vector<GrantRecord> grants(const std::string& sql, std::string_view key);

  // Runs a query and hands each row to `fn` without holding every row: a cursor fetched k_fetch_rows
  // at a time, so that `fn` may run queries of its own in between. Outside a transaction, the read
  // takes a snapshot of its own.
  void stream(const std::string& sql, const std::vector<Param>& params,
              const std::function<void(const Result&, int)>& fn);

  Conn m_conn;
  std::string m_location;
  int m_nested_reads = 0;
  bool m_read_only = false;
  uint64_t m_cursors = 0;
};

} // namespace fleetkey::registry::pg
