#pragma once
// fleetkey registry copy (Store::copy, pg_copy.cpp): the tables it copies and the two ends it
// copies between, each a backend's own SQL below the Store interface. The PostgreSQL ends are in
// pg_copy.cpp, the SQLite ends in pg_copy_sqlite.cpp. Private to src/registry.

#include <fleetkey/registry/store.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fleetkey::registry::pg {

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
const std::vector<Table>& tables();

// The table's columns, quoted, comma-separated.
std::string column_list(const Table& t);

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

// The SQLite ends (pg_copy_sqlite.cpp): a read snapshot of the registry file at `path`, and a
// write transaction on the new one.
std::unique_ptr<Source> sqlite_source(const std::string& path);
std::unique_ptr<Target> sqlite_target(const std::string& path);

} // namespace fleetkey::registry::pg
