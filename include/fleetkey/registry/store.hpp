#pragma once
// The registry's interface: everything the domain layer (src/fleet) asks of a registry. Two
// implementations: SqliteStore (embedded, the default: a file path) and PgStore (PostgreSQL through
// libpq: a postgresql:// or postgres:// URI, or a libpq service). src/fleet sees only this header
// and the record types; no SQL and no backend type leaves src/registry. Holds no secret.
//
// Every method throws fleetkey::Error (Exit::registry for a backend failure, with the backend's
// message on one line). Writes happen inside a write Transaction; reads may run outside one.

#include <fleetkey/registry/records.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace fleetkey::registry {

// A device row for a bulk import; the views stay valid until the next flush().
struct BulkDevice
{
  std::string_view id;
  std::optional<std::string_view> model;
  std::string_view labels; // JSON object text, canonical (sorted keys, no spaces)
  std::string_view fingerprint;
};

// A bulk import of devices inside the caller's write transaction: rows are queued and written in
// chunks (SQLite: a reused multi-row INSERT; PostgreSQL: COPY straight into devices, one batch on
// its way while the next is derived). Duplicates against the registry are found with registered()
// before add(); a duplicate that slips through (another writer) fails flush() or finish() with
// Exit::conflict.
class DeviceBulkInsert
{
public:
  virtual ~DeviceBulkInsert() = default;
  // Whether the registry held any device when the import began (in the caller's transaction).
  virtual bool registry_was_empty() const = 0;
  struct Registered
  {
    std::string fingerprint;
    bool active = false;
  };
  // A point lookup of an id already in the registry (not of rows queued by this import).
  virtual std::optional<Registered> registered(std::string_view id) = 0;
  // Queues a row.
  virtual void add(const BulkDevice& row) = 0;
  // Hands the queued rows to the backend; call before the strings they point to go away.
  virtual void flush() = 0;
  // Completes the import inside the transaction (PostgreSQL: waits for the last COPY); the caller
  // then writes the audit row and commits.
  virtual void finish() = 0;
  virtual uint64_t inserted() const = 0;
};

// What Store::copy copied.
struct CopySummary
{
  std::string from; // locations as given (never with a password: such a location is refused)
  std::string to;
  std::string from_backend; // "sqlite" or "postgresql"
  std::string to_backend;
  uint64_t master_keys = 0;
  uint64_t devices = 0;
  uint64_t users = 0;
  uint64_t grants = 0;
  uint64_t revocations = 0;
  uint64_t audit = 0; // rows copied, not counting the registry.copy row the copy appends
};

class Store
{
public:
  virtual ~Store() = default;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Opens (or creates) the registry at `location`: a postgresql:// or postgres:// URI, or
  // "service=NAME", selects PostgreSQL; anything else is an SQLite file path. Checks that it is a
  // fleetkey registry (exit 6 if not) whose schema is not newer than this binary, and applies pending
  // migrations in one transaction. A URI carrying a password is refused (exit 2) with the
  // alternatives (PGPASSFILE, a service file, peer or certificate authentication).
  static std::unique_ptr<Store> open(const std::string& location, OpenMode mode);
  // Whether `location` names a PostgreSQL registry.
  static bool is_postgresql(std::string_view location);
  // The schema version this binary writes (the highest NNNN in schema/).
  static int latest_schema_version();
  // Who the audit trail names: $FLEETKEY_ACTOR, else the login name of the effective user.
  static std::string actor();
  // fleetkey registry copy (src/registry/pg_copy.cpp): every row of the registry at `from` (which must
  // exist; it is migrated to this binary's schema first, as any command would) into a new registry at
  // `to`, on either backend: an SQLite path that must not exist, or a PostgreSQL database with no
  // table (Exit::conflict otherwise). One transaction on the target; a new SQLite file is removed on
  // failure. The target's audit trail is the source's, row for row with the same seq and hash, plus
  // one "registry.copy" row linked to it.
  static CopySummary copy(const std::string& from, const std::string& to);

  virtual std::string_view backend() const = 0; // "sqlite" or "postgresql"
  // Where the registry is, for messages: the path, or the URI (never a password).
  virtual std::string location() const = 0;

  // ---- Transactions (use the RAII classes below) ----
  // A write transaction serialises with every other writer, whatever the machine: SQLite's BEGIN
  // IMMEDIATE; on PostgreSQL a transaction-scoped advisory lock taken first. The audit chain orders
  // every change, so writers take turns anyway, and fleetkey writers never meet a serialization
  // failure or a deadlock among themselves; transient failures at the start are retried with
  // bounded jittered backoff inside begin_write.
  virtual void begin_write() = 0;
  // A read snapshot: every query until commit() sees one state of the registry.
  virtual void begin_read() = 0;
  virtual void commit() = 0;
  virtual void rollback() noexcept = 0;
  virtual bool in_transaction() const noexcept = 0;

  // From now on a Transaction's commit() leaves the transaction open, and later Transactions join
  // it, until commit_held(): a command commits only once its output is delivered. Destruction of the
  // Store, or a failure anywhere, rolls everything back.
  void hold_commits() noexcept { m_hold = true; }
  bool holding() const noexcept { return m_hold; }
  void commit_held();

