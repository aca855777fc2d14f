#pragma once
// Move-only owners of SQLite handles, private to src/registry (SqliteStore). Every failure throws
// fleetkey::Error with SQLite's message.

#include <fleetkey/util/bytes.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace fleetkey::registry {

class Stmt
{
public:
  Stmt() = default;
  Stmt(sqlite3* db, std::string_view sql);
  Stmt(Stmt&& other) noexcept;
  Stmt& operator=(Stmt&& other) noexcept;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt();

  // Parameters are numbered from 1, as in SQLite.
  Stmt& bind(int index, std::string_view text);
  Stmt& bind(int index, const char* text) { return bind(index, std::string_view(text)); }
  Stmt& bind(int index, const std::string& text) { return bind(index, std::string_view(text)); }
  Stmt& bind(int index, int64_t value);
  Stmt& bind(int index, const std::optional<std::string>& text);
  Stmt& bind_null(int index);

  // True while a row is available; false when done.
  bool step();
  // Steps once, expecting no row (INSERT, UPDATE, DELETE).
  void run();
  void reset();

  // Columns are numbered from 0, as in SQLite.
  std::string text(int column) const;
  std::string_view text_view(int column) const; // valid until the next step()
  std::optional<std::string> optional_text(int column) const;
  int64_t integer(int column) const;
  bool is_null(int column) const;

  sqlite3_stmt* get() const noexcept { return m_stmt; }

private:
  sqlite3_stmt* m_stmt = nullptr;
};

class Db
{
public:
  Db() = default;
  explicit Db(const std::string& path, bool create);
  Db(Db&& other) noexcept;
  Db& operator=(Db&& other) noexcept;
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  ~Db();

  void exec(std::string_view sql);
  Stmt prepare(std::string_view sql) { return Stmt(m_db, sql); }
  int64_t pragma_int(std::string_view name);
  int64_t changes() const;
  const std::string& path() const { return m_path; }
  sqlite3* get() const noexcept { return m_db; }

  // Whether a transaction is open on this connection.
  bool in_transaction() const noexcept;
  // BEGIN IMMEDIATE takes the write lock up front, so a writer waits for another (busy_timeout)
  // instead of failing at its first write; retried with jitter when the lock stays taken.
  void begin_immediate();
  void commit();
  void rollback() noexcept;

private:
  sqlite3* m_db = nullptr;
  std::string m_path;
  // Frames in the WAL after this connection's last commit (SQLite's WAL hook); on the heap, so
  // that the hook's pointer stays valid when the Db moves.
  std::unique_ptr<int> m_wal_frames = std::make_unique<int>(0);
};

// Throws the Error for a failed SQLite call on `db`.
[[noreturn]] void throw_sqlite(sqlite3* db, int rc, std::string_view what);

} // namespace fleetkey::registry
