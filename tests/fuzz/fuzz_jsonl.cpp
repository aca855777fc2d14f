// Fuzzes the first pass of `device import` (fleet::read_import_rows) on JSON Lines and CSV: any
// input either reads to the end or fails with fleetkey::Error, and every JSON Lines row it accepts
// agrees with nlohmann's DOM parser on the same line: the same id and model, and labels stored as
// the object the line holds.
#include <fleetkey/core/error.hpp>
#include <fleetkey/fleet/import.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

using namespace fleetkey;

namespace {

void check(bool ok)
{
  if (!ok) {
    std::abort();
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> lines;
  for (size_t at = 0; at <= text.size();) {
    const size_t end = std::min(text.find('\n', at), text.size());
    lines.push_back(text.substr(at, end - at));
    at = end + 1;
  }
  try {
    fleet::read_import_rows(
        text, fleet::ImportFormat::jsonl,
        [&](uint64_t line, std::string_view id, std::optional<std::string_view> model, std::string_view labels) {
          check(line >= 1 && line <= lines.size());
          std::string_view raw = lines[line - 1];
          if (line == 1 && raw.substr(0, 3) == "\xEF\xBB\xBF") {
            raw.remove_prefix(3);
          }
          if (!raw.empty() && raw.back() == '\r') {
            raw.remove_suffix(1);
          }
          const auto dom = nlohmann::json::parse(raw);
          check(dom.is_object() && dom.at("id") == id);
          if (model) {
            check(dom.at("model") == *model);
          } else {
            check(!dom.contains("model") || dom.at("model").is_null());
          }
          const auto stored = nlohmann::json::parse(labels);
          check(stored.is_object());
          if (dom.contains("labels") && !dom.at("labels").is_null()) {
            check(stored == dom.at("labels"));
          } else {
            check(stored.empty());
          }
        });
  } catch (const Error&) {
  }
  try {
    fleet::read_import_rows(
        text, fleet::ImportFormat::csv,
        [](uint64_t, std::string_view id, std::optional<std::string_view>, std::string_view labels) {
          check(!id.empty() && nlohmann::json::parse(labels).is_object());
        });
  } catch (const Error&) {
  }
  return 0;
}
