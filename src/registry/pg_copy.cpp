// fleetkey registry copy (Store::copy, include/fleetkey/registry/store.hpp): rows are read and written with each
// backend's own SQL, below the Store interface, because a copy keeps what the interface hides on
// purpose: revocation ids, device state sequence numbers, the state counters and every audit row's
// seq and hash exactly as they are.

#include "registry/pg_conn.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/registry/store.hpp>
#include <fleetkey/util/bytes.hpp>
#include <fleetkey/util/file.hpp>
#include <fleetkey/util/text.hpp>

#include <sqlite3.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace fleetkey::registry::pg {

namespace {

using Row = std::vector<std::optional<std::string>>;

struct Table
{
  std::string_view name;
  std::vector<std::string_view> columns;
  std::string_view order;
  uint64_t CopySummary::*count;
};

// Schema version 5, parents before children (grants name users and devices). The state row is
// copied by an UPDATE of the target's own.
const std::vector<Table>& tables()
{
  static const std::vector<Table> k_tables = {
      {"master_keys",
       {"version", "created", "fingerprint", "test_key", "status", "retired"},
       "version",
       &CopySummary::master_keys},
      {"devices",
       {"id", "model", "labels", "key_version", "fingerprint", "status", "pairing_counter", "created", "revoked",
        "revoke_reason", "state_seq"},
       "id",
       &CopySummary::devices},
      {"users", {"name", "labels", "created"}, "name", &CopySummary::users},
      {"grants",
       {"user", "device", "role", "epoch", "status", "created", "expires", "revoked", "revoke_reason"},
       "\"user\", device",
       &CopySummary::grants},
      {"revocations",
       {"id", "kind", "device", "user", "token_id", "reason", "created", "token_exp"},
       "id",
       &CopySummary::revocations},
      {"audit", {"id", "at", "actor", "action", "subject", "details", "seq", "hash"}, "id", &CopySummary::audit},
  };
  return k_tables;
}

std::string column_list(const Table& t)
{
  std::string out;
  for (const auto c : t.columns) {
    out += out.empty() ? "" : ", ";
    out += fmt::format("\"{}\"", c);
  }
  return out;
}

// ---- SQLite ----

struct SqliteClose
{
  void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
struct SqliteFinalize
{
  void operator()(sqlite3_stmt* st) const noexcept { sqlite3_finalize(st); }
};

class Sqlite
{
public:
  Sqlite(const std::string& path, bool write)
      : m_path(path)
  {
    sqlite3* db = nullptr;
    const int rc = sqlite3_open_v2(path.c_str(), &db, write ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY, nullptr);
    m_db.reset(db);
    if (rc != SQLITE_OK) {
      throw Error(Exit::registry, "cannot open registry {}: {}", path, db != nullptr ? sqlite3_errmsg(db) : "?");
    }
    sqlite3_busy_timeout(db, 10000);
  }

  void exec(const std::string& sql)
  {
    if (sqlite3_exec(m_db.get(), sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
      fail();
    }
  }

  std::unique_ptr<sqlite3_stmt, SqliteFinalize> prepare(const std::string& sql)
  {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(m_db.get(), sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      fail();
    }
    return std::unique_ptr<sqlite3_stmt, SqliteFinalize>(st);
  }

  bool step(sqlite3_stmt* st)
  {
    const int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      return true;
    }
    if (rc != SQLITE_DONE) {
      fail();
    }
    return false;
  }

  [[noreturn]] void fail()
  {
    const int rc = sqlite3_extended_errcode(m_db.get());
    const std::string msg = sqlite3_errmsg(m_db.get());
    throw Error((rc & 0xFF) == SQLITE_CONSTRAINT ? Exit::conflict : Exit::failure, "registry {}: {}", m_path, msg);
  }

  static Row row(sqlite3_stmt* st, size_t n)
  {
    Row r(n);
    for (size_t i = 0; i < n; ++i) {
      const int col = static_cast<int>(i);
      if (sqlite3_column_type(st, col) != SQLITE_NULL) {
        const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st, col));
        r[i] = std::string(p, static_cast<size_t>(sqlite3_column_bytes(st, col)));
      }
    }
    return r;
  }

  void close() { m_db.reset(); }

private:
  std::string m_path;
  std::unique_ptr<sqlite3, SqliteClose> m_db;
};

// ---- Reading and writing either backend ----

class Source
{
public:
  virtual ~Source() = default;
  virtual void rows(const Table& t, const std::function<void(const Row&)>& fn) = 0;
  virtual std::pair<std::string, std::string> state() = 0; // counter, global_seq
};

class Target
{
public:
  virtual ~Target() = default;
  // Whether the new registry holds no row yet (its state row aside).
  virtual bool empty() = 0;
  virtual void put(const Table& t, const Row& r) = 0;
  virtual void end_table(const Table& t) = 0;
  virtual void set_state(const std::string& counter, const std::string& global_seq) = 0;
  virtual void commit() = 0;
};

