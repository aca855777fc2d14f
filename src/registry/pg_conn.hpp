#pragma once
// libpq behind two move-only RAII types (a connection and a result), private to src/registry.
// In the static release build libpq is loaded on first use (pg_libpq.cpp); elsewhere it is linked.

#include <fleetkey/core/error.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct pg_conn;
struct pg_result;

namespace fleetkey::registry::pg {

// A query parameter: text, or SQL NULL.
using Param = std::optional<std::string_view>;

class Result
{
public:
  Result() = default;
  explicit Result(pg_result* res) noexcept
      : m_res(res)
  {
  }
  Result(Result&& other) noexcept;
  Result& operator=(Result&& other) noexcept;
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  ~Result();

  int rows() const noexcept;
  bool is_null(int row, int column) const noexcept;
  std::string_view text(int row, int column) const noexcept;
  std::optional<std::string> optional_text(int row, int column) const;
  int64_t integer(int row, int column) const;
  // The number of rows an INSERT, UPDATE or DELETE touched.
  int64_t affected() const noexcept;
  pg_result* get() const noexcept { return m_res; }

private:
  pg_result* m_res = nullptr;
};

// The SQLSTATE classes fleetkey reacts to (a failed statement throws a PgError, which is an Error).
class PgError : public Error
{
public:
  PgError(Exit code, std::string sqlstate, const std::string& message)
      : Error(code, message)
      , m_sqlstate(std::move(sqlstate))
  {
  }
  const std::string& sqlstate() const noexcept { return m_sqlstate; }

private:
  std::string m_sqlstate;
};

class Conn
{
public:
  // Connects with the conninfo string or URI `location` (a URI carrying a password is refused by
  // the caller before this). `where` names the registry in messages.
  Conn(const std::string& location, std::string where);
  Conn(Conn&& other) noexcept;
  Conn& operator=(Conn&& other) noexcept;
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  ~Conn();

  // Runs one or more statements without parameters (migrations, BEGIN, COMMIT).
  void exec(std::string_view sql);
  // Runs one statement with text parameters $1, $2, ... and returns its rows.
  Result query(std::string_view sql, const std::vector<Param>& params = {});
  // COPY ... FROM STDIN in one call: sends `data` (text format) and waits for the server to take it.
  void copy_in(std::string_view copy_sql, std::string_view data);
  // A COPY ... FROM STDIN that stays open across calls: copy_begin starts it, copy_put sends rows
  // (the server loads them while the caller prepares more; a full socket makes copy_put wait), and
  // copy_end finishes it and reports the server's verdict. exec, query and copy_begin end an open
  // COPY first; rollback aborts it.
  void copy_begin(std::string_view copy_sql);
  void copy_put(std::string_view data);
  void copy_end();
  bool copy_open() const noexcept { return m_copy_open; }
  bool in_transaction() const noexcept;
  bool connection_lost() const noexcept;
  // ROLLBACK, ignoring failures (a lost connection has rolled back already).
  void rollback() noexcept;
  const std::string& where() const noexcept { return m_where; }

private:
  [[noreturn]] void fail(pg_result* res, std::string_view what);
  Result check(pg_result* res, std::string_view what);

  pg_conn* m_conn = nullptr;
  std::string m_where;
  bool m_copy_open = false;
};

// Whether libpq parses `location` as a connection string or URI that carries a password.
bool has_password(const std::string& location);
// libpq's own check of `location`'s syntax: nullopt when fine, else its message (which never
// repeats a password).
std::optional<std::string> conninfo_error(const std::string& location);

} // namespace fleetkey::registry::pg
