#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace fleetkey::pairing {

// The digits of a code as a person types it: strips the '-' and ' ' between groups; nullopt on
// anything else. Shared by PIN and Matter manual code decoding.
std::optional<std::string> digits_of(std::string_view typed);

} // namespace fleetkey::pairing
