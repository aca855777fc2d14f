#include <fleetkey/util/utf8.hpp>

namespace fleetkey::util {

size_t utf8_sequence_length(std::string_view s, size_t i)
{
  const auto at = [&](size_t k) {
    return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : static_cast<unsigned char>(0);
  };
  const auto cont = [](unsigned char b) { return (b & 0xc0) == 0x80; };
  const unsigned char b0 = at(0), b1 = at(1);
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    return cont(b1) ? 2 : 0;
  }
  if (b0 >= 0xe0 && b0 <= 0xef) {
    const bool ok1 = b0 == 0xe0 ? b1 >= 0xa0 && b1 <= 0xbf : b0 == 0xed ? b1 >= 0x80 && b1 <= 0x9f : cont(b1);
    return ok1 && cont(at(2)) ? 3 : 0;
  }
  if (b0 >= 0xf0 && b0 <= 0xf4) {
    const bool ok1 = b0 == 0xf0 ? b1 >= 0x90 && b1 <= 0xbf : b0 == 0xf4 ? b1 >= 0x80 && b1 <= 0x8f : cont(b1);
    return ok1 && cont(at(2)) && cont(at(3)) ? 4 : 0;
  }
  return 0;
}

bool is_valid_utf8(std::string_view s)
{
  unsigned char any = 0;
  for (const char c : s) {
    any |= static_cast<unsigned char>(c);
  }
  if ((any & 0x80) == 0) {
    return true;
  }
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t n = utf8_sequence_length(s, i);
    if (n == 0) {
      return false;
    }
    i += n;
  }
  return true;
}

} // namespace fleetkey::util
