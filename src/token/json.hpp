#pragma once
// A strict JSON reader for JWT headers and claims (RFC 8259): one flat pass, no DOM, duplicate
// members rejected at every level, strings unescaped into reused buffers.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fleetkey::token::json {

// Buffers a Reader reuses, so that decoding a token allocates nothing once they have grown.
struct Scratch
{
  std::vector<std::string> keys;
  std::string key;
};

class Reader
{
public:
  Reader(std::string_view text, Scratch& scratch)
      : m_s(text)
      , m_keys(scratch.keys)
      , m_key(scratch.key)
  {
  }

  // Calls `member(key, *this)` for each member of the top-level object; the callback must
  // consume the value with one of the read_* functions. Checks duplicates and trailing data.
  template<typename Fn>
  bool object(Fn&& member);

  bool read_string(std::string& out);
  bool read_int(int64_t& out); // an integer without fraction or exponent that fits int64
  // Validates any value and gives its raw text.
  bool read_raw(std::string_view& out);
  bool peek_string();
  bool peek_number(); // the next value starts like a number: '-' or a digit

  bool fail(std::string_view why);
  const std::string& error() const { return m_error; }

private:
  void ws();
  // After a member or element: ',' means another follows, `close` ends the container (`closed`);
  // anything else is an error.
  bool next_item(char close, bool& closed);
  bool value(int depth);
  bool string_raw(std::string* out);
  bool escape(std::string* out);
  bool unicode_escape(std::string* out);
  bool read_hex4(uint32_t& v);
  bool number(bool& integral);
  bool literal(std::string_view word);
  bool object_body(int depth, std::vector<std::string>& keys, std::string& key);

  std::string_view m_s;
  size_t m_p = 0;
  std::string m_error;
  std::vector<std::string>& m_keys; // the top level's member names
  std::string& m_key;
};

template<typename Fn>
bool Reader::object(Fn&& member)
{
  ws();
  if (m_p >= m_s.size() || m_s[m_p] != '{') {
    return fail("JSON value is not an object");
  }
  ++m_p;
  size_t count = 0;
  ws();
  if (m_p < m_s.size() && m_s[m_p] == '}') {
    ++m_p;
  } else {
    for (;;) {
      ws();
      if (!string_raw(&m_key)) {
        return fail("JSON member name is not a string");
      }
      for (size_t i = 0; i < count; ++i) {
        // The first byte settles most comparisons without a call to memcmp.
        const auto& k = m_keys[i];
        if (k.size() == m_key.size() && (k.empty() || k[0] == m_key[0]) && k == m_key) {
          return fail("duplicate JSON member \"" + m_key + "\"");
        }
      }
      if (m_keys.size() <= count) {
        m_keys.emplace_back();
      }
      m_keys[count++].assign(m_key);
      ws();
      if (m_p >= m_s.size() || m_s[m_p] != ':') {
        return fail("JSON member without ':'");
      }
      ++m_p;
      ws();
      if (!member(std::string_view(m_keys[count - 1]), *this)) {
        return fail("bad JSON member");
      }
      bool closed = false;
      if (!next_item('}', closed)) {
        return false;
      }
      if (closed) {
        break;
      }
    }
  }
  ws();
  if (m_p != m_s.size()) {
    return fail("trailing data after JSON object");
  }
  return true;
}

} // namespace fleetkey::token::json
