#include "pairing/digits.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/pairing/pin.hpp>
#include <fleetkey/pairing/verhoeff.hpp>
#include <fleetkey/util/text.hpp>

#include <fmt/format.h>

namespace fleetkey::pairing {

namespace {

constexpr size_t k_first_read = 64;
constexpr size_t k_full_read = 255 * crypto::k_hash_len; // HKDF-Expand's maximum

uint64_t pow10(int n)
{
  uint64_t v = 1;
  for (int i = 0; i < n; ++i) {
    v *= 10;
  }
  return v;
}

bool scan_words(std::span<const uint8_t> bytes, size_t from, uint64_t limit, uint64_t bound,
                const std::function<bool(uint64_t)>& accept, uint64_t& out)
{
  for (size_t at = from; at + 8 <= bytes.size(); at += 8) {
    uint64_t w = 0;
    for (size_t i = 0; i < 8; ++i) {
      w = (w << 8) | bytes[at + i];
    }
    if (w > limit) {
      continue;
    }
    if (accept(w % bound)) {
      out = w % bound;
      return true;
    }
  }
  return false;
}

Result<std::string> check_code(std::string_view code)
{
  const int n = static_cast<int>(code.size()) - 1;
  if (n < k_min_pin_digits || n > k_max_pin_digits) {
    return fail(fmt::format("wrong length: {} digits, a fleetkey code has {}-{} (a PIN of {}-{} and a check digit)",
                            code.size(), k_min_pin_digits + 1, k_max_pin_digits + 1, k_min_pin_digits,
                            k_max_pin_digits));
  }
  const auto pin = code.substr(0, code.size() - 1);
  if (!verhoeff_valid(code)) {
    return fail(fmt::format("bad check digit: {} ends in {}, the Verhoeff digit of {} is {}", code, code.back(), pin,
                            *verhoeff_digit(pin)));
  }
  if (is_trivial_pin(pin)) {
    return fail(fmt::format("trivial PIN {}: fleetkey never issues one", pin));
  }
  return std::string(code);
}

} // namespace

uint64_t sample(const StreamDeriver& device, const crypto::Info& info, uint64_t bound,
                const std::function<bool(uint64_t)>& accept)
{
  // Words up to `limit` are below floor(2^64 / bound) * bound: their residues are uniform.
  const uint64_t limit = UINT64_MAX - (UINT64_MAX % bound + 1) % bound;
  uint64_t out = 0;
  if (scan_words(device.read(info, k_first_read), 0, limit, bound, accept, out)) {
    return out;
  }
  if (scan_words(device.read(info, k_full_read), k_first_read, limit, bound, accept, out)) {
    return out;
  }
  throw Error(Exit::failure, "no acceptable value in 1020 words of the pairing stream");
}

bool is_trivial_pin(std::string_view digits)
{
  bool same = true;
  bool up = true;
  bool down = true;
  for (size_t i = 1; i < digits.size(); ++i) {
    const int prev = digits[i - 1] - '0';
    const int cur = digits[i] - '0';
    same = same && cur == prev;
    up = up && cur == (prev + 1) % 10;
    down = down && cur == (prev + 9) % 10;
  }
  return same || up || down;
}

std::string derive_pin(const StreamDeriver& device, uint64_t counter, int digits)
{
  if (digits < k_min_pin_digits || digits > k_max_pin_digits) {
    throw Error(Exit::usage, "--pin-digits {} is out of range ({}-{})", digits, k_min_pin_digits, k_max_pin_digits);
  }
  const uint64_t bound = pow10(digits);
  const auto format = [&](uint64_t v) { return fmt::format("{:0{}}", v, digits); };
  const uint64_t v = sample(device, crypto::Info("pairing").add_u64(counter), bound,
                            [&](uint64_t candidate) { return !is_trivial_pin(format(candidate)); });
  return format(v);
}

std::string with_check_digit(std::string_view pin)
{
  return std::string(pin) + *verhoeff_digit(pin);
}

std::string group_code(std::string_view code)
{
  std::string out;
  const auto pin = code.substr(0, code.size() - 1);
  for (size_t i = 0; i < pin.size(); i += 4) {
    out += pin.substr(i, 4);
    out += '-';
  }
  out += code.back();
  return out;
}

std::string native_payload(std::string_view code, std::string_view device_id)
{
  return fmt::format("{}{}:{}:{}", k_payload_scheme, k_payload_version, code, device_id);
}

Result<NativePayload> parse_native_payload(std::string_view payload)
{
  // scheme = 1*(A-Z), version = 1*(0-9), then ':'.
  size_t i = 0;
  while (i < payload.size() && payload[i] >= 'A' && payload[i] <= 'Z') {
    ++i;
  }
  const auto scheme = payload.substr(0, i);
  const size_t version_at = i;
  while (i < payload.size() && payload[i] >= '0' && payload[i] <= '9') {
    ++i;
  }
  if (scheme.empty() || i == version_at || i >= payload.size() || payload[i] != ':') {
    return fail("not a pairing payload: expected SCHEME VERSION \":\" (\"FK1:\" or \"MT:\")");
  }
  if (scheme != k_payload_scheme) {
    return fail(
        fmt::format("unknown scheme \"{}\" (fleetkey payloads start with \"FK1:\", Matter ones with \"MT:\")", scheme));
  }
  const auto version = payload.substr(version_at, i - version_at);
  if (version != std::to_string(k_payload_version)) {
    return fail(fmt::format("unknown fleetkey payload version {} (this fleetkey reads version {})", version,
                            k_payload_version));
  }
  const auto rest = payload.substr(i + 1);
  const auto colon = rest.find(':');
  if (colon == std::string_view::npos) {
    return fail("truncated payload: expected FK1:CODE:DEVICE");
  }
  const auto code = rest.substr(0, colon);
  for (char c : code) {
    if (c < '0' || c > '9') {
      return fail(fmt::format("the code \"{}\" must be decimal digits", code));
    }
  }
  auto checked = check_code(code);
  if (!checked) {
    return fail(checked.error());
  }
  const auto device = rest.substr(colon + 1);
  if (device.empty() || device.size() > 128 || !util::is_printable_utf8(device)) {
    return fail("the device id must be 1-128 bytes of printable UTF-8");
  }
  return NativePayload{std::string(code), std::string(device)};
}

Result<std::string> parse_native_code(std::string_view typed)
{
  const auto digits = digits_of(typed);
  if (!digits || digits->empty()) {
    return fail("a PIN is decimal digits, optionally grouped with '-' or spaces");
  }
  return check_code(*digits);
}

std::optional<std::string> digits_of(std::string_view typed)
{
  std::string out;
  for (char c : typed) {
    if (c >= '0' && c <= '9') {
      out += c;
    } else if (c != '-' && c != ' ') {
      return std::nullopt;
    }
  }
  return out;
}

} // namespace fleetkey::pairing
