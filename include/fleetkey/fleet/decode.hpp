#pragma once
// `pair decode`: what a pairing code someone typed or scanned says, checked (fleetkey-pairing(5)):
// a fleetkey QR payload or PIN, a Matter QR payload or manual code.

#include <fleetkey/pairing/matter.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fleetkey::fleet {

struct DecodedCode
{
  enum class Kind { fleetkey_payload, fleetkey_pin, matter_qr, matter_manual };
  Kind kind = Kind::fleetkey_pin;
  // fleetkey: the PIN with its check digit, grouped ("4821-0937-4"), the number of PIN digits
  // (without the check digit); a payload adds its format version and device id.
  std::string pin;
  std::string pin_grouped;
  size_t pin_digits = 0;
  int version = 0;
  std::string device;
  // Matter QR payload, and its manual code (11 or 21 digits) plain and grouped.
  std::optional<pairing::MatterPayload> matter;
  std::string manual_code;
  std::string manual_grouped;
  // Matter manual code.
  std::optional<pairing::ManualCode> manual;
};

// `scheme`: "any", "fleetkey" or "matter". Throws Error(usage) for a code that does not decode.
DecodedCode decode_pairing_code(std::string_view text, std::string_view scheme);

} // namespace fleetkey::fleet
