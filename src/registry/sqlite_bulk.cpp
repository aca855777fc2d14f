// SqliteStore::bulk_insert: one prepared multi-row INSERT reused for a whole batch, inside the
// caller's write transaction, with the connection tuned for the batch (restored at the end).

#include "registry/backends.hpp"
#include "registry/sqlite_store.hpp"

#include <fleetkey/core/error.hpp>

#include <sqlite3.h>

#include <array>

namespace fleetkey::registry {

namespace {

// 8 MiB of page cache: enough for the right edge of the devices tree and the interior pages of
// a large registry, well inside the 64 MiB an import may use.
constexpr int64_t k_bulk_cache_kib = 8192;

std::string bulk_insert_sql(int rows)
{
  std::string sql =
      "INSERT INTO devices (id, model, labels, key_version, fingerprint, status, pairing_counter, created) VALUES ";
  for (int i = 0; i < rows; ++i) {
    sql += i == 0 ? "" : ", ";
    sql += "(?, ?, ?, ?, ?, 'active', 0, ?)";
  }
  return sql;
}

// Foreign keys on or off for the connection. PRAGMA foreign_keys is a no-op inside a transaction,
// and the batch runs inside the caller's; sqlite3_db_config sets the same flag at any time (and
// expires the prepared statements, which are prepared again on their next use).
void set_foreign_keys(sqlite3* db, bool on)
{
  sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_FKEY, on ? 1 : 0, nullptr);
}

// Connection settings for one bulk import, restored on destruction: a larger page cache, and no
// foreign key checks (the importer checks the one foreign key, key_version, once per batch
// instead of once per row).
class BulkSettings
{
public:
  explicit BulkSettings(Db& db)
      : m_db(db)
      , m_cache_size(db.pragma_int("cache_size"))
  {
    db.exec(fmt::format("PRAGMA cache_size = -{}", k_bulk_cache_kib));
    set_foreign_keys(db.get(), false);
  }
  BulkSettings(const BulkSettings&) = delete;
  BulkSettings& operator=(const BulkSettings&) = delete;
  ~BulkSettings()
  {
    set_foreign_keys(m_db.get(), true);
    try {
      m_db.exec(fmt::format("PRAGMA cache_size = {}", m_cache_size));
    } catch (const Error&) {
      // Only the cache's size: nothing relies on it.
    }
  }

private:
  Db& m_db;
  int64_t m_cache_size = 0;
};

class SqliteBulkInsert final : public DeviceBulkInsert
{
public:
  static constexpr int k_chunk = 32; // rows per INSERT statement

  SqliteBulkInsert(SqliteStore& store, uint32_t key_version, std::string created)
      : m_settings(store.db())
      , m_key_version(key_version)
      , m_created(std::move(created))
  {
    require_current_master_key(store, key_version);
    auto& db = store.db();
    Stmt any = db.prepare("SELECT EXISTS (SELECT 1 FROM devices)");
    m_was_empty = !any.step() || any.integer(0) == 0;
    m_exists = db.prepare("SELECT fingerprint, status = 'active' FROM devices WHERE id = ?");
    m_one = db.prepare(bulk_insert_sql(1));
    m_many = db.prepare(bulk_insert_sql(k_chunk));
  }

  bool registry_was_empty() const override { return m_was_empty; }
  std::optional<Registered> registered(std::string_view id) override;
  void add(const BulkDevice& row) override;
  void flush() override;
  void finish() override {}
  uint64_t inserted() const override { return m_inserted; }

private:
  void bind_row(Stmt& st, int first, const BulkDevice& row);

  BulkSettings m_settings;
  int64_t m_key_version;
  std::string m_created;
  bool m_was_empty = true;
  Stmt m_exists;
  Stmt m_one;
  Stmt m_many;
  std::array<BulkDevice, k_chunk> m_queue{};
  int m_queued = 0;
  uint64_t m_inserted = 0;
};

std::optional<DeviceBulkInsert::Registered> SqliteBulkInsert::registered(std::string_view id)
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

void SqliteBulkInsert::bind_row(Stmt& st, int first, const BulkDevice& row)
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

void SqliteBulkInsert::add(const BulkDevice& row)
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

void SqliteBulkInsert::flush()
{
  for (int i = 0; i < m_queued; ++i) {
    bind_row(m_one, 1, m_queue[static_cast<size_t>(i)]);
    m_one.step();
    sqlite3_reset(m_one.get());
  }
  m_inserted += static_cast<uint64_t>(m_queued);
  m_queued = 0;
}

} // namespace

std::unique_ptr<DeviceBulkInsert> SqliteStore::bulk_insert(uint32_t key_version, std::string created)
{
  return std::make_unique<SqliteBulkInsert>(*this, key_version, std::move(created));
}

} // namespace fleetkey::registry
