// fleetkey registry copy's SQLite ends (pg_copy.hpp): the registry file read and written with
// SQLite's own API, not the Store interface, so that every row is copied exactly as it is.

#include "registry/pg_copy.hpp"

#include <fleetkey/core/error.hpp>

#include <fmt/format.h>
#include <sqlite3.h>

namespace fleetkey::registry::pg {

namespace {

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

} // namespace

std::unique_ptr<Source> sqlite_source(const std::string& path)
{
  return std::make_unique<SqliteSource>(path);
}

std::unique_ptr<Target> sqlite_target(const std::string& path)
{
  return std::make_unique<SqliteTarget>(path);
}

} // namespace fleetkey::registry::pg
