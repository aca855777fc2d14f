// Fuzzes util::parse_time and util::parse_duration: any text either parses or gives an error, a
// time lies in the years 0000-9999, and what format_time and format_duration write parses back to
// the same value.
#include <fleetkey/util/text.hpp>

#include <cstdint>
#include <cstdlib>
#include <string_view>

using namespace fleetkey::util;

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
  if (const auto t = parse_time(text)) {
    check(*t >= k_min_time && *t <= k_max_time);
    const auto again = parse_time(format_time(*t));
    check(again && *again == *t);
  } else {
    check(!t.error().empty());
  }
  if (const auto d = parse_duration(text)) {
    check(*d >= 0);
    const auto again = parse_duration(format_duration(*d));
    check(again && *again == *d);
  } else {
    check(!d.error().empty());
  }
  return 0;
}
