#include <fleetkey/pairing/decode.hpp>

#include <fmt/format.h>

namespace fleetkey::pairing {

namespace {

bool typed_digits(std::string_view text, size_t& count)
{
  count = 0;
  for (char c : text) {
    if (c >= '0' && c <= '9') {
      ++count;
    } else if (c != '-' && c != ' ') {
      return false;
    }
  }
  return count > 0;
}

} // namespace

Result<Decoded> decode(std::string_view text, SchemeHint hint)
{
  if (text.empty()) {
    return fail("empty code");
  }
  size_t digits = 0;
  if (typed_digits(text, digits)) {
    const bool matter = hint == SchemeHint::matter || (hint == SchemeHint::any && (digits == 11 || digits == 21));
    if (matter) {
      auto m = parse_matter_manual_code(text);
      if (!m) {
        return fail(m.error());
      }
      return Decoded{*m};
    }
    auto code = parse_native_code(text);
    if (!code) {
      return fail(code.error());
    }
    return Decoded{DecodedNativeCode{*code}};
  }
  if (text.substr(0, 3) == "MT:") {
    if (hint == SchemeHint::fleetkey) {
      return fail("a Matter payload (\"MT:\"), not a fleetkey one");
    }
    auto p = parse_matter_qr(text);
    if (!p) {
      return fail(p.error());
    }
    return Decoded{*p};
  }
  if (hint == SchemeHint::matter) {
    return fail("not a Matter code: expected \"MT:\" and base38, or 11 or 21 digits");
  }
  auto p = parse_native_payload(text);
  if (!p) {
    return fail(p.error());
  }
  return Decoded{*p};
}

} // namespace fleetkey::pairing
