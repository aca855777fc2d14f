// PgStore: the registry on PostgreSQL through libpq (fleetkey-postgresql(7)). Same tables, rows,
// order and exit codes as the SQLite registry; the differences are in how writers take turns (an
// advisory lock held to the end of the write transaction) and how a bulk import travels (COPY
// straight into devices, inside the write transaction).

#include "registry/pg_store.hpp"

#include "registry/backends.hpp"
#include "registry/migrations.hpp"
#include "registry/pg_reset.hpp"
#include "registry/pg_rows.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/util/bytes.hpp>
#include <fleetkey/util/text.hpp>
#include <fleetkey/util/utf8.hpp>

#include <sodium.h>

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

} // namespace

// ---- Transactions ----

void PgStore::reset()
{
  reset_registry(m_conn); // pg_reset.cpp
}

void PgStore::begin_write()
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

void PgStore::begin_read()
{
  if (m_conn.in_transaction()) {
    ++m_nested_reads; // inside a (held) write transaction, which already sees one state
    return;
  }
  m_conn.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  m_read_only = true;
}

void PgStore::commit()
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

void PgStore::rollback() noexcept
{
  m_nested_reads = 0;
  m_conn.rollback();
}

void PgStore::stream(const std::string& sql, const std::vector<Param>& params,
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

// ---- Audit trail ----

void PgStore::audit(std::string_view action, std::string_view subject, const nlohmann::json& details)
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
  row.subject = audit_text(subject); // the same rule on both backends: bad bytes become U+FFFD
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

AuditHead PgStore::audit_head()
{
  const Result r = m_conn.query("SELECT seq, hash, at FROM audit WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1");
  if (r.rows() == 0) {
    return {0, util::to_hex(AuditHash{}), ""};
  }
  return {r.integer(0, 0), r.optional_text(0, 1).value_or(""), std::string(r.text(0, 2))};
}

void PgStore::link_audit_rows()
{
  const AuditHead head = audit_head();
  auto prev = audit_hash_from_hex(head.hash);
  if (!prev) {
    throw Error(Exit::registry, "the audit trail's last row (seq {}) has no valid hash", head.seq);
  }
  int64_t seq = head.seq;
  const Result rows = m_conn.query(fmt::format("SELECT {} FROM audit WHERE hash IS NULL ORDER BY id", k_chain_columns));
  for (int i = 0; i < rows.rows(); ++i) {
    const AuditChainRow row = read_chain_row(rows, i);
    *prev = audit_link(*prev, ++seq, row);
    m_conn.query("UPDATE audit SET seq = $1, hash = $2 WHERE id = $3", {num(seq), util::to_hex(*prev), num(row.id)});
  }
}

void PgStore::for_each_audit_row(const std::function<void(const AuditChainRow&)>& fn)
{
  stream(fmt::format("SELECT {} FROM audit ORDER BY seq IS NOT NULL, seq, id", k_chain_columns), {},
         [&fn](const Result& r, int i) { fn(read_chain_row(r, i)); });
}

void PgStore::for_each_audit(const AuditFilter& f, const std::function<void(const AuditRecord&)>& fn)
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

int64_t PgStore::last_audit_id()
{
  const Result r = m_conn.query("SELECT coalesce(max(id), 0) FROM audit");
  return r.integer(0, 0);
}

std::optional<std::string> PgStore::audit_action(int64_t id)
{
  const Result r = m_conn.query("SELECT action FROM audit WHERE id = $1", {num(id)});
  if (r.rows() == 0) {
    return std::nullopt;
  }
  return std::string(r.text(0, 0));
}

// ---- Master key versions ----

void PgStore::insert_master_key(const MasterKeyRecord& r)
{
  m_conn.query("INSERT INTO master_keys (version, created, fingerprint, test_key, status, retired)"
               " VALUES ($1, $2, $3, $4, $5, $6)",
               {num(r.version), r.created, r.fingerprint, num(r.test_key ? 1 : 0), r.status, opt(r.retired)});
}

std::vector<MasterKeyRecord> PgStore::master_keys()
{
  const Result r = m_conn.query(fmt::format("SELECT {} FROM master_keys ORDER BY version", k_master_columns));
  std::vector<MasterKeyRecord> out;
  for (int i = 0; i < r.rows(); ++i) {
    out.push_back(read_master(r, i));
  }
  return out;
}

std::optional<MasterKeyRecord> PgStore::master_key(uint32_t version)
{
  const Result r =
      m_conn.query(fmt::format("SELECT {} FROM master_keys WHERE version = $1", k_master_columns), {num(version)});
  if (r.rows() == 0) {
    return std::nullopt;
  }
  return read_master(r, 0);
}

void PgStore::set_current_master_key(uint32_t version)
{
  m_conn.query("UPDATE master_keys SET status = 'active' WHERE status = 'current'");
  m_conn.query("UPDATE master_keys SET status = 'current' WHERE version = $1", {num(version)});
}

void PgStore::retire_master_key(uint32_t version, std::string_view when)
{
  m_conn.query("UPDATE master_keys SET status = 'retired', retired = $1 WHERE version = $2", {when, num(version)});
}

// ---- Opening and migrations ----

void PgStore::check_and_migrate(OpenMode mode)
{
  const Result probe =
      m_conn.query("SELECT to_regclass('fleetkey_registry') IS NOT NULL, (SELECT count(*) FROM pg_catalog.pg_class AS c"
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
