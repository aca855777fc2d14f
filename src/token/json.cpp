#include "json.hpp"

#include <fleetkey/util/bytes.hpp>
#include <fleetkey/util/utf8.hpp>

#include <charconv>

namespace fleetkey::token::json {

namespace {

constexpr int k_max_depth = 16;

void append_utf8(std::string& out, uint32_t cp)
{
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

} // namespace

bool Reader::fail(std::string_view why)
{
  if (m_error.empty()) {
    m_error = std::string(why);
  }
  return false;
}

void Reader::ws()
{
  while (m_p < m_s.size() && (m_s[m_p] == ' ' || m_s[m_p] == '\t' || m_s[m_p] == '\n' || m_s[m_p] == '\r')) {
    ++m_p;
  }
}

bool Reader::next_item(char close, bool& closed)
{
  ws();
  if (m_p < m_s.size() && m_s[m_p] == ',') {
    ++m_p;
    return true;
  }
  if (m_p < m_s.size() && m_s[m_p] == close) {
    ++m_p;
    closed = true;
    return true;
  }
  return fail(close == '}' ? "JSON object not closed" : "JSON array not closed");
}

bool Reader::peek_string()
{
  return m_p < m_s.size() && m_s[m_p] == '"';
}

bool Reader::peek_number()
{
  return m_p < m_s.size() && (m_s[m_p] == '-' || (m_s[m_p] >= '0' && m_s[m_p] <= '9'));
}

namespace {

// The character of a one-letter escape (RFC 8259 section 7), or 0 for none.
char simple_escape(char e)
{
  switch (e) {
  case '"':
    return '"';
  case '\\':
    return '\\';
  case '/':
    return '/';
  case 'b':
    return '\b';
  case 'f':
    return '\f';
  case 'n':
    return '\n';
  case 'r':
    return '\r';
  case 't':
    return '\t';
  default:
    return 0;
  }
}

} // namespace

bool Reader::read_hex4(uint32_t& v)
{
  if (m_s.size() - m_p < 4) {
    return false;
  }
  v = 0;
  for (int i = 0; i < 4; ++i) {
    const int h = util::hex_digit_value(m_s[m_p++]);
    if (h < 0) {
      return false;
    }
    v = v << 4 | static_cast<uint32_t>(h);
  }
  return true;
}

// After "\u": a code point, or a surrogate pair written as two escapes, appended as UTF-8.
bool Reader::unicode_escape(std::string* out)
{
  uint32_t cp = 0;
  if (!read_hex4(cp)) {
    return fail("bad \\u escape in JSON string");
  }
  if (cp >= 0xdc00 && cp <= 0xdfff) {
    return fail("lone surrogate in JSON string");
  }
  if (cp >= 0xd800 && cp <= 0xdbff) {
    uint32_t lo = 0;
    if (m_s.size() - m_p < 2 || m_s[m_p] != '\\' || m_s[m_p + 1] != 'u') {
      return fail("lone surrogate in JSON string");
    }
    m_p += 2;
    if (!read_hex4(lo) || lo < 0xdc00 || lo > 0xdfff) {
      return fail("lone surrogate in JSON string");
    }
    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
  }
  if (out != nullptr) {
    append_utf8(*out, cp);
  }
  return true;
}

// At a backslash inside a string: one escape, its character appended to `out`.
bool Reader::escape(std::string* out)
{
  if (++m_p >= m_s.size()) {
    return fail("unterminated JSON string");
  }
  const char e = m_s[m_p++];
  if (e == 'u') {
    return unicode_escape(out);
  }
  const char plain = simple_escape(e);
  if (plain == 0) {
    return fail("bad escape in JSON string");
  }
  if (out != nullptr) {
    out->push_back(plain);
  }
  return true;
}

bool Reader::string_raw(std::string* out)
{
  if (!peek_string()) {
    return fail("expected a JSON string");
  }
  ++m_p;
  if (out != nullptr) {
    out->clear();
  }
  const size_t start = m_p;
  for (;;) {
    if (m_p >= m_s.size()) {
      return fail("unterminated JSON string");
    }
    const auto c = static_cast<unsigned char>(m_s[m_p]);
    if (c == '"') {
      break;
    }
    if (c < 0x20) {
      return fail("control character in JSON string");
    }
    if (c != '\\') {
      // A run of plain characters is copied at once.
      size_t end = m_p + 1;
      while (end < m_s.size() && m_s[end] != '"' && m_s[end] != '\\' && static_cast<unsigned char>(m_s[end]) >= 0x20) {
        ++end;
      }
      if (out != nullptr) {
        out->append(m_s.data() + m_p, end - m_p);
      }
      m_p = end;
      continue;
    }
    if (!escape(out)) {
      return false;
    }
  }
  const std::string_view raw = m_s.substr(start, m_p - start);
  ++m_p;
  if (!util::is_valid_utf8(out != nullptr ? std::string_view(*out) : raw)) {
    return fail("JSON string is not valid UTF-8");
  }
  return true;
}

bool Reader::number(bool& integral)
{
  const size_t start = m_p;
  integral = true;
  if (m_p < m_s.size() && m_s[m_p] == '-') {
    ++m_p;
  }
  auto digits = [this] {
    const size_t d = m_p;
    while (m_p < m_s.size() && m_s[m_p] >= '0' && m_s[m_p] <= '9') {
      ++m_p;
    }
    return m_p - d;
  };
  const size_t int_start = m_p;
  const size_t n = digits();
  if (n == 0 || (n > 1 && m_s[int_start] == '0')) {
    m_p = start;
    return fail("bad JSON number");
  }
  if (m_p < m_s.size() && m_s[m_p] == '.') {
    integral = false;
    ++m_p;
    if (digits() == 0) {
      return fail("bad JSON number");
    }
  }
  if (m_p < m_s.size() && (m_s[m_p] == 'e' || m_s[m_p] == 'E')) {
    integral = false;
    ++m_p;
    if (m_p < m_s.size() && (m_s[m_p] == '+' || m_s[m_p] == '-')) {
      ++m_p;
    }
    if (digits() == 0) {
      return fail("bad JSON number");
    }
  }
  return true;
}

bool Reader::literal(std::string_view word)
{
  if (m_s.substr(m_p, word.size()) != word) {
    return fail("bad JSON literal");
  }
  m_p += word.size();
  return true;
}

bool Reader::object_body(int depth, std::vector<std::string>& keys, std::string& key)
{
  ++m_p; // '{'
  ws();
  if (m_p < m_s.size() && m_s[m_p] == '}') {
    ++m_p;
    return true;
  }
  for (;;) {
    ws();
    if (!string_raw(&key)) {
      return false;
    }
    for (const auto& k : keys) {
      if (k == key) {
        return fail("duplicate JSON member \"" + key + "\"");
      }
    }
    keys.push_back(key);
    ws();
    if (m_p >= m_s.size() || m_s[m_p] != ':') {
      return fail("JSON member without ':'");
    }
    ++m_p;
    if (!value(depth + 1)) {
      return false;
    }
    bool closed = false;
    if (!next_item('}', closed)) {
      return false;
    }
    if (closed) {
      return true;
    }
  }
}

bool Reader::value(int depth)
{
  if (depth > k_max_depth) {
    return fail("JSON nested too deeply");
  }
  ws();
  if (m_p >= m_s.size()) {
    return fail("truncated JSON");
  }
  switch (m_s[m_p]) {
  case '"':
    return string_raw(nullptr);
  case '{': {
    std::vector<std::string> keys;
    std::string key;
    return object_body(depth, keys, key);
  }
  case '[':
    ++m_p;
    ws();
    if (m_p < m_s.size() && m_s[m_p] == ']') {
      ++m_p;
      return true;
    }
    for (;;) {
      if (!value(depth + 1)) {
        return false;
      }
      bool closed = false;
      if (!next_item(']', closed)) {
        return false;
      }
      if (closed) {
        return true;
      }
    }
  case 't':
    return literal("true");
  case 'f':
    return literal("false");
  case 'n':
    return literal("null");
  default: {
    bool integral = false;
    return number(integral);
  }
  }
}

bool Reader::read_string(std::string& out)
{
  return string_raw(&out);
}

bool Reader::read_int(int64_t& out)
{
  const size_t start = m_p;
  bool integral = false;
  if (!number(integral)) {
    return false;
  }
  if (!integral) {
    return fail("JSON number is not an integer");
  }
  const auto [ptr, ec] = std::from_chars(m_s.data() + start, m_s.data() + m_p, out);
  if (ec != std::errc() || ptr != m_s.data() + m_p) {
    return fail("JSON integer out of range");
  }
  return true;
}

bool Reader::read_raw(std::string_view& out)
{
  const size_t start = m_p;
  if (!value(1)) {
    return false;
  }
  out = m_s.substr(start, m_p - start);
  return true;
}

} // namespace fleetkey::token::json
