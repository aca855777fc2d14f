#pragma once
// The Verhoeff check digit (dihedral group D5): catches every single-digit error and every
// transposition of adjacent digits. Used by fleetkey PINs and Matter manual pairing codes.

#include <optional>
#include <string_view>

namespace fleetkey::pairing {

// The check digit ('0'-'9') to append to `digits`; nullopt if `digits` holds a non-digit.
std::optional<char> verhoeff_digit(std::string_view digits);

// True if the last digit of `code` is the Verhoeff check digit of the others.
bool verhoeff_valid(std::string_view code);

} // namespace fleetkey::pairing