  // ---- Audit trail ----
  // Appends to the audit trail, linked to the chain's head; call inside the transaction of the
  // change it records. Outside a transaction, it takes its own.
  virtual void audit(std::string_view action, std::string_view subject,
                     const nlohmann::json& details = nlohmann::json::object()) = 0;
  virtual AuditHead audit_head() = 0;
  // Every row in chain order: rows without a seq first (by id), then by seq and id.
  virtual void for_each_audit_row(const std::function<void(const AuditChainRow&)>& fn) = 0;
  std::vector<AuditRecord> audit_events(int64_t limit); // the last `limit`, oldest first (for_each_audit)
  virtual void for_each_audit(const AuditFilter& filter, const std::function<void(const AuditRecord&)>& fn) = 0;
  // The id of the newest audit row (0 when none), and the action of row `id`: the master key
  // file's pending-rename protocol (src/fleet/master.cpp) names files after audit rows.
  virtual int64_t last_audit_id() = 0;
  virtual std::optional<std::string> audit_action(int64_t id) = 0;

  // ---- Master key versions ----
  virtual void insert_master_key(const MasterKeyRecord& r) = 0;
  virtual std::vector<MasterKeyRecord> master_keys() = 0;
  virtual std::optional<MasterKeyRecord> master_key(uint32_t version) = 0;
  virtual void set_current_master_key(uint32_t version) = 0;
  virtual void retire_master_key(uint32_t version, std::string_view when) = 0;

  // ---- Devices ----
  virtual void insert_device(const DeviceRecord& r) = 0;
  virtual std::optional<DeviceRecord> device(std::string_view id) = 0;
  // Streams rows in id order (bytewise) without holding them all; `status` empty means every device.
  virtual void for_each_device(std::string_view status, const std::function<void(const DeviceRecord&)>& fn) = 0;
  virtual void revoke_device(std::string_view id, std::string_view when, std::string_view reason) = 0;
  // Bulk import into the current write transaction; `key_version` must be the current master version
  // (else Exit::key). `created` applies to every row.
  virtual std::unique_ptr<DeviceBulkInsert> bulk_insert(uint32_t key_version, std::string created) = 0;

  // ---- Users and grants ----
  virtual void insert_user(const UserRecord& r) = 0;
  virtual std::optional<UserRecord> user(std::string_view name) = 0;
  virtual void for_each_user(const std::function<void(const UserRecord&)>& fn) = 0; // name order
  virtual std::optional<GrantRecord> grant(std::string_view user, std::string_view device) = 0;
  virtual std::vector<GrantRecord> grants_of_user(std::string_view user) = 0;     // device order
  virtual std::vector<GrantRecord> grants_of_device(std::string_view device) = 0; // user order
  virtual void upsert_grant(const GrantRecord& r) = 0;

  // ---- Revocations ----
  virtual void insert_revocation(std::string_view kind, std::optional<std::string> device,
                                 std::optional<std::string> user, std::optional<std::string> token_id,
                                 std::string_view reason, std::string_view when) = 0;
  virtual std::optional<TokenRevocation> token_revocation(std::string_view token_id) = 0;
  virtual void insert_token_revocation(const TokenRevocation& r) = 0;
  // For loading a verifier once per batch (token verify -): every revoked token id, every grant's
  // state ("" expires for none), every user name.
  virtual void for_each_revoked_token(const std::function<void(std::string_view token_id)>& fn) = 0;
  virtual void for_each_grant_state(
      const std::function<void(std::string_view user, std::string_view device, std::string_view role, uint64_t epoch,
                               std::string_view status, std::string_view expires)>& fn) = 0;
  virtual void for_each_user_name(const std::function<void(std::string_view name)>& fn) = 0;

  // ---- Counters: handed out inside the write transaction (never the same value twice) ----
  // Adds one to the device's pairing counter and returns the new value (Exit::not_found if unknown).
  virtual int64_t bump_pairing_counter(std::string_view device_id) = 0;
  // State sequence numbers (fleetkey-state(5)): seq(D) = max(device's state_seq, global_seq), both
  // set from one registry-wide counter that only goes up.
  virtual void raise_device_state(std::string_view device) = 0;
  virtual void raise_global_state() = 0;
  virtual uint64_t device_state_seq(std::string_view device) = 0;
  // Revoked token ids for `device`, or revoked with no known device, whose exp is unknown or later
  // than `at` (Unix seconds); in no particular order.
  virtual void for_each_live_revoked_token(std::string_view device, int64_t at,
                                           const std::function<void(std::string_view token_id)>& fn) = 0;

  // ---- Maintenance ----
  // After a master key change: SQLite truncates its WAL so that a copy of the directory is whole;
  // PostgreSQL does nothing.
  virtual void checkpoint() {}
  // init --force where the registry is not a file (PostgreSQL, src/registry/pg_reset.cpp): inside the
  // caller's write transaction, removes every row, the audit trail's too, and sets the counters back,
  // so that the registry is as a new one at this binary's schema; the privileges granted on its tables
  // stay. All or nothing with the transaction. SQLite's init replaces the file instead: there this
  // throws Exit::failure.
  virtual void reset();

protected:
  Store() = default;

private:
  bool m_hold = false;
};

// A write transaction: begin_write() on construction (or joins a held one, Store::hold_commits),
// rolled back on destruction unless commit() was called.
class Transaction
{
public:
  explicit Transaction(Store& store);
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();
  void commit();

private:
  Store& m_store;
  bool m_done = false;
};

// A read snapshot for its lifetime (begin_read / commit).
class ReadSnapshot
{
public:
  explicit ReadSnapshot(Store& store);
  ReadSnapshot(const ReadSnapshot&) = delete;
  ReadSnapshot& operator=(const ReadSnapshot&) = delete;
  ~ReadSnapshot();

private:
  Store& m_store;
};

} // namespace fleetkey::registry
