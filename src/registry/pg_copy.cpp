// fleetkey registry copy (Store::copy, include/fleetkey/registry/store.hpp): rows are read and written with each
// backend's own SQL, below the Store interface, because a copy keeps what the interface hides on
// purpose: revocation ids, device state sequence numbers, the state counters and every audit row's
// seq and hash exactly as they are.

#include "registry/pg_copy.hpp"

#include "registry/pg_conn.hpp"
#include "registry/pg_rows.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/registry/store.hpp>
#include <fleetkey/util/bytes.hpp>
#include <fleetkey/util/file.hpp>
#include <fleetkey/util/text.hpp>

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace fleetkey::registry::pg {

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

namespace {

// ---- The PostgreSQL ends ----

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
      copy_field(m_buffer, *r[i]);
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

// ---- The steps of a copy ----

// The chain's head as copied, for the row this copy appends.
struct CopiedChain
{
  int64_t head_seq = 0;
  int64_t max_id = 0;
  std::string head_hash = util::to_hex(AuditHash{});
};

// The target's schema, as a new registry; an SQLite file is private to its owner like HOME's.
void create_schema(const std::string& to)
{
  const mode_t old = ::umask(077);
  try {
    Store::open(to, OpenMode::create).reset();
  } catch (...) {
    ::umask(old);
    throw;
  }
  ::umask(old);
}

std::unique_ptr<Source> open_source(const std::string& from)
{
  if (Store::is_postgresql(from)) {
    return std::make_unique<PgSource>(from);
  }
  return sqlite_source(from);
}

std::unique_ptr<Target> open_target(const std::string& to)
{
  if (Store::is_postgresql(to)) {
    return std::make_unique<PgTarget>(to);
  }
  return sqlite_target(to);
}

// Every table, parents first, each row counted in `s`.
CopiedChain copy_tables(Source& src, Target& dst, CopySummary& s)
{
  CopiedChain chain;
  for (const auto& t : tables()) {
    const bool audit = t.name == "audit";
    src.rows(t, [&](const Row& r) {
      dst.put(t, r);
      ++(s.*t.count);
      if (audit && r[0]) {
        chain.max_id = std::max<int64_t>(chain.max_id, std::stoll(*r[0]));
      }
      if (audit && r[6] && r[7]) {
        const int64_t seq = static_cast<int64_t>(std::stoll(*r[6]));
        if (seq > chain.head_seq) {
          chain.head_seq = seq;
          chain.head_hash = *r[7];
        }
      }
    });
    dst.end_table(t);
  }
  return chain;
}

// Every change writes an audit row: this one says where the registry came from.
void append_copy_row(Target& dst, const CopySummary& s, const CopiedChain& chain)
{
  const auto prev = audit_hash_from_hex(chain.head_hash);
  if (!prev) {
    throw Error(Exit::registry, "the audit trail's last row (seq {}) has no valid hash: run fleetkey audit verify",
                chain.head_seq);
  }
  AuditChainRow row;
  row.id = chain.max_id + 1; // above every copied id (ids need not be dense)
  row.at = util::format_time(util::unix_now());
  row.actor = Store::actor();
  row.action = "registry.copy";
  row.subject = "registry";
  row.details = nlohmann::json{
      {"from", s.from},
      {"from_backend", s.from_backend},
      {"devices", s.devices},
      {"audit_rows",
       s.audit}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  const int64_t seq = chain.head_seq + 1;
  const auto hash = util::to_hex(audit_link(*prev, seq, row));
  const Table& audit = tables().back();
  dst.put(audit,
          {std::to_string(row.id), row.at, row.actor, row.action, row.subject, row.details, std::to_string(seq), hash});
  dst.end_table(audit);
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
    pg::create_schema(to);
    const std::unique_ptr<pg::Source> src = pg::open_source(from);
    const std::unique_ptr<pg::Target> dst = pg::open_target(to);
    if (!dst->empty()) {
      throw Error(Exit::conflict, "registry {} is not empty (registry copy makes a new registry)", to)
          .with_reason("exists");
    }
    const pg::CopiedChain chain = pg::copy_tables(*src, *dst, s);
    const auto [counter, global_seq] = src->state();
    dst->set_state(counter, global_seq);
    pg::append_copy_row(*dst, s, chain);
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