class SqliteSource final : public Source
{
public:
  explicit SqliteSource(const std::string& path)
      : m_db(path, false)
  {
    m_db.exec("BEGIN"); // one snapshot for every table
  }
  void rows(const Table& t, const std::function<void(const Row&)>& fn) override
  {
    auto st = m_db.prepare(fmt::format("SELECT {} FROM \"{}\" ORDER BY {}", column_list(t), t.name, t.order));
    while (m_db.step(st.get())) {
      fn(Sqlite::row(st.get(), t.columns.size()));
    }
  }
  std::pair<std::string, std::string> state() override
  {
    auto st = m_db.prepare("SELECT counter, global_seq FROM state WHERE id = 1");
    if (!m_db.step(st.get())) {
      throw Error(Exit::registry, "registry has no state counter (schema 4 not applied?)");
    }
    const Row r = Sqlite::row(st.get(), 2);
    return {r[0].value_or("1"), r[1].value_or("1")};
  }

private:
  Sqlite m_db;
};

class PgSource final : public Source
{
public:
  explicit PgSource(const std::string& location)
      : m_conn(location, location)
  {
    m_conn.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  }
  void rows(const Table& t, const std::function<void(const Row&)>& fn) override
  {
    m_conn.query(fmt::format("DECLARE fleetkey_copy NO SCROLL CURSOR FOR SELECT {} FROM \"{}\" ORDER BY {}",
                             column_list(t), t.name, t.order));
    for (;;) {
      const Result res = m_conn.query("FETCH FORWARD 10000 FROM fleetkey_copy");
      for (int i = 0; i < res.rows(); ++i) {
        Row r(t.columns.size());
        for (size_t c = 0; c < r.size(); ++c) {
          r[c] = res.optional_text(i, static_cast<int>(c));
        }
        fn(r);
      }
      if (res.rows() < 10000) {
        break;
      }
    }
    m_conn.exec("CLOSE fleetkey_copy");
  }
  std::pair<std::string, std::string> state() override
  {
    const Result r = m_conn.query("SELECT counter, global_seq FROM state WHERE id = 1");
    if (r.rows() != 1) {
      throw Error(Exit::registry, "registry has no state counter (schema 4 not applied?)");
    }
    return {std::string(r.text(0, 0)), std::string(r.text(0, 1))};
  }

private:
  Conn m_conn;
};

class SqliteTarget final : public Target
{
public:
  explicit SqliteTarget(const std::string& path)
      : m_db(path, true)
  {
    m_db.exec("BEGIN IMMEDIATE");
  }
  bool empty() override
  {
    for (const auto& t : tables()) {
      auto st = m_db.prepare(fmt::format("SELECT EXISTS (SELECT 1 FROM \"{}\")", t.name));
      if (m_db.step(st.get()) && sqlite3_column_int64(st.get(), 0) != 0) {
        return false;
      }
    }
    return true;
  }
  void put(const Table& t, const Row& r) override
  {
    if (m_table != t.name) {
      std::string marks;
      for (size_t i = 0; i < t.columns.size(); ++i) {
        marks += i == 0 ? "?" : ", ?";
      }
      m_insert = m_db.prepare(fmt::format("INSERT INTO \"{}\" ({}) VALUES ({})", t.name, column_list(t), marks));
      m_table = t.name;
    }
    sqlite3_stmt* st = m_insert.get();
    for (size_t i = 0; i < r.size(); ++i) {
      const int index = static_cast<int>(i) + 1;
      if (r[i]) {
        // Text into a column of INTEGER affinity is stored as the integer it spells.
        sqlite3_bind_text(st, index, r[i]->data(), static_cast<int>(r[i]->size()), SQLITE_STATIC);
      } else {
        sqlite3_bind_null(st, index);
      }
    }
    m_db.step(st);
    sqlite3_reset(st);
  }
  void end_table(const Table&) override
  {
    m_insert.reset();
    m_table.clear();
  }
  void set_state(const std::string& counter, const std::string& global_seq) override
  {
    auto st = m_db.prepare("UPDATE state SET counter = ?, global_seq = ? WHERE id = 1");
    sqlite3_bind_text(st.get(), 1, counter.data(), static_cast<int>(counter.size()), SQLITE_STATIC);
    sqlite3_bind_text(st.get(), 2, global_seq.data(), static_cast<int>(global_seq.size()), SQLITE_STATIC);
    m_db.step(st.get());
  }
  void commit() override
  {
    m_db.exec("COMMIT");
    m_db.close();
  }

private:
  Sqlite m_db;
  std::unique_ptr<sqlite3_stmt, SqliteFinalize> m_insert;
  std::string m_table;
};

