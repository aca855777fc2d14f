#include <fleetkey/registry/import.hpp>
#include <fleetkey/util/error.hpp>

#include <sqlite3.h>

namespace fleetkey::registry {

namespace {

// 8 MiB of page cache: enough for the right edge of the devices tree and the interior pages of
// a large registry, well inside the 64 MiB an import may use.
constexpr int64_t k_bulk_cache_kib = 8192;

std::string insert_sql(int rows)
{
  std::string sql =
      "INSERT INTO devices (id, model, labels, key_version, fingerprint, status, pairing_counter, created) VALUES ";
  for (int i = 0; i < rows; ++i) {
    sql += i == 0 ? "" : ", ";
    sql += "(?, ?, ?, ?, ?, 'active', 0, ?)";
  }
  return sql;
}

} // namespace

BulkSession::BulkSession(Registry& reg)
    : m_reg(reg)
{
  m_cache_size = reg.db().pragma_int("cache_size");
  reg.db().exec(fmt::format("PRAGMA cache_size = -{}", k_bulk_cache_kib));
  reg.db().exec("PRAGMA foreign_keys = OFF");
}

BulkSession::~BulkSession()
{
  try {
    m_reg.db().exec("PRAGMA foreign_keys = ON");
    m_reg.db().exec(fmt::format("PRAGMA cache_size = {}", m_cache_size));
  } catch (const Error&) {
    // The connection is closed right after an import; nothing else relies on these settings.
  }
}

DeviceBulkInsert::DeviceBulkInsert(Registry& reg, uint32_t key_version, std::string created)
    : m_reg(reg)
    , m_key_version(key_version)
    , m_created(std::move(created))
{
  auto& db = reg.db();
  const auto mk = reg.master_key(key_version);
  if (!mk || mk->status != "current") {
    throw Error(Exit::key, "master key version {} is not the registry's current version (rotated meanwhile?)",
                key_version);
  }
  Stmt any = db.prepare("SELECT EXISTS (SELECT 1 FROM devices)");
  m_was_empty = !any.step() || any.integer(0) == 0;
  m_exists = db.prepare("SELECT fingerprint, status = 'active' FROM devices WHERE id = ?");
  m_one = db.prepare(insert_sql(1));
  m_many = db.prepare(insert_sql(k_chunk));
}

std::optional<DeviceBulkInsert::Registered> DeviceBulkInsert::registered(std::string_view id)
{
  sqlite3_stmt* st = m_exists.get();
  sqlite3_bind_text(st, 1, id.data(), static_cast<int>(id.size()), SQLITE_STATIC);
  std::optional<Registered> found;
  if (m_exists.step()) {
    found = Registered{std::string(m_exists.text_view(0)), m_exists.integer(1) != 0};
  }
  sqlite3_reset(st);
  return found;
}

void DeviceBulkInsert::bind_row(Stmt& st, int first, const BulkDevice& row)
{
  // SQLITE_STATIC: the strings outlive the statement's next step (see flush()).
  sqlite3_stmt* s = st.get();
  sqlite3_bind_text(s, first, row.id.data(), static_cast<int>(row.id.size()), SQLITE_STATIC);
  if (row.model) {
    sqlite3_bind_text(s, first + 1, row.model->data(), static_cast<int>(row.model->size()), SQLITE_STATIC);
  } else {
    sqlite3_bind_null(s, first + 1);
  }
  sqlite3_bind_text(s, first + 2, row.labels.data(), static_cast<int>(row.labels.size()), SQLITE_STATIC);
  sqlite3_bind_int64(s, first + 3, m_key_version);
  sqlite3_bind_text(s, first + 4, row.fingerprint.data(), static_cast<int>(row.fingerprint.size()), SQLITE_STATIC);
  sqlite3_bind_text(s, first + 5, m_created.data(), static_cast<int>(m_created.size()), SQLITE_STATIC);
}

void DeviceBulkInsert::add(const BulkDevice& row)
{
  m_queue[static_cast<size_t>(m_queued++)] = row;
  if (m_queued == k_chunk) {
    for (int i = 0; i < k_chunk; ++i) {
      bind_row(m_many, i * 6 + 1, m_queue[static_cast<size_t>(i)]);
    }
    m_many.step();
    sqlite3_reset(m_many.get());
    m_inserted += k_chunk;
    m_queued = 0;
  }
}

void DeviceBulkInsert::flush()
{
  for (int i = 0; i < m_queued; ++i) {
    bind_row(m_one, 1, m_queue[static_cast<size_t>(i)]);
    m_one.step();
    sqlite3_reset(m_one.get());
  }
  m_inserted += static_cast<uint64_t>(m_queued);
  m_queued = 0;
}

} // namespace fleetkey::registry
