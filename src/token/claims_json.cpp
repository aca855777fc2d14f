#include "claims_json.hpp"

#include "claims.hpp"

#include <fleetkey/util/json_escape.hpp>

#include <array>
#include <charconv>
#include <cstring>

namespace fleetkey::token {

namespace detail {

namespace {

// The two lower-case hex digits of each byte: one 2-byte copy a byte (a token id is written twice
// a verdict).
constexpr auto k_hex_pairs = [] {
  constexpr char digits[] = "0123456789abcdef";
  std::array<std::array<char, 2>, 256> t{};
  for (size_t b = 0; b < 256; ++b) {
    t[b] = {digits[b >> 4], digits[b & 15]};
  }
  return t;
}();
constexpr size_t k_int_bound = 20;    // "-9223372036854775808"
constexpr size_t k_member_bound = 12; // ',' + "\"epoch\"" + ':' and slack

template<typename Int>
char* put_int(char* o, Int v)
{
  return std::to_chars(o, o + k_int_bound, v).ptr;
}

} // namespace

char* put_hex(char* o, std::string_view bytes)
{
  for (const char ch : bytes) {
    std::memcpy(o, k_hex_pairs[static_cast<uint8_t>(ch)].data(), 2);
    o += 2;
  }
  return o;
}

size_t token_id_json_bound(const Claims& c, Format f)
{
  return f == Format::jwt ? util::json_string_bound(c.cti_value.size()) : 2 + 2 * c.cti_value.size();
}

char* put_token_id_json(char* o, const Claims& c, Format f)
{
  if (f == Format::jwt) {
    // Folding the escaped text is folding the text: no escape holds an upper-case letter.
    char* const start = o;
    o = util::put_json_string(o, c.cti_value);
    for (char* p = start; p != o; ++p) {
      if (*p >= 'A' && *p <= 'Z') {
        *p = static_cast<char>(*p - 'A' + 'a');
      }
    }
    return o;
  }
  *o++ = '"';
  o = put_hex(o, c.cti_value);
  *o++ = '"';
  return o;
}

size_t claims_json_bound(const Claims& c, Format f)
{
  size_t n = 2 + std::size(claim::k_table) * (k_member_bound + k_int_bound);
  for (const auto& s : claim::k_table) {
    if (s.kind == claim::Kind::text) {
      n += util::json_string_bound((c.*s.text).size());
    }
  }
  n += token_id_json_bound(c, f);
  for (size_t i = 0; i < c.extra_count; ++i) {
    n += 2 + util::json_string_bound(c.extra[i].key.size()) + util::json_string_bound(c.extra[i].value.size());
  }
  return n;
}

char* put_claims_json(char* o, const Claims& c, Format f)
{
  char* const start = o;
  *o++ = '{';
  auto separate = [&] {
    if (o != start + 1) {
      *o++ = ',';
    }
  };
  const bool jwt = f == Format::jwt;
  for (const auto& s : claim::k_table) {
    if (!c.has(s.field)) {
      continue;
    }
    separate();
    o = put(o, jwt ? s.jwt_member : s.cwt_member);
    switch (s.kind) {
    case claim::Kind::text:
      o = util::put_json_string(o, c.*s.text);
      break;
    case claim::Kind::time:
      o = put_int(o, c.*s.time);
      break;
    case claim::Kind::id:
      // The claim as it is: a jti keeps its case (only the token id is folded).
      o = jwt ? util::put_json_string(o, c.cti_value) : put_token_id_json(o, c, f);
      break;
    case claim::Kind::epoch:
      o = put_int(o, c.epoch_value);
      break;
    }
  }
  for (size_t i = 0; i < c.extra_count; ++i) {
    separate();
    o = util::put_json_string(o, c.extra[i].key);
    *o++ = ':';
    o = c.extra[i].json ? put(o, c.extra[i].value) : util::put_json_string(o, c.extra[i].value);
  }
  *o++ = '}';
  return o;
}

} // namespace detail

void append_claims_json(std::string& out, const Claims& c, Format f)
{
  detail::append_bounded(out, detail::claims_json_bound(c, f),
                         [&](char* o) { return detail::put_claims_json(o, c, f); });
}

} // namespace fleetkey::token
