#include "registry/pg_conn.hpp"

#include "registry/pg_libpq.hpp"

#include <algorithm>
#include <cstdlib>
#include <memory>

namespace fleetkey::registry::pg {

namespace {

// libpq's messages end in a newline and may span lines ("DETAIL: ..."): fleetkey prints one line.
std::string one_line(std::string_view msg)
{
  std::string out;
  for (const char c : msg) {
    if (c == '\n' || c == '\r' || c == '\t') {
      if (!out.empty() && out.back() != ' ') {
        out += ' ';
      }
    } else {
      out += c;
    }
  }
  while (!out.empty() && out.back() == ' ') {
    out.pop_back();
  }
  return out;
}

// Notices (a NOTICE from a migration's DROP ... IF EXISTS, a WARNING) are not fleetkey's output.
void ignore_notice(void*, const char*) {}

struct ConninfoFree
{
  void operator()(PQconninfoOption* o) const noexcept { libpq().conninfo_free(o); }
};

} // namespace

Result::Result(Result&& other) noexcept
    : m_res(other.m_res)
{
  other.m_res = nullptr;
}

Result& Result::operator=(Result&& other) noexcept
{
  if (this != &other) {
    if (m_res != nullptr) {
      libpq().clear(m_res);
    }
    m_res = other.m_res;
    other.m_res = nullptr;
  }
  return *this;
}

Result::~Result()
{
  if (m_res != nullptr) {
    libpq().clear(m_res);
  }
}

int Result::rows() const noexcept
{
  return m_res == nullptr ? 0 : libpq().ntuples(m_res);
}

bool Result::is_null(int row, int column) const noexcept
{
  return libpq().getisnull(m_res, row, column) != 0;
}

std::string_view Result::text(int row, int column) const noexcept
{
  const char* p = libpq().getvalue(m_res, row, column);
  return {p, static_cast<size_t>(libpq().getlength(m_res, row, column))};
}

std::optional<std::string> Result::optional_text(int row, int column) const
{
  if (is_null(row, column)) {
    return std::nullopt;
  }
  return std::string(text(row, column));
}

int64_t Result::integer(int row, int column) const
{
  if (is_null(row, column)) {
    return 0; // as sqlite3_column_int64 reads NULL
  }
  const std::string s(text(row, column));
  return std::strtoll(s.c_str(), nullptr, 10);
}

int64_t Result::affected() const noexcept
{
  const char* n = m_res == nullptr ? "" : libpq().cmd_tuples(m_res);
  return *n == '\0' ? 0 : std::strtoll(n, nullptr, 10);
}

Conn::Conn(const std::string& location, std::string where)
    : m_where(std::move(where))
{
  // expand_dbname: `location` is a URI or a conninfo string; fleetkey's own settings come first
  // and the location may override them.
  const char* keys[] = {"application_name", "client_encoding", "dbname", nullptr};
  const char* values[] = {"fleetkey", "UTF8", location.c_str(), nullptr};
  m_conn = libpq().connectdb_params(keys, values, 1);
  if (m_conn == nullptr) {
    throw Error(Exit::registry, "cannot open registry {}: out of memory", m_where);
  }
  if (libpq().status(m_conn) != CONNECTION_OK) {
    const std::string msg = one_line(libpq().error_message(m_conn));
    libpq().finish(m_conn);
    m_conn = nullptr;
    throw Error(Exit::registry, "cannot open registry {}: {}", m_where, msg);
  }
  libpq().set_notice_processor(m_conn, ignore_notice, nullptr);
}

Conn::Conn(Conn&& other) noexcept
    : m_conn(other.m_conn)
    , m_where(std::move(other.m_where))
    , m_copy_open(other.m_copy_open)
{
  other.m_conn = nullptr;
}

Conn& Conn::operator=(Conn&& other) noexcept
{
  if (this != &other) {
    if (m_conn != nullptr) {
      libpq().finish(m_conn);
    }
    m_conn = other.m_conn;
    m_where = std::move(other.m_where);
    m_copy_open = other.m_copy_open;
    other.m_conn = nullptr;
  }
  return *this;
}

Conn::~Conn()
{
  if (m_conn != nullptr) {
    libpq().finish(m_conn); // an open transaction rolls back when the server sees the connection go
  }
}

bool Conn::connection_lost() const noexcept
{
  return m_conn == nullptr || libpq().status(m_conn) != CONNECTION_OK;
}

bool Conn::in_transaction() const noexcept
{
  if (m_conn == nullptr) {
    return false;
  }
  const auto st = libpq().transaction_status(m_conn);
  return st == PQTRANS_INTRANS || st == PQTRANS_INERROR || st == PQTRANS_ACTIVE;
}

void Conn::fail(pg_result* res, std::string_view what)
{
  std::string state;
  std::string msg;
  if (res != nullptr) {
    const char* s = libpq().result_error_field(res, PG_DIAG_SQLSTATE);
    state = s != nullptr ? s : "";
    const char* primary = libpq().result_error_field(res, PG_DIAG_MESSAGE_PRIMARY);
    msg = one_line(primary != nullptr ? primary : libpq().result_error_message(res));
    libpq().clear(res);
  }
  if (msg.empty()) {
    msg = one_line(libpq().error_message(m_conn));
  }
  if (connection_lost() || state.starts_with("08") || state == "57P01" || state == "57P02" || state == "57P03") {
    throw PgError(Exit::registry, state,
                  fmt::format("{}: lost the connection to the registry {} ({}): {}", what, m_where, msg,
                              "nothing of this command was committed"));
  }
  if (state.starts_with("23") || state == "P0001") {
    // Integrity constraint violations and the audit trail's triggers, as SQLite's constraint errors.
    throw PgError(Exit::conflict, state, fmt::format("{}: {}", what, msg));
  }
  if (state == "55P03" || state == "57014") {
    throw PgError(Exit::failure, state,
                  fmt::format("{}: the registry stayed locked by another writer too long ({})", what, msg));
  }
  if (state == "42501") {
    throw PgError(Exit::registry, state, fmt::format("{}: {} (see fleetkey-postgresql(7), ROLES)", what, msg));
  }
  throw PgError(Exit::failure, state, fmt::format("{}: {} (PostgreSQL {})", what, msg, state.empty() ? "?" : state));
}

Result Conn::check(pg_result* res, std::string_view what)
{
  const auto st = res == nullptr ? PGRES_FATAL_ERROR : libpq().result_status(res);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    fail(res, what);
  }
  return Result(res);
}

