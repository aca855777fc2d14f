#include "pairing/digits.hpp"

#include <fleetkey/pairing/matter.hpp>
#include <fleetkey/pairing/pin.hpp>
#include <fleetkey/pairing/verhoeff.hpp>

#include <fmt/format.h>

namespace fleetkey::pairing {

namespace {

constexpr size_t k_record_bytes = 11; // 88 bits
constexpr std::string_view k_qr_prefix = "MT:";

// Field widths in packing order, least significant bit of the record first.
constexpr int k_version_bits = 3;
constexpr int k_vendor_bits = 16;
constexpr int k_product_bits = 16;
constexpr int k_flow_bits = 2;
constexpr int k_discovery_bits = 8;
constexpr int k_discriminator_bits = 12;
constexpr int k_passcode_bits = 27;
constexpr int k_padding_bits = 4;

class BitWriter
{
public:
  explicit BitWriter(util::Bytes& out)
      : m_out(out)
  {
    m_out.assign(k_record_bytes, 0);
  }
  void put(uint64_t value, int bits)
  {
    for (int i = 0; i < bits; ++i, ++m_at) {
      if ((value >> i) & 1) {
        m_out[m_at / 8] = static_cast<uint8_t>(m_out[m_at / 8] | (1u << (m_at % 8)));
      }
    }
  }

private:
  util::Bytes& m_out;
  size_t m_at = 0;
};

class BitReader
{
public:
  explicit BitReader(util::ByteView in)
      : m_in(in)
  {
  }
  uint64_t get(int bits)
  {
    uint64_t v = 0;
    for (int i = 0; i < bits; ++i, ++m_at) {
      v |= uint64_t{(static_cast<unsigned>(m_in[m_at / 8]) >> (m_at % 8)) & 1u} << i;
    }
    return v;
  }

private:
  util::ByteView m_in;
  size_t m_at = 0;
};

int base38_value(char c)
{
  const auto at = k_base38_alphabet.find(c);
  return at == std::string_view::npos ? -1 : static_cast<int>(at);
}

uint32_t number(std::string_view digits)
{
  uint32_t v = 0;
  for (char c : digits) {
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  return v;
}

} // namespace

std::optional<std::string> passcode_problem(uint64_t passcode)
{
  if (passcode == 0) {
    return "passcode 0 is not allowed";
  }
  if (passcode > k_max_passcode && passcode != 99999999) {
    return fmt::format("passcode {} is out of range (1-{})", passcode, k_max_passcode);
  }
  if (passcode % 11111111 == 0) {
    return fmt::format("passcode {} is eight repeated digits, which Matter forbids", passcode);
  }
  if (passcode == 12345678 || passcode == 87654321) {
    return fmt::format("passcode {} is a sequence, which Matter forbids", passcode);
  }
  return std::nullopt;
}

std::optional<std::string> payload_problem(const MatterPayload& p)
{
  if (p.version != 0) {
    return fmt::format("payload version {} is unknown (only 0 is defined)", p.version);
  }
  if (p.flow > 2) {
    return fmt::format("commissioning flow {} is reserved (0 standard, 1 user-intent, 2 custom)", p.flow);
  }
  if (p.discriminator > 0xfff) {
    return fmt::format("discriminator {} does not fit in 12 bits (0-4095)", p.discriminator);
  }
  return passcode_problem(p.passcode);
}

std::string base38_encode(util::ByteView bytes)
{
  std::string out;
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const size_t n = std::min<size_t>(3, bytes.size() - i);
    uint32_t v = 0;
    for (size_t j = 0; j < n; ++j) {
      v |= uint32_t{bytes[i + j]} << (8 * j);
    }
    const int chars = n == 3 ? 5 : n == 2 ? 4 : 2;
    for (int c = 0; c < chars; ++c) {
      out += k_base38_alphabet[v % 38];
      v /= 38;
    }
  }
  return out;
}

Result<util::Bytes> base38_decode(std::string_view text)
{
  util::Bytes out;
  for (size_t i = 0; i < text.size(); i += 5) {
    const size_t n = std::min<size_t>(5, text.size() - i);
    const size_t bytes = n == 5 ? 3 : n == 4 ? 2 : n == 2 ? 1 : 0;
    if (bytes == 0) {
      return fail(
          fmt::format("base38 text of {} characters has a final group of {} (5, 4 or 2 expected)", text.size(), n));
    }
    uint64_t v = 0;
    for (size_t c = n; c-- > 0;) {
      const int d = base38_value(text[i + c]);
      if (d < 0) {
        return fail(fmt::format("'{}' at offset {} is not a base38 character (0-9 A-Z - .)",
                                static_cast<unsigned char>(text[i + c]) < 0x20
                                        || static_cast<unsigned char>(text[i + c]) >= 0x7f
                                    ? std::string("?")
                                    : std::string(1, text[i + c]),
                                i + c));
      }
      v = v * 38 + static_cast<uint64_t>(d);
    }
    if (v >> (8 * bytes) != 0) {
      return fail(fmt::format("base38 group \"{}\" is too large for {} bytes", text.substr(i, n), bytes));
    }
    for (size_t j = 0; j < bytes; ++j) {
      out.push_back(static_cast<uint8_t>(v >> (8 * j)));
    }
  }
  return out;
}

util::Bytes pack(const MatterPayload& p)
{
  util::Bytes out;
  BitWriter w(out);
  w.put(p.version, k_version_bits);
  w.put(p.vendor_id, k_vendor_bits);
  w.put(p.product_id, k_product_bits);
  w.put(p.flow, k_flow_bits);
  w.put(p.discovery, k_discovery_bits);
  w.put(p.discriminator, k_discriminator_bits);
  w.put(p.passcode, k_passcode_bits);
  w.put(0, k_padding_bits);
  return out;
}

std::string matter_qr(const MatterPayload& p)
{
  return std::string(k_qr_prefix) + base38_encode(pack(p));
}

std::string matter_manual_code(const MatterPayload& p)
{
  const bool long_code = p.flow != static_cast<uint8_t>(MatterFlow::standard);
  const uint32_t short_discriminator = p.discriminator >> 8;
  const uint32_t chunk1 = (long_code ? 1u << 2 : 0u) | (short_discriminator >> 2);
  const uint32_t chunk2 = ((short_discriminator & 3u) << 14) | (p.passcode & 0x3fffu);
  const uint32_t chunk3 = p.passcode >> 14;
  std::string code = fmt::format("{}{:05}{:04}", chunk1, chunk2, chunk3);
  if (long_code) {
    code += fmt::format("{:05}{:05}", p.vendor_id, p.product_id);
  }
  return code + *verhoeff_digit(code);
}

std::string group_manual_code(std::string_view code)
{
  std::string out = fmt::format("{}-{}-{}", code.substr(0, 4), code.substr(4, 3), code.substr(7, 4));
  if (code.size() == 21) {
    out += fmt::format("-{}-{}", code.substr(11, 5), code.substr(16, 5));
  }
  return out;
}

Result<MatterPayload> parse_matter_qr(std::string_view text)
{
  if (text.substr(0, k_qr_prefix.size()) != k_qr_prefix) {
    return fail("a Matter QR payload starts with \"MT:\"");
  }
  const auto body = text.substr(k_qr_prefix.size());
  if (body.find('*') != std::string_view::npos) {
    return fail("concatenated Matter payloads ('*') are not supported");
  }
  auto bytes = base38_decode(body);
  if (!bytes) {
    return fail(bytes.error());
  }
  if (bytes->size() < k_record_bytes) {
    return fail(
        fmt::format("wrong length: {} base38 characters hold {} bytes, a Matter record needs 11 (19 characters)",
                    body.size(), bytes->size()));
  }
  if (bytes->size() > k_record_bytes) {
    return fail(
        fmt::format("{} bytes of optional TLV data follow the record: not supported", bytes->size() - k_record_bytes));
  }
  BitReader r(*bytes);
  MatterPayload p;
  p.version = static_cast<uint8_t>(r.get(k_version_bits));
  p.vendor_id = static_cast<uint16_t>(r.get(k_vendor_bits));
  p.product_id = static_cast<uint16_t>(r.get(k_product_bits));
  p.flow = static_cast<uint8_t>(r.get(k_flow_bits));
  p.discovery = static_cast<uint8_t>(r.get(k_discovery_bits));
  p.discriminator = static_cast<uint16_t>(r.get(k_discriminator_bits));
  p.passcode = static_cast<uint32_t>(r.get(k_passcode_bits));
  const auto padding = r.get(k_padding_bits);
  if (auto problem = payload_problem(p)) {
    return fail(*problem);
  }
  if (padding != 0) {
    return fail("the 4 padding bits are not zero");
  }
  return p;
}

Result<ManualCode> parse_matter_manual_code(std::string_view typed)
{
  const auto digits = digits_of(typed);
  if (!digits || digits->empty()) {
    return fail("a manual pairing code is decimal digits, optionally grouped with '-' or spaces");
  }
  const auto& code = *digits;
  if (code.size() != 11 && code.size() != 21) {
    return fail(fmt::format("wrong length: {} digits, a Matter manual code has 11 or 21", code.size()));
  }
  if (!verhoeff_valid(code)) {
    const auto body = std::string_view(code).substr(0, code.size() - 1);
    return fail(fmt::format("bad check digit: {} ends in {}, the Verhoeff digit of {} is {}", code, code.back(), body,
                            *verhoeff_digit(body)));
  }
  ManualCode m;
  const uint32_t chunk1 = number(std::string_view(code).substr(0, 1));
  const uint32_t chunk2 = number(std::string_view(code).substr(1, 5));
  const uint32_t chunk3 = number(std::string_view(code).substr(6, 4));
  if (chunk1 > 7) {
    return fail(fmt::format("first digit {} is reserved (0-7)", chunk1));
  }
  m.long_code = (chunk1 & 4u) != 0;
  if (m.long_code != (code.size() == 21)) {
    return fail(fmt::format("the first digit says a {} code but it has {} digits",
                            m.long_code ? "21-digit" : "11-digit", code.size()));
  }
  if (chunk2 > 0xffff) {
    return fail(fmt::format("digits 2-6 ({}) exceed 16 bits", chunk2));
  }
  if (chunk3 > 0x1fff) {
    return fail(fmt::format("digits 7-10 ({}) exceed 13 bits", chunk3));
  }
  m.short_discriminator = static_cast<uint8_t>(((chunk1 & 3u) << 2) | (chunk2 >> 14));
  m.passcode = (chunk3 << 14) | (chunk2 & 0x3fffu);
  if (auto problem = passcode_problem(m.passcode)) {
    return fail(*problem);
  }
  if (m.long_code) {
    const uint32_t vid = number(std::string_view(code).substr(10, 5));
    const uint32_t pid = number(std::string_view(code).substr(15, 5));
    if (vid > 0xffff || pid > 0xffff) {
      return fail("vendor or product id exceeds 16 bits");
    }
    m.vendor_id = static_cast<uint16_t>(vid);
    m.product_id = static_cast<uint16_t>(pid);
  }
  return m;
}

uint32_t derive_passcode(const StreamDeriver& device, uint64_t counter)
{
  return static_cast<uint32_t>(sample(device, crypto::Info("pairing-matter-passcode").add_u64(counter), 100000000,
                                      [](uint64_t v) { return !passcode_problem(v); }));
}

uint16_t derive_discriminator(const StreamDeriver& device, uint64_t counter)
{
  return static_cast<uint16_t>(sample(device, crypto::Info("pairing-matter-discriminator").add_u64(counter), 4096,
                                      [](uint64_t) { return true; }));
}

} // namespace fleetkey::pairing
