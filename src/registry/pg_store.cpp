// PgStore: the registry on PostgreSQL through libpq (fleetkey-postgresql(7)). Same tables, rows,
// order and exit codes as the SQLite registry; the differences are in how writers take turns (an
// advisory lock held to the end of the write transaction) and how a bulk import travels (COPY
// straight into devices, inside the write transaction).

#include "registry/backends.hpp"
#include "registry/migrations.hpp"
#include "registry/pg_conn.hpp"
#include "registry/pg_reset.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/registry/store.hpp>
#include <fleetkey/util/bytes.hpp>
#include <fleetkey/util/text.hpp>
#include <fleetkey/util/utf8.hpp>

#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <thread>

namespace fleetkey::registry::pg {

namespace {

// The migration whose rows are linked by code after its SQL runs (as Registry::migrate on SQLite).
constexpr int k_audit_chain_schema = 5;
// Every write transaction takes this transaction-scoped advisory lock first: writers take turns,
// on every machine, as SQLite's BEGIN IMMEDIATE makes them. "FKRG", the SQLite application_id.
constexpr std::string_view k_write_lock = "SELECT pg_advisory_xact_lock(1179341383)";
// How long a writer waits for the lock before it gives up, and how often it retries a transient
// failure (serialization failure, deadlock, lock timeout) at the start, with jittered backoff.
constexpr std::string_view k_lock_timeout = "SET LOCAL lock_timeout = '60s'";
constexpr int k_begin_attempts = 6;
// Rows a streaming read fetches at a time (a cursor, so that callbacks may run other queries).
constexpr int k_fetch_rows = 10000;
// Registered ids a bulk import reads at a time to find the ones it must skip.
constexpr int k_window_rows = 20000;

constexpr std::string_view k_device_columns =
    "id, model, labels, key_version, fingerprint, status, pairing_counter, created, revoked, revoke_reason";
constexpr std::string_view k_grant_columns =
    "\"user\", device, role, epoch, status, created, expires, revoked, revoke_reason";
constexpr std::string_view k_master_columns = "version, created, fingerprint, test_key, status, retired";
constexpr std::string_view k_chain_columns = "id, seq, hash, at, actor, action, subject, details";

DeviceRecord read_device(const Result& r, int i)
{
  DeviceRecord d;
  d.id = r.text(i, 0);
  d.model = r.optional_text(i, 1);
  d.labels = nlohmann::json::parse(r.text(i, 2));
  d.key_version = static_cast<uint32_t>(r.integer(i, 3));
  d.fingerprint = r.text(i, 4);
  d.status = r.text(i, 5);
  d.pairing_counter = r.integer(i, 6);
  d.created = r.text(i, 7);
  d.revoked = r.optional_text(i, 8);
  d.revoke_reason = r.optional_text(i, 9);
  return d;
}

GrantRecord read_grant(const Result& r, int i)
{
  GrantRecord g;
  g.user = r.text(i, 0);
  g.device = r.text(i, 1);
  g.role = r.text(i, 2);
  g.epoch = static_cast<uint64_t>(r.integer(i, 3));
  g.status = r.text(i, 4);
  g.created = r.text(i, 5);
  g.expires = r.optional_text(i, 6);
  g.revoked = r.optional_text(i, 7);
  g.revoke_reason = r.optional_text(i, 8);
  return g;
}

MasterKeyRecord read_master(const Result& r, int i)
{
  MasterKeyRecord m;
  m.version = static_cast<uint32_t>(r.integer(i, 0));
  m.created = r.text(i, 1);
  m.fingerprint = r.text(i, 2);
  m.test_key = r.integer(i, 3) != 0;
  m.status = r.text(i, 4);
  m.retired = r.optional_text(i, 5);
  return m;
}

AuditChainRow read_chain_row(const Result& r, int i)
{
  AuditChainRow row;
  row.id = r.integer(i, 0);
  if (!r.is_null(i, 1)) {
    row.seq = r.integer(i, 1);
  }
  row.hash = r.optional_text(i, 2);
  row.at = r.text(i, 3);
  row.actor = r.text(i, 4);
  row.action = r.text(i, 5);
  row.subject = r.text(i, 6);
  row.details = r.text(i, 7);
  return row;
}

// `s`, with each byte that is not part of valid UTF-8 replaced by U+FFFD (nlohmann-json's replace).
std::string valid_utf8(std::string_view s)
{
  if (util::is_valid_utf8(s)) {
    return std::string(s);
  }
  const std::string quoted =
      nlohmann::json(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return nlohmann::json::parse(quoted).get<std::string>();
}

std::string num(int64_t v)
{
  return std::to_string(v);
}

Param opt(const std::optional<std::string>& s)
{
  return s ? Param(std::string_view(*s)) : Param();
}

// COPY's text format: backslash, tab, newline and carriage return escaped.
void copy_field(std::string& out, std::string_view v)
{
  for (const char c : v) {
    switch (c) {
    case '\\':
      out += "\\\\";
      break;
    case '\t':
      out += "\\t";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\r':
      out += "\\r";
      break;
    default:
      out += c;
    }
  }
}

class PgStore;

class PgBulkInsert final : public DeviceBulkInsert
{
public:
  PgBulkInsert(PgStore& store, Conn& conn, uint32_t key_version, std::string created);
  bool registry_was_empty() const override { return m_was_empty; }
  std::optional<Registered> registered(std::string_view id) override;
  void add(const BulkDevice& row) override;
  void flush() override;
  void finish() override;
  uint64_t inserted() const override { return m_inserted; }

private:
  Conn& m_conn;
  uint32_t m_key_version;
  std::string m_created;
  bool m_was_empty = true;
  // Rows encoded for COPY; two buffers, so that one is on its way while the next fills.
  std::string m_buffer;
  std::string m_sending;
  // The window of registered ids that registered() answers from.
  std::vector<std::pair<std::string, Registered>> m_window;
  std::string m_window_from;
  std::optional<std::string> m_window_to;
  bool m_window_valid = false;
  // What every row of this import ends with: key_version, status, pairing_counter, created.
  std::string m_row_end;
  uint64_t m_queued = 0;
  uint64_t m_inserted = 0;

  // Waits for the COPY on its way; a duplicate id (another writer, which the write lock rules out)
  // is exit 4 as on SQLite.
  void wait_sent();
};

class PgStore final : public Store
{
public:
  PgStore(Conn conn, std::string location)
      : m_conn(std::move(conn))
      , m_location(std::move(location))
  {
  }
  ~PgStore() override { m_conn.rollback(); }

  static std::unique_ptr<Store> open(const std::string& location, OpenMode mode);

  std::string_view backend() const override { return "postgresql"; }
  std::string location() const override { return m_location; }

  void begin_write() override
  {
    if (m_conn.in_transaction()) {
      throw Error(Exit::failure, "registry: cannot start a transaction within a transaction");
    }
    for (int attempt = 1;; ++attempt) {
      try {
        m_conn.exec("BEGIN ISOLATION LEVEL READ COMMITTED");
        m_conn.exec(k_lock_timeout);
        m_conn.query(k_write_lock);
        m_read_only = false;
        return;
      } catch (const PgError& e) {
        m_conn.rollback();
        const bool transient = e.sqlstate() == "40001" || e.sqlstate() == "40P01" || e.sqlstate() == "55P03";
        if (!transient || attempt == k_begin_attempts) {
          throw;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50 + randombytes_uniform(200)));
    }
  }

  void begin_read() override
  {
    if (m_conn.in_transaction()) {
      ++m_nested_reads; // inside a (held) write transaction, which already sees one state
      return;
    }
    m_conn.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    m_read_only = true;
  }

  void commit() override
  {
    if (m_nested_reads > 0) {
      --m_nested_reads;
      return;
    }
    if (!m_conn.in_transaction()) {
      return;
    }
    try {
      m_conn.exec("COMMIT");
    } catch (const PgError& e) {
      if (m_conn.connection_lost() && !m_read_only) {
        throw Error(Exit::registry,
                    "registry: lost the connection to the registry {} during COMMIT: whether this command's change "
                    "was committed is unknown (check with fleetkey audit list)",
                    m_location);
      }
      throw;
    }
  }

  void rollback() noexcept override
  {
    m_nested_reads = 0;
    m_conn.rollback();
  }

  bool in_transaction() const noexcept override { return m_conn.in_transaction(); }
  void reset() override { reset_registry(m_conn); } // pg_reset.cpp

  // ---- Audit trail ----
  void audit(std::string_view action, std::string_view subject, const nlohmann::json& details) override
  {
    std::optional<Transaction> own;
    if (!m_conn.in_transaction()) {
      own.emplace(*this);
    }
    // Only the head's seq and hash (and ids): a station role may append to the trail without the
    // right to read it (fleetkey-postgresql(7), ROLES).
    const Result head = m_conn.query("SELECT seq, hash FROM audit WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1");
    const int64_t head_seq = head.rows() == 0 ? 0 : head.integer(0, 0);
    const auto prev = head.rows() == 0 ? std::optional<AuditHash>(AuditHash{})
                                       : audit_hash_from_hex(head.optional_text(0, 1).value_or(""));
    if (!prev) {
      throw Error(Exit::registry, "the audit trail's last row (seq {}) has no valid hash: run fleetkey audit verify",
                  head_seq);
    }
    AuditChainRow row;
    row.at = util::format_time(util::unix_now());
    row.actor = actor();
    row.action = action;
    // PostgreSQL text is UTF-8: a subject that is not (a file name) has each bad byte as U+FFFD, as
    // the details' strings have on both backends.
    row.subject = valid_utf8(subject);
    row.details = details.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    const int64_t seq = head_seq + 1;
    const std::string hash = util::to_hex(audit_link(*prev, seq, row));
    m_conn.query("INSERT INTO audit (id, at, actor, action, subject, details, seq, hash)"
                 " VALUES ((SELECT coalesce(max(id), 0) + 1 FROM audit), $1, $2, $3, $4, $5, $6, $7)",
                 {row.at, row.actor, row.action, row.subject, row.details, num(seq), hash});
    if (own) {
      own->commit();
    }
  }

  AuditHead audit_head() override
  {
    const Result r = m_conn.query("SELECT seq, hash, at FROM audit WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1");
    if (r.rows() == 0) {
      return {0, util::to_hex(AuditHash{}), ""};
    }
    return {r.integer(0, 0), r.optional_text(0, 1).value_or(""), std::string(r.text(0, 2))};
  }

  void link_audit_rows()
  {
    const AuditHead head = audit_head();
    auto prev = audit_hash_from_hex(head.hash);
    if (!prev) {
      throw Error(Exit::registry, "the audit trail's last row (seq {}) has no valid hash", head.seq);
    }
    int64_t seq = head.seq;
    const Result rows =
        m_conn.query(fmt::format("SELECT {} FROM audit WHERE hash IS NULL ORDER BY id", k_chain_columns));
    for (int i = 0; i < rows.rows(); ++i) {
      const AuditChainRow row = read_chain_row(rows, i);
      *prev = audit_link(*prev, ++seq, row);
      m_conn.query("UPDATE audit SET seq = $1, hash = $2 WHERE id = $3", {num(seq), util::to_hex(*prev), num(row.id)});
    }
  }

  void for_each_audit_row(const std::function<void(const AuditChainRow&)>& fn) override
  {
    stream(fmt::format("SELECT {} FROM audit ORDER BY seq IS NOT NULL, seq, id", k_chain_columns), {},
           [&fn](const Result& r, int i) { fn(read_chain_row(r, i)); });
  }

  std::vector<AuditRecord> audit_events(int64_t limit) override
  {
    AuditFilter last;
    last.last = limit;
    std::vector<AuditRecord> out;
    for_each_audit(last, [&out](const AuditRecord& e) { out.push_back(e); });
    return out;
  }

  void for_each_audit(const AuditFilter& f, const std::function<void(const AuditRecord&)>& fn) override
  {
    // As on SQLite: an action, or a prefix ending in '.'; a subject, or the device, audience or token
    // id the details name (details are JSON text, read as jsonb only when a subject is asked for).
    const std::string matching = "SELECT id, at, actor, action, subject, details FROM audit"
                                 " WHERE ($1::text IS NULL OR action = $1"
                                 "  OR (right($1, 1) = '.' AND left(action, length($1)) = $1))"
                                 " AND ($2::text IS NULL OR subject = $2 OR details::jsonb ->> 'device' = $2"
                                 "  OR details::jsonb ->> 'aud' = $2 OR details::jsonb ->> 'token_id' = $2)"
                                 " AND ($3::text IS NULL OR at >= $3)";
    std::vector<Param> params{opt(f.action), opt(f.subject), opt(f.since)};
    const std::string limit = num(f.last);
    if (f.last >= 0) {
      params.emplace_back(limit);
    }
    stream(f.last < 0 ? matching + " ORDER BY id"
                      : "SELECT * FROM (" + matching + " ORDER BY id DESC LIMIT $4::bigint) AS t ORDER BY id",
           params, [&fn](const Result& r, int i) {
             fn({r.integer(i, 0), std::string(r.text(i, 1)), std::string(r.text(i, 2)), std::string(r.text(i, 3)),
                 std::string(r.text(i, 4)), nlohmann::json::parse(r.text(i, 5))});
           });
  }

  int64_t last_audit_id() override
  {
    const Result r = m_conn.query("SELECT coalesce(max(id), 0) FROM audit");
    return r.integer(0, 0);
  }

  std::optional<std::string> audit_action(int64_t id) override
  {
    const Result r = m_conn.query("SELECT action FROM audit WHERE id = $1", {num(id)});
    if (r.rows() == 0) {
      return std::nullopt;
    }
    return std::string(r.text(0, 0));
  }

  // ---- Master key versions ----
  void insert_master_key(const MasterKeyRecord& r) override
  {
    m_conn.query("INSERT INTO master_keys (version, created, fingerprint, test_key, status, retired)"
                 " VALUES ($1, $2, $3, $4, $5, $6)",
                 {num(r.version), r.created, r.fingerprint, num(r.test_key ? 1 : 0), r.status, opt(r.retired)});
  }

  std::vector<MasterKeyRecord> master_keys() override
  {
    const Result r = m_conn.query(fmt::format("SELECT {} FROM master_keys ORDER BY version", k_master_columns));
    std::vector<MasterKeyRecord> out;
    for (int i = 0; i < r.rows(); ++i) {
      out.push_back(read_master(r, i));
    }
    return out;
  }

  std::optional<MasterKeyRecord> master_key(uint32_t version) override
  {
    const Result r =
        m_conn.query(fmt::format("SELECT {} FROM master_keys WHERE version = $1", k_master_columns), {num(version)});
    if (r.rows() == 0) {
      return std::nullopt;
    }
    return read_master(r, 0);
  }

  void set_current_master_key(uint32_t version) override
  {
    m_conn.query("UPDATE master_keys SET status = 'active' WHERE status = 'current'");
    m_conn.query("UPDATE master_keys SET status = 'current' WHERE version = $1", {num(version)});
  }

  void retire_master_key(uint32_t version, std::string_view when) override
  {
    m_conn.query("UPDATE master_keys SET status = 'retired', retired = $1 WHERE version = $2", {when, num(version)});
  }

  // ---- Devices ----
  void insert_device(const DeviceRecord& r) override
  {
    const std::string labels = r.labels.dump();
    m_conn.query(
        "INSERT INTO devices (id, model, labels, key_version, fingerprint, status, pairing_counter, created)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        {r.id, opt(r.model), labels, num(r.key_version), r.fingerprint, r.status, num(r.pairing_counter), r.created});
  }

  std::optional<DeviceRecord> device(std::string_view id) override
  {
    const Result r = m_conn.query(fmt::format("SELECT {} FROM devices WHERE id = $1", k_device_columns), {id});
    if (r.rows() == 0) {
      return std::nullopt;
    }
    return read_device(r, 0);
  }

  void for_each_device(std::string_view status, const std::function<void(const DeviceRecord&)>& fn) override
  {
    stream(fmt::format("SELECT {} FROM devices WHERE $1 = '' OR status = $1 ORDER BY id", k_device_columns), {status},
           [&fn](const Result& r, int i) { fn(read_device(r, i)); });
  }

  void revoke_device(std::string_view id, std::string_view when, std::string_view reason) override
  {
    m_conn.query("UPDATE devices SET status = 'revoked', revoked = $1, revoke_reason = $2"
                 " WHERE id = $3 AND status = 'active'",
                 {when, reason, id});
  }

  std::unique_ptr<DeviceBulkInsert> bulk_insert(uint32_t key_version, std::string created) override
  {
    return std::make_unique<PgBulkInsert>(*this, m_conn, key_version, std::move(created));
  }

  // ---- Users and grants ----
  void insert_user(const UserRecord& r) override
  {
    const std::string labels = r.labels.dump();
    m_conn.query("INSERT INTO users (name, labels, created) VALUES ($1, $2, $3)", {r.name, labels, r.created});
  }

  std::optional<UserRecord> user(std::string_view name) override
  {
    const Result r = m_conn.query("SELECT name, labels, created FROM users WHERE name = $1", {name});
    if (r.rows() == 0) {
      return std::nullopt;
    }
    return UserRecord{std::string(r.text(0, 0)), nlohmann::json::parse(r.text(0, 1)), std::string(r.text(0, 2))};
  }

  void for_each_user(const std::function<void(const UserRecord&)>& fn) override
  {
    stream("SELECT name, labels, created FROM users ORDER BY name", {}, [&fn](const Result& r, int i) {
      fn(UserRecord{std::string(r.text(i, 0)), nlohmann::json::parse(r.text(i, 1)), std::string(r.text(i, 2))});
    });
  }

  std::optional<GrantRecord> grant(std::string_view user, std::string_view device) override
  {
    const Result r = m_conn.query(
        fmt::format("SELECT {} FROM grants WHERE \"user\" = $1 AND device = $2", k_grant_columns), {user, device});
    if (r.rows() == 0) {
      return std::nullopt;
    }
    return read_grant(r, 0);
  }

  std::vector<GrantRecord> grants_of_user(std::string_view user) override
  {
    return grants(fmt::format("SELECT {} FROM grants WHERE \"user\" = $1 ORDER BY device", k_grant_columns), user);
  }

  std::vector<GrantRecord> grants_of_device(std::string_view device) override
  {
    return grants(fmt::format("SELECT {} FROM grants WHERE device = $1 ORDER BY \"user\"", k_grant_columns), device);
  }

  void upsert_grant(const GrantRecord& r) override
  {
    m_conn.query("INSERT INTO grants (\"user\", device, role, epoch, status, created, expires, revoked, revoke_reason)"
                 " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (\"user\", device) DO UPDATE SET role = $3,"
                 " epoch = $4, status = $5, created = $6, expires = $7, revoked = $8, revoke_reason = $9",
                 {r.user, r.device, r.role, num(static_cast<int64_t>(r.epoch)), r.status, r.created, opt(r.expires),
                  opt(r.revoked), opt(r.revoke_reason)});
  }

  // ---- Revocations ----
  void insert_revocation(std::string_view kind, std::optional<std::string> device, std::optional<std::string> user,
                         std::optional<std::string> token_id, std::string_view reason, std::string_view when) override
  {
    m_conn.query("INSERT INTO revocations (id, kind, device, \"user\", token_id, reason, created)"
                 " VALUES ((SELECT coalesce(max(id), 0) + 1 FROM revocations), $1, $2, $3, $4, $5, $6)",
                 {kind, opt(device), opt(user), opt(token_id), reason, when});
  }

  std::optional<TokenRevocation> token_revocation(std::string_view token_id) override
  {
    const Result r = m_conn.query(
        "SELECT token_id, reason, created, token_exp FROM revocations WHERE kind = 'token' AND token_id = $1",
        {token_id});
    if (r.rows() == 0) {
      return std::nullopt;
    }
    TokenRevocation t{std::string(r.text(0, 0)), std::string(r.text(0, 1)), std::string(r.text(0, 2)), std::nullopt,
                      std::nullopt};
    if (!r.is_null(0, 3)) {
      t.token_exp = r.integer(0, 3);
    }
    return t;
  }

  void insert_token_revocation(const TokenRevocation& r) override
  {
    const std::optional<std::string> exp = r.token_exp ? std::optional<std::string>(num(*r.token_exp)) : std::nullopt;
    m_conn.query("INSERT INTO revocations (id, kind, token_id, reason, created, token_exp, device)"
                 " VALUES ((SELECT coalesce(max(id), 0) + 1 FROM revocations), 'token', $1, $2, $3, $4, $5)",
                 {r.token_id, r.reason, r.created, opt(exp), opt(r.device)});
  }

  void for_each_revoked_token(const std::function<void(std::string_view token_id)>& fn) override
  {
    stream("SELECT token_id FROM revocations WHERE kind = 'token' AND token_id IS NOT NULL", {},
           [&fn](const Result& r, int i) { fn(r.text(i, 0)); });
  }

  void for_each_grant_state(
      const std::function<void(std::string_view user, std::string_view device, std::string_view role, uint64_t epoch,
                               std::string_view status, std::string_view expires)>& fn) override
  {
    stream("SELECT \"user\", device, epoch, status, coalesce(expires, ''), role FROM grants", {},
           [&fn](const Result& r, int i) {
             fn(r.text(i, 0), r.text(i, 1), r.text(i, 5), static_cast<uint64_t>(r.integer(i, 2)), r.text(i, 3),
                r.text(i, 4));
           });
  }

  void for_each_user_name(const std::function<void(std::string_view name)>& fn) override
  {
    stream("SELECT name FROM users", {}, [&fn](const Result& r, int i) { fn(r.text(i, 0)); });
  }

  // ---- Counters ----
  int64_t bump_pairing_counter(std::string_view device_id) override
  {
    const Result r =
        m_conn.query("UPDATE devices SET pairing_counter = pairing_counter + 1 WHERE id = $1 RETURNING pairing_counter",
                     {device_id});
    if (r.rows() != 1) {
      throw Error(Exit::not_found, "device \"{}\" is not registered", device_id);
    }
    raise_device_state(device_id); // the lock learns the new counter (fleetkey-state(5))
    return r.integer(0, 0);
  }

  void raise_device_state(std::string_view device) override
  {
    const int64_t counter = raise_counter("");
    m_conn.query("UPDATE devices SET state_seq = $2 WHERE id = $1", {device, num(counter)});
  }

  void raise_global_state() override { raise_counter(", global_seq = counter + 1"); }

  uint64_t device_state_seq(std::string_view device) override
  {
    const Result r = m_conn.query("SELECT greatest(d.state_seq, s.global_seq) FROM devices AS d, state AS s"
                                  " WHERE d.id = $1 AND s.id = 1",
                                  {device});
    if (r.rows() == 0) {
      throw Error(Exit::not_found, "device \"{}\" is not registered", device);
    }
    return static_cast<uint64_t>(r.integer(0, 0));
  }

  void for_each_live_revoked_token(std::string_view device, int64_t at,
                                   const std::function<void(std::string_view token_id)>& fn) override
  {
    stream("SELECT token_id FROM revocations WHERE kind = 'token' AND token_id IS NOT NULL"
           " AND (device = $1 OR device IS NULL) AND (token_exp IS NULL OR token_exp > $2::bigint)",
           {device, num(at)}, [&fn](const Result& r, int i) { fn(r.text(i, 0)); });
  }

  void migrate(bool fresh);

  // Which registry the database holds: the marker row, or nothing at all (a new registry).
  void check_and_migrate(OpenMode mode)
  {
    const Result probe = m_conn.query(
        "SELECT to_regclass('fleetkey_registry') IS NOT NULL, (SELECT count(*) FROM pg_catalog.pg_class AS c"
        " JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace"
        " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f'))");
    const int latest = Store::latest_schema_version();
    if (probe.text(0, 0) != "t") {
      if (probe.integer(0, 1) != 0) {
        throw Error(Exit::registry, "{} is not a fleetkey registry", m_location);
      }
      if (mode != OpenMode::create) {
        throw Error(Exit::registry, "no registry at {} (run fleetkey init, or pass --registry)", m_location);
      }
      migrate(true);
      return;
    }
    const Result marker = m_conn.query("SELECT application_id, schema_version FROM fleetkey_registry WHERE id = 1");
    if (marker.rows() != 1 || marker.integer(0, 0) != k_application_id) {
      throw Error(Exit::registry, "{} is not a fleetkey registry", m_location);
    }
    const int64_t version = marker.integer(0, 1);
    if (version > latest) {
      throw Error(Exit::registry,
                  "registry {} has schema version {}, newer than this fleetkey supports ({}): upgrade fleetkey",
                  m_location, version, latest);
    }
    if (version < latest) {
      // Only then take the write lock: read-only commands must not queue behind a running import.
      migrate(false);
    }
  }

private:
  // Hands out the next value of the registry-wide state counter (UPDATE ... RETURNING, inside the
  // write transaction), setting `also` too.
  int64_t raise_counter(std::string_view also)
  {
    const Result r =
        m_conn.query(fmt::format("UPDATE state SET counter = counter + 1{} WHERE id = 1 RETURNING counter", also));
    if (r.rows() != 1) {
      throw Error(Exit::registry, "registry has no state counter (schema 4 not applied?)");
    }
    return r.integer(0, 0);
  }

  std::vector<GrantRecord> grants(const std::string& sql, std::string_view key)
  {
    const Result r = m_conn.query(sql, {key});
    std::vector<GrantRecord> out;
    for (int i = 0; i < r.rows(); ++i) {
      out.push_back(read_grant(r, i));
    }
    return out;
  }

  // Runs a query and hands each row to `fn` without holding every row: a cursor fetched k_fetch_rows
  // at a time, so that `fn` may run queries of its own in between. Outside a transaction, the read
  // takes a snapshot of its own.
  void stream(const std::string& sql, const std::vector<Param>& params,
              const std::function<void(const Result&, int)>& fn)
  {
    const bool own = !m_conn.in_transaction();
    if (own) {
      m_conn.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    }
    try {
      const std::string cursor = "fleetkey_c" + std::to_string(++m_cursors);
      m_conn.query("DECLARE " + cursor + " NO SCROLL CURSOR FOR " + sql, params);
      const std::string fetch = "FETCH FORWARD " + std::to_string(k_fetch_rows) + " FROM " + cursor;
      for (;;) {
        const Result r = m_conn.query(fetch);
        for (int i = 0; i < r.rows(); ++i) {
          fn(r, i);
        }
        if (r.rows() < k_fetch_rows) {
          break;
        }
      }
      m_conn.exec("CLOSE " + cursor);
    } catch (...) {
      if (own) {
        m_conn.rollback();
      }
      throw;
    }
    if (own) {
      m_conn.exec("COMMIT");
    }
  }

  Conn m_conn;
  std::string m_location;
  int m_nested_reads = 0;
  bool m_read_only = false;
  uint64_t m_cursors = 0;
};

PgBulkInsert::PgBulkInsert(PgStore& store, Conn& conn, uint32_t key_version, std::string created)
    : m_conn(conn)
    , m_key_version(key_version)
    , m_created(std::move(created))
{
  const auto mk = store.master_key(key_version);
  if (!mk || mk->status != "current") {
    throw Error(Exit::key, "master key version {} is not the registry's current version (rotated meanwhile?)",
                key_version);
  }
  const Result any = m_conn.query("SELECT EXISTS (SELECT 1 FROM devices)");
  m_was_empty = any.text(0, 0) != "t";
  m_row_end = "\t" + num(key_version) + "\tactive\t0\t";
  copy_field(m_row_end, m_created);
  m_row_end += '\n';
}

void PgBulkInsert::wait_sent()
{
  try {
    m_conn.wait_copy();
  } catch (const PgError& e) {
    if (e.sqlstate() == "23505") {
      throw Error(Exit::conflict, "a device of this import was registered by another writer meanwhile: {}", e.message())
          .with_reason("exists");
    }
    throw;
  }
}

std::optional<DeviceBulkInsert::Registered> PgBulkInsert::registered(std::string_view id)
{
  // One round trip a row would cost more than the import itself. The import asks in id order, so
  // the registry's ids are read a window at a time from the id asked for on: a window answers for
  // every id up to its last one (or every id beyond, when the registry had no more rows). Under
  // the write lock nothing else changes the devices meanwhile.
  if (!m_window_valid || id < m_window_from || (m_window_to && id > *m_window_to)) {
    const Result r = m_conn.query("SELECT id, fingerprint, status = 'active' FROM devices WHERE id >= $1"
                                  " ORDER BY id LIMIT "
                                      + std::to_string(k_window_rows),
                                  {id});
    m_window.clear();
    for (int i = 0; i < r.rows(); ++i) {
      m_window.push_back({std::string(r.text(i, 0)), Registered{std::string(r.text(i, 1)), r.text(i, 2) == "t"}});
    }
    m_window_from = id;
    m_window_to = r.rows() == k_window_rows ? std::optional<std::string>(m_window.back().first) : std::nullopt;
    m_window_valid = true;
  }
  const auto it = std::lower_bound(m_window.begin(), m_window.end(), id,
                                   [](const auto& entry, std::string_view key) { return entry.first < key; });
  if (it == m_window.end() || it->first != id) {
    return std::nullopt;
  }
  return it->second;
}

void PgBulkInsert::add(const BulkDevice& row)
{
  copy_field(m_buffer, row.id);
  m_buffer += '\t';
  if (row.model) {
    copy_field(m_buffer, *row.model);
  } else {
    m_buffer += "\\N";
  }
  m_buffer += '\t';
  copy_field(m_buffer, row.labels);
  m_buffer += '\t';
  copy_field(m_buffer, row.fingerprint);
  m_buffer += m_row_end;
  ++m_queued;
}

void PgBulkInsert::flush()
{
  if (m_queued == 0) {
    return;
  }
  // The rows are copied into m_buffer already; the COPY completes while the caller derives more.
  wait_sent();
  m_sending.swap(m_buffer);
  m_buffer.clear();
  // Straight into devices, inside the write transaction: all or nothing with it. The ids were
  // checked against the registry (registered()) and against each other (the sorted spill) under
  // the write lock, which every writer takes; a staging table would only add a second copy.
  m_conn.copy_in_async(
      "COPY devices (id, model, labels, fingerprint, key_version, status, pairing_counter, created) FROM STDIN",
      m_sending);
  m_inserted += m_queued;
  m_queued = 0;
}

void PgBulkInsert::finish()
{
  flush();
  wait_sent();
}

void PgStore::migrate(bool fresh)
{
  Transaction tx(*this);
  // Read again under the write lock: another process may have created or migrated it meanwhile.
  const Result marker = m_conn.query("SELECT to_regclass('fleetkey_registry') IS NOT NULL");
  int64_t current = 0;
  if (marker.text(0, 0) == "t") {
    current = m_conn.query("SELECT schema_version FROM fleetkey_registry").integer(0, 0);
    fresh = false;
  } else if (!fresh) {
    throw Error(Exit::registry, "{} is not a fleetkey registry", m_location);
  }
  bool changed = false;
  for (const auto& m : pg_migrations()) {
    if (m.version > current) {
      m_conn.exec(m.sql);
      if (m.version == k_audit_chain_schema) {
        link_audit_rows();
      }
      changed = true;
    }
  }
  if (!changed) {
    return;
  }
  if (pg_migrations().back().version != Store::latest_schema_version()) {
    throw Error(Exit::registry, "this fleetkey has no PostgreSQL dialect of schema version {}",
                Store::latest_schema_version());
  }
  if (fresh) {
    // The mark of a fleetkey registry (SQLite's application_id and user_version, in one row).
    m_conn.exec("CREATE TABLE fleetkey_registry (id BIGINT PRIMARY KEY CHECK (id = 1),"
                " application_id BIGINT NOT NULL, schema_version BIGINT NOT NULL)");
    m_conn.query("INSERT INTO fleetkey_registry (id, application_id, schema_version) VALUES (1, $1, 0)",
                 {num(k_application_id)});
  }
  m_conn.query("UPDATE fleetkey_registry SET schema_version = $1", {num(Store::latest_schema_version())});
  tx.commit();
}

} // namespace

std::unique_ptr<Store> open(const std::string& location, OpenMode mode)
{
  Store::actor(); // a bad $FLEETKEY_ACTOR fails the command here, before it has changed anything
  if (has_password(location)) {
    throw Error(Exit::usage, "the registry location carries a password, which would show in process listings and logs: "
                             "use a password file (PGPASSFILE), a service file (service=NAME), peer or certificate "
                             "authentication (fleetkey-postgresql(7))");
  }
  if (const auto err = conninfo_error(location)) {
    throw Error(Exit::usage, "bad PostgreSQL registry location: {}", *err);
  }
  auto store = std::make_unique<PgStore>(Conn(location, location), location);
  store->check_and_migrate(mode);
  return store;
}

} // namespace fleetkey::registry::pg

namespace fleetkey::registry {

std::unique_ptr<Store> open_postgresql(const std::string& location, OpenMode mode)
{
  return pg::open(location, mode);
}

} // namespace fleetkey::registry
