#pragma once
// Between the passes of `device import`: the validated rows, spilled to an unlinked temporary
// file and read back in id order (import_spill.cpp).

#include "import_rows.hpp"

#include <fleetkey/util/file.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fleetkey::fleet {

// Where one spilled row's strings are, in an arena the reader fills.
struct Offsets
{
  uint64_t line = 0;
  size_t id = 0, id_len = 0;
  size_t model = 0, model_len = 0;
  bool has_model = false;
  size_t labels = 0, labels_len = 0;
};

// A spilled row: u64 line, u16 id length, id, u16 model length + 1 (0: no model), model,
// u32 labels length (0: {}), labels; integers in host order. The record is appended to `arena`.
bool read_record(util::InputBuffer& in, std::string& arena, Offsets& o);

// Parsed rows between the passes, so that memory stays flat whatever the input size and stdin
// need not be read twice. The rows come back in ascending byte order of id, the order SQLite's
// WITHOUT ROWID table inserts fastest (random order would touch the whole tree once the table
// outgrows the page cache): sorted input is written through as it comes; otherwise rows are
// sorted in runs of ImportOptions::sort_run_bytes and the runs merged into a second file. In sorted order a
// repeated id is always next to its first occurrence, so duplicates need no hash set.
class Spill
{
public:
  Spill(Source src, size_t run_bytes);

  void write(const Row& row);

  // Ends writing, merges the runs (throwing for the earliest repeated id) and returns the reader
  // of the rows in id order.
  util::InputBuffer& finish();

  uint64_t rows() const { return m_rows; }

private:
  static constexpr size_t k_write_bytes = size_t{1} << 20;

  struct Entry
  {
    uint32_t offset;
    uint32_t size;
  };

  template<typename T>
  void put(T v)
  {
    m_run.append(reinterpret_cast<const char*>(&v), sizeof v);
  }

  std::string_view id_of(const Entry& e) const;

  // Keeps the repeat with the earliest second line, the one a reader of the input meets first.
  void duplicate(std::string_view id, uint64_t first, uint64_t second);

  void flush_run();

  struct RunReader
  {
    std::unique_ptr<util::InputBuffer> in;
    std::string record;
    Offsets o;
    size_t run = 0;
    std::string_view id() const { return {record.data() + o.id, o.id_len}; }
    bool next()
    {
      record.clear();
      return read_record(*in, record, o);
    }
  };

  void merge();

  [[noreturn]] void report_duplicate() const;

  Source m_src;
  util::Fd m_fd;
  util::Fd m_merged;
  size_t m_run_bytes;
  std::string m_run;
  std::vector<Entry> m_index;
  std::vector<std::pair<uint64_t, uint64_t>> m_runs; // offset and size in m_fd
  uint64_t m_size = 0;
  uint64_t m_rows = 0;
  bool m_sorted = true;
  std::string m_prev;
  uint64_t m_prev_line = 0;
  uint64_t m_dup_line = 0;
  uint64_t m_dup_first = 0;
  std::string m_dup_id;
  std::unique_ptr<util::InputBuffer> m_reader;
};

} // namespace fleetkey::fleet
