// Fuzzes `device add --label` parsing (fleet::parse_labels), one label a line of the input: the
// labels either parse or fail with fleetkey::Error, and parsed labels (a map) are an object of strings
// that nlohmann writes as strict UTF-8 (dump() throws on anything else) and reads back the same.
#include <fleetkey/core/error.hpp>
#include <fleetkey/fleet/fleet.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
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
  std::vector<std::string> labels;
  for (size_t at = 0; at <= text.size() && labels.size() < 64;) {
    const size_t end = std::min(text.find('\n', at), text.size());
    labels.emplace_back(text.substr(at, end - at));
    at = end + 1;
  }
  try {
    const auto parsed = fleet::parse_labels(labels);
    check(parsed.size() == labels.size());
    for (const auto& l : labels) {
      const auto eq = l.find('=');
      check(eq != std::string::npos && parsed.at(l.substr(0, eq)) == l.substr(eq + 1));
    }
    const nlohmann::json object(parsed);
    check(object.is_object() && nlohmann::json::parse(object.dump()) == object);
  } catch (const Error&) {
  }
  return 0;
}
