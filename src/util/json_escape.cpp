#include <fleetkey/util/json_escape.hpp>
#include <fleetkey/util/utf8.hpp>

#include <array>
#include <cstring>

namespace fleetkey::util {

namespace {

constexpr auto k_json_escaped = [] {
  std::array<bool, 256> t{};
  for (int c = 0; c < 0x20; ++c) {
    t[static_cast<size_t>(c)] = true;
  }
  t['"'] = t['\\'] = t[0x7f] = true;
  return t;
}();

constexpr char k_hex_digits[] = "0123456789abcdef";

char* put(char* o, std::string_view s)
{
  std::memcpy(o, s.data(), s.size());
  return o + s.size();
}

} // namespace

char* put_json_string(char* o, std::string_view s)
{
  *o++ = '"';
  for (size_t i = 0; i < s.size(); ++i) {
    const char ch = s[i];
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x80) {
      const size_t n = utf8_sequence_length(s, i);
      if (n == 0) {
        o = put(o, "\\ufffd");
        continue;
      }
      o = put(o, s.substr(i, n));
      i += n - 1;
    } else if (!k_json_escaped[c]) {
      *o++ = ch;
    } else if (c == '"' || c == '\\') {
      *o++ = '\\';
      *o++ = ch;
    } else {
      o = put(o, "\\u00");
      *o++ = k_hex_digits[c >> 4];
      *o++ = k_hex_digits[c & 15];
    }
  }
  *o++ = '"';
  return o;
}

void append_json_string(std::string& out, std::string_view s)
{
  const size_t at = out.size();
  out.resize(at + json_string_bound(s.size()));
  char* const end = put_json_string(out.data() + at, s);
  out.resize(static_cast<size_t>(end - out.data()));
}

} // namespace fleetkey::util
