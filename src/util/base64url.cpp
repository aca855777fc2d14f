#include <fleetkey/util/base64url.hpp>

#include <sodium.h>

#include <array>
#include <cstdint>

namespace fleetkey::util {

namespace {

constexpr auto k_b64url_table = [] {
  std::array<int8_t, 256> t{};
  t.fill(-1);
  const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (int i = 0; i < 64; ++i) {
    t[static_cast<uint8_t>(alphabet[i])] = static_cast<int8_t>(i);
  }
  return t;
}();

} // namespace

bool decode_base64url_strict(std::string_view text, Bytes& out)
{
  const size_t n = text.size();
  if (n % 4 == 1) {
    return false;
  }
  out.resize(n / 4 * 3 + (n % 4 == 0 ? 0 : n % 4 - 1));
  const auto* in = reinterpret_cast<const uint8_t*>(text.data());
  uint8_t* o = out.data();
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const int a = k_b64url_table[in[i]], b = k_b64url_table[in[i + 1]], c = k_b64url_table[in[i + 2]],
              d = k_b64url_table[in[i + 3]];
    if ((a | b | c | d) < 0) {
      return false;
    }
    const auto v = static_cast<uint32_t>(a << 18 | b << 12 | c << 6 | d);
    *o++ = static_cast<uint8_t>(v >> 16);
    *o++ = static_cast<uint8_t>(v >> 8);
    *o++ = static_cast<uint8_t>(v);
  }
  const size_t rest = n - i;
  if (rest == 2) {
    const int a = k_b64url_table[in[i]], b = k_b64url_table[in[i + 1]];
    if ((a | b) < 0 || (b & 0x0f) != 0) {
      return false;
    }
    *o++ = static_cast<uint8_t>(a << 2 | b >> 4);
  } else if (rest == 3) {
    const int a = k_b64url_table[in[i]], b = k_b64url_table[in[i + 1]], c = k_b64url_table[in[i + 2]];
    if ((a | b | c) < 0 || (c & 0x03) != 0) {
      return false;
    }
    *o++ = static_cast<uint8_t>(a << 2 | b >> 4);
    *o++ = static_cast<uint8_t>((b & 0x0f) << 4 | c >> 2);
  }
  return true;
}

void append_base64url(std::string& out, ByteView data)
{
  const size_t n = sodium_base64_encoded_len(data.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  const size_t at = out.size();
  out.resize(at + n);
  sodium_bin2base64(out.data() + at, n, data.data(), data.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  out.resize(at + n - 1); // the terminating NUL
}

} // namespace fleetkey::util
