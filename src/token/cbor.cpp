#include <fleetkey/token/cbor.hpp>
#include <fleetkey/util/utf8.hpp>

#include <algorithm>

namespace fleetkey::token::cbor {

size_t head_size(uint64_t value)
{
  if (value < 24) {
    return 1;
  }
  if (value <= 0xff) {
    return 2;
  }
  if (value <= 0xffff) {
    return 3;
  }
  if (value <= 0xffffffff) {
    return 5;
  }
  return 9;
}

uint8_t* write_head(uint8_t* out, Major major, uint64_t value)
{
  const auto mt = static_cast<uint8_t>(static_cast<uint8_t>(major) << 5);
  const size_t n = head_size(value);
  if (n == 1) {
    *out++ = static_cast<uint8_t>(mt | value);
    return out;
  }
  *out++ = static_cast<uint8_t>(mt | (n == 2 ? 24 : n == 3 ? 25 : n == 5 ? 26 : 27));
  for (size_t i = n - 1; i > 0; --i) {
    *out++ = static_cast<uint8_t>(value >> (8 * (i - 1)));
  }
  return out;
}

void Writer::head(Major major, uint64_t value)
{
  uint8_t buf[9];
  uint8_t* end = write_head(buf, major, value);
  m_out.insert(m_out.end(), buf, end);
}

void Writer::integer(int64_t v)
{
  if (v >= 0) {
    head(Major::uint, static_cast<uint64_t>(v));
  } else {
    head(Major::nint, static_cast<uint64_t>(-(v + 1)));
  }
}

void Writer::bytes(util::ByteView b)
{
  head(Major::bytes, b.size());
  raw(b);
}

void Writer::text(std::string_view s)
{
  head(Major::text, s.size());
  raw(util::as_bytes(s));
}

bool Reader::fail(std::string_view why)
{
  if (m_error.empty()) {
    m_error = std::string(why);
  }
  return false;
}

bool Reader::next(Item& item)
{
  item.offset = m_pos;
  if (m_pos >= m_in.size()) {
    return fail("truncated CBOR");
  }
  const uint8_t ib = m_in[m_pos++];
  item.major = static_cast<Major>(ib >> 5);
  const uint8_t ai = ib & 0x1f;
  uint64_t v = 0;
  if (ai < 24) {
    v = ai;
  } else if (ai <= 27) {
    const size_t n = size_t{1} << (ai - 24);
    if (m_in.size() - m_pos < n) {
      return fail("truncated CBOR");
    }
    for (size_t i = 0; i < n; ++i) {
      v = (v << 8) | m_in[m_pos++];
    }
    if (item.major != Major::simple && head_size(v) != n + 1) {
      return fail("non-canonical CBOR: integer or length not in its shortest form");
    }
  } else if (ai == 31) {
    return fail("non-canonical CBOR: indefinite length");
  } else {
    return fail("malformed CBOR: reserved additional information");
  }
  item.value = v;
  switch (item.major) {
  case Major::bytes:
  case Major::text:
    if (m_in.size() - m_pos < v) {
      return fail("truncated CBOR string");
    }
    item.str = m_in.subspan(m_pos, static_cast<size_t>(v));
    m_pos += static_cast<size_t>(v);
    if (item.major == Major::text
        && !util::is_valid_utf8({reinterpret_cast<const char*>(item.str.data()), item.str.size()})) {
      return fail("CBOR text string is not valid UTF-8");
    }
    return true;
  case Major::simple:
    // false, true and null only: no floats (no deterministic float form is needed for tokens).
    if (ai >= 24 || v < 20 || v > 22) {
      return fail("unsupported CBOR simple value or float");
    }
    return true;
  default:
    return true;
  }
}

bool Reader::skip()
{
  return skip_depth(0);
}

bool Reader::skip_depth(int depth)
{
  if (depth > k_max_depth) {
    return fail("CBOR nested too deeply");
  }
  Item item;
  if (!next(item)) {
    return false;
  }
  switch (item.major) {
  case Major::array:
    for (uint64_t i = 0; i < item.value; ++i) {
      if (!skip_depth(depth + 1)) {
        return false;
      }
    }
    return true;
  case Major::map: {
    util::ByteView prev;
    for (uint64_t i = 0; i < item.value; ++i) {
      const size_t start = m_pos;
      if (!skip_depth(depth + 1)) {
        return false;
      }
      const auto key = encoded(start);
      if (!prev.empty() && !std::lexicographical_compare(prev.begin(), prev.end(), key.begin(), key.end())) {
        return fail(std::equal(prev.begin(), prev.end(), key.begin(), key.end())
                        ? "duplicate CBOR map key"
                        : "non-canonical CBOR: map keys out of order");
      }
      prev = key;
      if (!skip_depth(depth + 1)) {
        return false;
      }
    }
    return true;
  }
  case Major::tag:
    return skip_depth(depth + 1);
  default:
    return true;
  }
}

bool Reader::read_map_key(Item& key, util::ByteView& previous)
{
  const size_t start = m_pos;
  if (!next(key)) {
    return false;
  }
  if (key.major != Major::uint && key.major != Major::nint && key.major != Major::text) {
    return fail("unsupported CBOR map key type");
  }
  const auto enc = encoded(start);
  if (!previous.empty()) {
    const bool dup = std::equal(previous.begin(), previous.end(), enc.begin(), enc.end());
    if (dup) {
      return fail("duplicate CBOR map key");
    }
    if (!std::lexicographical_compare(previous.begin(), previous.end(), enc.begin(), enc.end())) {
      return fail("non-canonical CBOR: map keys out of order");
    }
  }
  previous = enc;
  return true;
}

} // namespace fleetkey::token::cbor
