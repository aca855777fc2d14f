// Fuzzes cmd::one_line, the escaper of every message fleetkey prints on stderr: whatever the
// input, the output is well-formed UTF-8 without C0 or C1 controls, DEL, U+2028 or U+2029, so that
// a quoted device id or file name can neither break the line nor reach the terminal as a control.
#include "context.hpp"

#include <fleetkey/util/text.hpp>

#include <cstdint>
#include <cstdlib>
#include <string_view>

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
  const std::string out = fleetkey::cmd::one_line(text);
  check(fleetkey::util::is_printable_utf8(out));
  check(out.find("\xE2\x80\xA8") == std::string::npos && out.find("\xE2\x80\xA9") == std::string::npos);
  // Printable ASCII without a backslash is copied as is.
  bool plain = true;
  for (const char c : text) {
    plain = plain && c >= 0x20 && c < 0x7f && c != '\\';
  }
  check(!plain || out == text);
  return 0;
}
