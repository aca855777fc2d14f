#pragma once
// UTF-8 validation (RFC 3629). Knows nothing of fleetkey.

#include <cstddef>
#include <string_view>

namespace fleetkey::util {

// True if `s` is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
// ASCII, the common case in tokens and labels, takes one pass without branches per byte.
bool is_valid_utf8(std::string_view s);

// The length (2 to 4) of the well-formed UTF-8 sequence that starts at s[i], a byte >= 0x80; 0 when
// none does (a stray continuation byte, an overlong form, a surrogate, a truncated sequence).
size_t utf8_sequence_length(std::string_view s, size_t i);

} // namespace fleetkey::util
