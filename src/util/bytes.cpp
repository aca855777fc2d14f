#include <fleetkey/util/bytes.hpp>

#include <sodium.h>

namespace fleetkey::util {

std::string to_hex(ByteView data)
{
  std::string out(data.size() * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), data.data(), data.size());
  out.pop_back();
  return out;
}

Result<Bytes> from_hex(std::string_view hex)
{
  if (hex.size() % 2 != 0) {
    return fail("odd number of hex digits");
  }
  if (hex.empty()) {
    return Bytes{}; // sodium_hex2bin must not be given a null buffer
  }
  Bytes out(hex.size() / 2);
  size_t len = 0;
  const char* end = nullptr;
  if (sodium_hex2bin(out.data(), out.size(), hex.data(), hex.size(), nullptr, &len, &end) != 0
      || end != hex.data() + hex.size()) {
    return fail("not a hex string");
  }
  out.resize(len);
  return out;
}

namespace {

std::string encode(ByteView data, int variant)
{
  std::string out(sodium_base64_encoded_len(data.size(), variant), '\0');
  sodium_bin2base64(out.data(), out.size(), data.data(), data.size(), variant);
  out.resize(out.size() - 1);
  return out;
}

Result<size_t> decode_into(std::span<uint8_t> out, std::string_view text, int variant)
{
  size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(out.data(), out.size(), text.data(), text.size(), nullptr, &len, &end, variant) != 0
      || end != text.data() + text.size()) {
    return fail("not valid base64");
  }
  return len;
}

Result<Bytes> decode(std::string_view text, int variant)
{
  Bytes out(base64_decoded_max(text.size()));
  const auto len = decode_into(out, text, variant);
  if (!len) {
    return fail(len.error());
  }
  out.resize(*len);
  return out;
}

} // namespace

std::string to_base64(ByteView data)
{
  return encode(data, sodium_base64_VARIANT_ORIGINAL);
}
Result<Bytes> from_base64(std::string_view text)
{
  return decode(text, sodium_base64_VARIANT_ORIGINAL);
}
Result<size_t> from_base64_into(std::span<uint8_t> out, std::string_view text)
{
  return decode_into(out, text, sodium_base64_VARIANT_ORIGINAL);
}
std::string to_base64url(ByteView data)
{
  return encode(data, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}
Result<Bytes> from_base64url(std::string_view text)
{
  return decode(text, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

void append_u16be(Bytes& out, uint16_t v)
{
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}

void append_u32be(Bytes& out, uint32_t v)
{
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<uint8_t>(v >> shift));
  }
}

void append_u64be(Bytes& out, uint64_t v)
{
  for (int shift = 56; shift >= 0; shift -= 8) {
    out.push_back(static_cast<uint8_t>(v >> shift));
  }
}

} // namespace fleetkey::util
