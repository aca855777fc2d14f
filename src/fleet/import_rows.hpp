#pragma once
// Pass 1 of `device import`: reading and validating rows of CSV or JSON Lines (import_rows.cpp).

#include <fleetkey/core/error.hpp>
#include <fleetkey/fleet/import.hpp>
#include <fleetkey/util/csv.hpp>
#include <fleetkey/util/file.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fleetkey::fleet {

// Where errors point: "devices.csv: line 7: ...".
struct Source
{
  std::string name;

  [[noreturn]] void fail(Exit code, uint64_t line, std::string_view why) const
  {
    throw Error(code, "{}: line {}: {}", name, line, why);
  }
};

// One parsed row; the views are valid until the next row is read.
struct Row
{
  uint64_t line = 0;
  std::string_view id;
  std::optional<std::string_view> model;
  std::string_view labels; // JSON object text; empty means {}
};

class JsonRowReader;

// Reads and validates rows of either format.
class RowParser
{
public:
  RowParser(util::InputBuffer& in, ImportFormat format, Source src);

  ~RowParser();

  bool next(Row& row) { return m_format == ImportFormat::csv ? next_csv(row) : next_jsonl(row); }

private:
  bool next_csv(Row& row);

  void read_header();

  bool next_jsonl(Row& row);

  ImportFormat m_format;
  Source m_src;
  util::CsvReader m_csv;
  util::LineReader m_lines;
  std::vector<std::string_view> m_fields;
  bool m_header_done = false;
  size_t m_columns = 0;
  size_t m_id_col = 0;
  int m_model_col = -1;
  std::vector<std::pair<std::string, size_t>> m_label_cols;
  std::string m_labels;
  std::unique_ptr<JsonRowReader> m_json; // after m_src, which it refers to
};

} // namespace fleetkey::fleet
