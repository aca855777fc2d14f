#pragma once
// Bulk registration of devices: one prepared multi-row INSERT reused for a whole batch, inside
// the caller's transaction.

#include <fleetkey/registry/registry.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fleetkey::registry {

// Connection settings for one bulk import, restored on destruction. Construct it before the
// Transaction: SQLite ignores PRAGMA foreign_keys inside one. The importer checks the one
// foreign key (key_version) once per batch instead of once per row.
class BulkSession
{
public:
  explicit BulkSession(Registry& reg);
  BulkSession(const BulkSession&) = delete;
  BulkSession& operator=(const BulkSession&) = delete;
  ~BulkSession();

private:
  Registry& m_reg;
  int64_t m_cache_size = 0;
};

// A device row whose strings stay valid until the next flush().
struct BulkDevice
{
  std::string_view id;
  std::optional<std::string_view> model;
  std::string_view labels; // JSON object text
  std::string_view fingerprint;
};

class DeviceBulkInsert
{
public:
  static constexpr int k_chunk = 32; // rows per INSERT statement

  // `created` applies to every row; `key_version` must be a master key version in the registry.
  DeviceBulkInsert(Registry& reg, uint32_t key_version, std::string created);

  // Whether the registry held any device when the batch began (in the caller's transaction).
  bool registry_was_empty() const { return m_was_empty; }
  // A point lookup, for --skip-existing and for naming the line of an already registered id.
  bool exists(std::string_view id) { return registered(id).has_value(); }
  // The same lookup, telling what is registered: the device's key fingerprint and whether it is active.
  struct Registered
  {
    std::string fingerprint;
    bool active = false;
  };
  std::optional<Registered> registered(std::string_view id);

  // Queues a row; every k_chunk rows are inserted with one statement.
  void add(const BulkDevice& row);
  // Inserts the queued rows; call before the strings they point to go away.
  void flush();
  uint64_t inserted() const { return m_inserted; }

private:
  void bind_row(Stmt& st, int first, const BulkDevice& row);

  Registry& m_reg;
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

} // namespace fleetkey::registry
