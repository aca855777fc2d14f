#include <fleetkey/core/error.hpp>
#include <fleetkey/fleet/decode.hpp>
#include <fleetkey/pairing/decode.hpp>
#include <fleetkey/pairing/pin.hpp>

#include <variant>

namespace fleetkey::fleet {

DecodedCode decode_pairing_code(std::string_view text, std::string_view scheme)
{
  const auto hint = scheme == "matter"     ? pairing::SchemeHint::matter
                    : scheme == "fleetkey" ? pairing::SchemeHint::fleetkey
                                           : pairing::SchemeHint::any;
  const auto r = pairing::decode(text, hint);
  if (!r) {
    throw Error(Exit::usage, "bad pairing code: {}", r.error());
  }
  DecodedCode out;
  if (const auto* p = std::get_if<pairing::NativePayload>(&*r)) {
    out.kind = DecodedCode::Kind::fleetkey_payload;
    out.version = pairing::k_payload_version;
    out.device = p->device;
    out.pin = p->code;
  } else if (const auto* n = std::get_if<pairing::DecodedNativeCode>(&*r)) {
    out.kind = DecodedCode::Kind::fleetkey_pin;
    out.pin = n->code;
  } else if (const auto* m = std::get_if<pairing::MatterPayload>(&*r)) {
    out.kind = DecodedCode::Kind::matter_qr;
    out.matter = *m;
    out.version = m->version;
    out.manual_code = pairing::matter_manual_code(*m);
    out.manual_grouped = pairing::group_manual_code(out.manual_code);
  } else {
    out.kind = DecodedCode::Kind::matter_manual;
    out.manual = std::get<pairing::ManualCode>(*r);
  }
  if (!out.pin.empty()) {
    out.pin_grouped = pairing::group_code(out.pin);
    out.pin_digits = out.pin.size() - 1;
  }
  return out;
}

} // namespace fleetkey::fleet