void Conn::exec(std::string_view sql)
{
  copy_end();
  const std::string s(sql);
  // PQexec returns the last statement's result; an earlier failure stops it and is that result.
  check(libpq().exec(m_conn, s.c_str()), "registry");
}

Result Conn::query(std::string_view sql, const std::vector<Param>& params)
{
  copy_end();
  const std::string s(sql);
  std::vector<const char*> values;
  std::vector<int> lengths;
  std::vector<int> formats;
  std::vector<std::string> copies; // PQexecParams reads text parameters up to their NUL
  copies.reserve(params.size());
  for (const auto& p : params) {
    if (p) {
      copies.emplace_back(*p);
      values.push_back(copies.back().c_str());
    } else {
      values.push_back(nullptr);
    }
    lengths.push_back(0);
    formats.push_back(0);
  }
  return check(libpq().exec_params(m_conn, s.c_str(), static_cast<int>(params.size()), nullptr, values.data(),
                                   lengths.data(), formats.data(), 0),
               "registry");
}

void Conn::copy_begin(std::string_view copy_sql)
{
  copy_end();
  const std::string s(copy_sql);
  pg_result* res = libpq().exec(m_conn, s.c_str());
  if (res == nullptr || libpq().result_status(res) != PGRES_COPY_IN) {
    fail(res, "registry");
  }
  libpq().clear(res);
  m_copy_open = true;
}

void Conn::copy_put(std::string_view data)
{
  // PQputCopyData takes an int length: hand big buffers over in pieces.
  constexpr size_t k_piece = size_t{1} << 30;
  for (size_t off = 0; off < data.size(); off += k_piece) {
    const size_t n = std::min(k_piece, data.size() - off);
    if (libpq().put_copy_data(m_conn, data.data() + off, static_cast<int>(n)) != 1) {
      fail(nullptr, "registry");
    }
  }
}

void Conn::copy_end()
{
  if (!m_copy_open) {
    return;
  }
  m_copy_open = false;
  if (libpq().put_copy_end(m_conn, nullptr) != 1) {
    fail(nullptr, "registry");
  }
  pg_result* first = nullptr;
  while (pg_result* res = libpq().get_result(m_conn)) {
    if (first == nullptr) {
      first = res;
    } else {
      libpq().clear(res);
    }
  }
  check(first, "registry");
}

void Conn::copy_in(std::string_view copy_sql, std::string_view data)
{
  copy_begin(copy_sql);
  copy_put(data);
  copy_end();
}

void Conn::rollback() noexcept
{
  if (m_conn == nullptr) {
    return;
  }
  if (m_copy_open) {
    // Ending the COPY with an error message makes the server fail it: none of its rows stay.
    m_copy_open = false;
    libpq().put_copy_end(m_conn, "fleetkey: the import was abandoned");
    while (pg_result* res = libpq().get_result(m_conn)) {
      libpq().clear(res);
    }
  }
  if (in_transaction()) {
    if (pg_result* res = libpq().exec(m_conn, "ROLLBACK")) {
      libpq().clear(res);
    }
  }
}

bool has_password(const std::string& location)
{
  char* err = nullptr;
  std::unique_ptr<PQconninfoOption, ConninfoFree> opts(libpq().conninfo_parse(location.c_str(), &err));
  if (err != nullptr) {
    libpq().freemem(err);
  }
  if (!opts) {
    return false; // not parsed: connecting fails with libpq's message
  }
  for (const PQconninfoOption* o = opts.get(); o->keyword != nullptr; ++o) {
    if (std::string_view(o->keyword) == "password" && o->val != nullptr && *o->val != '\0') {
      return true;
    }
  }
  return false;
}

std::optional<std::string> conninfo_error(const std::string& location)
{
  char* err = nullptr;
  std::unique_ptr<PQconninfoOption, ConninfoFree> opts(libpq().conninfo_parse(location.c_str(), &err));
  if (opts) {
    return std::nullopt;
  }
  std::string msg = err != nullptr ? one_line(err) : "out of memory";
  if (err != nullptr) {
    libpq().freemem(err);
  }
  return msg;
}

} // namespace fleetkey::registry::pg