class PgTarget final : public Target
{
public:
  explicit PgTarget(const std::string& location)
      : m_conn(location, location)
  {
    m_conn.exec("BEGIN");
    m_conn.query("SELECT pg_advisory_xact_lock(1179341383)"); // the write lock of every fleetkey writer
  }
  bool empty() override
  {
    for (const auto& t : tables()) {
      if (m_conn.query(fmt::format("SELECT EXISTS (SELECT 1 FROM \"{}\")", t.name)).text(0, 0) == "t") {
        return false;
      }
    }
    return true;
  }
  void put(const Table&, const Row& r) override
  {
    for (size_t i = 0; i < r.size(); ++i) {
      m_buffer += i == 0 ? "" : "\t";
      if (!r[i]) {
        m_buffer += "\\N";
        continue;
      }
      for (const char c : *r[i]) {
        switch (c) {
        case '\\':
          m_buffer += "\\\\";
          break;
        case '\t':
          m_buffer += "\\t";
          break;
        case '\n':
          m_buffer += "\\n";
          break;
        case '\r':
          m_buffer += "\\r";
          break;
        default:
          m_buffer += c;
        }
      }
    }
    m_buffer += '\n';
    m_rows_in_buffer = true;
  }
  void end_table(const Table& t) override
  {
    if (m_rows_in_buffer) {
      m_conn.copy_in(fmt::format("COPY \"{}\" ({}) FROM STDIN", t.name, column_list(t)), m_buffer);
    }
    m_buffer.clear();
    m_rows_in_buffer = false;
  }
  void set_state(const std::string& counter, const std::string& global_seq) override
  {
    m_conn.query("UPDATE state SET counter = $1::bigint, global_seq = $2::bigint WHERE id = 1", {counter, global_seq});
  }
  void commit() override { m_conn.exec("COMMIT"); }

private:
  Conn m_conn;
  std::string m_buffer;
  bool m_rows_in_buffer = false;
};

void remove_sqlite(const std::string& path)
{
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
    ::unlink((path + suffix).c_str());
  }
}

} // namespace

} // namespace fleetkey::registry::pg

namespace fleetkey::registry {

CopySummary Store::copy(const std::string& from, const std::string& to)
{
  CopySummary s{from, to, Store::is_postgresql(from) ? "postgresql" : "sqlite",
                Store::is_postgresql(to) ? "postgresql" : "sqlite"};
  // Checks the source as every command does (exit 6 for no registry, a newer schema), and brings
  // its schema up to this binary's, so that both ends have the same tables.
  Store::open(from, OpenMode::existing).reset();
  const bool new_file = !Store::is_postgresql(to);
  if (new_file && util::exists(to)) {
    throw Error(Exit::conflict, "{} already exists (registry copy makes a new registry)", to).with_reason("exists");
  }
  try {
    {
      // The target's schema, as a new registry; an SQLite file is private to its owner like HOME's.
      const mode_t old = ::umask(077);
      try {
        Store::open(to, OpenMode::create).reset();
      } catch (...) {
        ::umask(old);
        throw;
      }
      ::umask(old);
    }
    std::unique_ptr<pg::Source> src;
    if (Store::is_postgresql(from)) {
      src = std::make_unique<pg::PgSource>(from);
    } else {
      src = std::make_unique<pg::SqliteSource>(from);
    }
    std::unique_ptr<pg::Target> dst;
    if (Store::is_postgresql(to)) {
      dst = std::make_unique<pg::PgTarget>(to);
    } else {
      dst = std::make_unique<pg::SqliteTarget>(to);
    }
    if (!dst->empty()) {
      throw Error(Exit::conflict, "registry {} is not empty (registry copy makes a new registry)", to)
          .with_reason("exists");
    }
    // The chain's head as copied, for the row this copy appends.
    int64_t head_seq = 0;
    int64_t max_id = 0;
    std::string head_hash = util::to_hex(AuditHash{});
    for (const auto& t : pg::tables()) {
      const bool audit = t.name == "audit";
      src->rows(t, [&](const pg::Row& r) {
        dst->put(t, r);
        ++(s.*t.count);
        if (audit && r[0]) {
          max_id = std::max<int64_t>(max_id, std::stoll(*r[0]));
        }
        if (audit && r[6] && r[7]) {
          const int64_t seq = static_cast<int64_t>(std::stoll(*r[6]));
          if (seq > head_seq) {
            head_seq = seq;
            head_hash = *r[7];
          }
        }
      });
      dst->end_table(t);
    }
    const auto [counter, global_seq] = src->state();
    dst->set_state(counter, global_seq);
    // Every change writes an audit row: this one says where the registry came from.
    const auto prev = audit_hash_from_hex(head_hash);
    if (!prev) {
      throw Error(Exit::registry, "the audit trail's last row (seq {}) has no valid hash: run fleetkey audit verify",
                  head_seq);
    }
    AuditChainRow row;
    row.id = max_id + 1; // above every copied id (ids need not be dense)
    row.at = util::format_time(util::unix_now());
    row.actor = Store::actor();
    row.action = "registry.copy";
    row.subject = "registry";
    row.details = nlohmann::json{
        {"from", from},
        {"from_backend", s.from_backend},
        {"devices", s.devices},
        {"audit_rows",
         s.audit}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    const int64_t seq = head_seq + 1;
    const auto hash = util::to_hex(audit_link(*prev, seq, row));
    const pg::Table& audit = pg::tables().back();
    dst->put(audit, {std::to_string(row.id), row.at, row.actor, row.action, row.subject, row.details,
                     std::to_string(seq), hash});
    dst->end_table(audit);
    dst->commit();
  } catch (...) {
    if (new_file) {
      pg::remove_sqlite(to);
    }
    throw;
  }
  return s;
}

} // namespace fleetkey::registry
