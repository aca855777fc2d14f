#pragma once
// Deterministic CBOR (RFC 8949 section 4.2.1) for tokens: an appending encoder and a strict,
// zero-copy pull decoder that accepts only the deterministic encoding of the subset tokens use.

#include <fleetkey/util/bytes.hpp>
#include <fleetkey/util/result.hpp>

#include <cstdint>
#include <string_view>

namespace fleetkey::token::cbor {

enum class Major : uint8_t { uint = 0, nint = 1, bytes = 2, text = 3, array = 4, map = 5, tag = 6, simple = 7 };

// Appends items to a byte buffer. Map keys must be written in deterministic order by the
// caller: sort the encoded keys bytewise (small integer keys first, then shorter text keys).
class Writer
{
public:
  explicit Writer(util::Bytes& out)
      : m_out(out)
  {
  }

  void head(Major major, uint64_t value); // the shortest form, as deterministic CBOR requires
  void uint(uint64_t v) { head(Major::uint, v); }
  void integer(int64_t v);
  void bytes(util::ByteView b);
  void text(std::string_view s);
  void array(uint64_t n) { head(Major::array, n); }
  void map(uint64_t n) { head(Major::map, n); }
  void tag(uint64_t t) { head(Major::tag, t); }
  void raw(util::ByteView b) { m_out.insert(m_out.end(), b.begin(), b.end()); }

private:
  util::Bytes& m_out;
};

// One decoded item head; for bytes and text, `str` is a view into the input.
struct Item
{
  Major major = Major::uint;
  uint64_t value = 0;   // the integer, length, element count, tag number or simple value
  util::ByteView str{}; // bytes or text content
  size_t offset = 0;    // where the item's head starts in the input
};

// Strict: rejects non-shortest heads, indefinite lengths, floats, simple values other than
// false/true/null, invalid UTF-8 text, truncation and nesting deeper than k_max_depth.
// Map key order and duplicate keys are checked by read_map_key().
class Reader
{
public:
  static constexpr int k_max_depth = 16;

  explicit Reader(util::ByteView in)
      : m_in(in)
  {
  }

  // Reads one item's head (and the content of a string); false with error() set on failure.
  bool next(Item& item);
  // Reads one whole item, containers included, without interpreting it.
  bool skip();
  // Reads a map key, checking that its encoding sorts strictly after `previous` (the previous
  // key's encoded bytes, empty for the first key): rejects both disorder and duplicates.
  bool read_map_key(Item& key, util::ByteView& previous);

  bool at_end() const { return m_pos == m_in.size(); }
  size_t pos() const { return m_pos; }
  const std::string& error() const { return m_error; }
  bool fail(std::string_view why);
  util::ByteView encoded(size_t from) const { return m_in.subspan(from, m_pos - from); }

private:
  bool skip_depth(int depth);

  util::ByteView m_in;
  size_t m_pos = 0;
  std::string m_error;
};

// The length in bytes of head(major, value).
size_t head_size(uint64_t value);
// Writes the shortest head for (major, value) at `out`: head_size(value) bytes. Returns the end.
uint8_t* write_head(uint8_t* out, Major major, uint64_t value);

} // namespace fleetkey::token::cbor
