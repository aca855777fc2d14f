// PgStore::bulk_insert: the bulk import on PostgreSQL, one COPY straight into devices inside the
// caller's write transaction. PgBulkInsert needs only the Store interface and the connection.

#include "registry/backends.hpp"
#include "registry/pg_rows.hpp"
#include "registry/pg_store.hpp"

#include <fleetkey/core/error.hpp>

#include <algorithm>

namespace fleetkey::registry::pg {

namespace {

// Registered ids a bulk import reads at a time to find the ones it must skip.
constexpr int k_window_rows = 20000;

class PgBulkInsert final : public DeviceBulkInsert
{
public:
  PgBulkInsert(Store& store, Conn& conn, uint32_t key_version, std::string created);
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
  // Rows encoded for COPY, sent at each flush() into one COPY that stays open while no window
  // query needs the connection.
  std::string m_buffer;
  // The window of registered ids that registered() answers from.
  std::vector<std::pair<std::string, Registered>> m_window;
  std::string m_window_from;
  std::optional<std::string> m_window_to;
  bool m_window_valid = false;
  // What every row of this import ends with: key_version, status, pairing_counter, created.
  std::string m_row_end;
  uint64_t m_queued = 0;
  uint64_t m_inserted = 0;

  // Ends the open COPY; a duplicate id (another writer, which the write lock rules out) is exit 4
  // as on SQLite.
  void end_copy();
};

PgBulkInsert::PgBulkInsert(Store& store, Conn& conn, uint32_t key_version, std::string created)
    : m_conn(conn)
    , m_key_version(key_version)
    , m_created(std::move(created))
{
  require_current_master_key(store, key_version);
  const Result any = m_conn.query("SELECT EXISTS (SELECT 1 FROM devices)");
  m_was_empty = any.text(0, 0) != "t";
  m_row_end = "\t" + num(key_version) + "\tactive\t0\t";
  copy_field(m_row_end, m_created);
  m_row_end += '\n';
}

void PgBulkInsert::end_copy()
{
  try {
    m_conn.copy_end();
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
    end_copy(); // the query needs the connection; the next flush starts another COPY
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
  // Straight into devices, inside the write transaction: all or nothing with it. The ids were
  // checked against the registry (registered()) and against each other (the sorted spill) under
  // the write lock, which every writer takes; a staging table would only add a second copy. One
  // COPY carries every batch (a COPY a batch cost a statement and two round trips each): the
  // server loads the rows while the caller derives the next batch.
  if (!m_conn.copy_open()) {
    m_conn.copy_begin(
        "COPY devices (id, model, labels, fingerprint, key_version, status, pairing_counter, created) FROM STDIN");
  }
  m_conn.copy_put(m_buffer);
  m_buffer.clear();
  m_inserted += m_queued;
  m_queued = 0;
}

void PgBulkInsert::finish()
{
  flush();
  end_copy();
}

} // namespace

std::unique_ptr<DeviceBulkInsert> PgStore::bulk_insert(uint32_t key_version, std::string created)
{
  return std::make_unique<PgBulkInsert>(*this, m_conn, key_version, std::move(created));
}

} // namespace fleetkey::registry::pg
