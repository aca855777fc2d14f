// Fuzzes the streaming CSV and JSON Lines readers: any input either reads to the end or fails
// with a "line N: ..." message, without crashing or holding more than one record.
#include <fleetkey/util/csv.hpp>

#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
  using namespace fleetkey::util;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  {
    InputBuffer in(text);
    CsvReader reader(in);
    std::vector<std::string_view> fields;
    uint64_t last_line = 0;
    for (;;) {
      auto r = reader.next(fields);
      if (!r) {
        if (r.error().rfind("line ", 0) != 0) {
          std::abort();
        }
        break;
      }
      if (!*r) {
        break;
      }
      // Records start on increasing lines and hold at least one field.
      if (reader.line() <= last_line || fields.empty()) {
        std::abort();
      }
      last_line = reader.line();
    }
  }
  {
    InputBuffer in(text);
    LineReader reader(in);
    std::string_view line;
    while (true) {
      auto r = reader.next(line);
      if (!r || !*r) {
        break;
      }
      if (line.find('\n') != std::string_view::npos) {
        std::abort();
      }
    }
  }
  return 0;
}
