#pragma once
// Byte strings and their text encodings. Knows nothing of fleetkey.

#include <fleetkey/util/result.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace fleetkey::util {

using Bytes = std::vector<uint8_t>;
using ByteView = std::span<const uint8_t>;

inline ByteView as_bytes(std::string_view s)
{
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
inline std::string_view as_text(ByteView b)
{
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// The value of one hex digit (0-9, a-f, A-F), or -1.
constexpr int hex_digit_value(char c)
{
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

std::string to_hex(ByteView data);
Result<Bytes> from_hex(std::string_view hex);

// RFC 4648 section 4, with padding.
std::string to_base64(ByteView data);
Result<Bytes> from_base64(std::string_view text);
// The same into `out`, which must hold base64_decoded_max(text.size()) bytes, for callers that keep
// the bytes elsewhere than a Bytes (key material in guarded memory); returns how many it wrote.
constexpr size_t base64_decoded_max(size_t text_size)
{
  return text_size / 4 * 3 + 3;
}
Result<size_t> from_base64_into(std::span<uint8_t> out, std::string_view text);
// RFC 4648 section 5, without padding (JOSE and COSE text forms).
std::string to_base64url(ByteView data);
Result<Bytes> from_base64url(std::string_view text);

void append_u16be(Bytes& out, uint16_t v);
void append_u32be(Bytes& out, uint32_t v);
void append_u64be(Bytes& out, uint64_t v);

} // namespace fleetkey::util
