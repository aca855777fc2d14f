#pragma once
// `pair decode`: tells which kind of code a string is and reads it back, or says what is wrong.

#include <fleetkey/pairing/matter.hpp>
#include <fleetkey/pairing/pin.hpp>

#include <string_view>
#include <variant>

namespace fleetkey::pairing {

// Which scheme to read a string of digits as: 11 digits are both a Matter manual code and a
// fleetkey code with a 10-digit PIN. `any` reads 11 and 21 digits as Matter, others as fleetkey.
enum class SchemeHint { any, fleetkey, matter };

struct DecodedNativeCode
{
  std::string code; // PIN and check digit
};

using Decoded = std::variant<NativePayload, DecodedNativeCode, MatterPayload, ManualCode>;

Result<Decoded> decode(std::string_view text, SchemeHint hint);

} // namespace fleetkey::pairing
