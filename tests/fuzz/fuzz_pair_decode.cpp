// libFuzzer target for `pair decode`: any input is decoded without crashing, and every code it
// accepts is encoded back to the same canonical text.
#include <fleetkey/pairing/decode.hpp>
#include <fleetkey/pairing/verhoeff.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>

using namespace fleetkey::pairing;

namespace {

std::string strip(std::string_view typed)
{
  std::string out;
  for (char c : typed) {
    if (c != '-' && c != ' ') {
      out += c;
    }
  }
  return out;
}

void check(bool ok)
{
  if (!ok) {
    std::abort();
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (auto hint : {SchemeHint::any, SchemeHint::fleetkey, SchemeHint::matter}) {
    auto r = decode(text, hint);
    if (!r) {
      check(!r.error().empty());
      continue;
    }
    if (const auto* p = std::get_if<NativePayload>(&*r)) {
      check(native_payload(p->code, p->device) == text);
      check(verhoeff_valid(p->code));
    } else if (const auto* n = std::get_if<DecodedNativeCode>(&*r)) {
      check(n->code == strip(text));
      check(verhoeff_valid(n->code));
    } else if (const auto* m = std::get_if<MatterPayload>(&*r)) {
      check(matter_qr(*m) == text);
      check(!payload_problem(*m));
    } else {
      const auto& c = std::get<ManualCode>(*r);
      MatterPayload p;
      p.passcode = c.passcode;
      p.discriminator = static_cast<uint16_t>(c.short_discriminator << 8);
      p.flow = c.long_code ? 2 : 0;
      p.vendor_id = c.vendor_id;
      p.product_id = c.product_id;
      check(matter_manual_code(p) == strip(text));
    }
  }
  return 0;
}
