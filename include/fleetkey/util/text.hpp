#pragma once
// Text validation and time formats. Knows nothing of fleetkey.

#include <fleetkey/util/result.hpp>
#include <fleetkey/util/utf8.hpp> // is_valid_utf8, here before util/utf8.hpp existed

#include <cstdint>
#include <string>
#include <string_view>

namespace fleetkey::util {

// Well-formed UTF-8 with no C0 or C1 control characters and no DEL. Space is allowed.
// The first code point of `s` that is invisible or controls bidirectional text (U+00AD, U+034F, U+061C,
// U+180E, U+200B-U+200F, U+202A-U+202E, U+2060-U+206F, U+FEFF, U+FFF9-U+FFFB, U+E0000-U+E007F), which
// would let two ids look alike or an id display as another; -1 when there is none (or at invalid UTF-8).
int32_t invisible_or_bidi(std::string_view s);
bool is_printable_utf8(std::string_view s);

// Seconds since the Unix epoch, UTC: the system clock's, or the time pin_clock fixed.
int64_t unix_now();
// From now on unix_now() returns `unix_seconds` (SOURCE_DATE_EPOCH with a test key: fleet::Fleet).
void pin_clock(int64_t unix_seconds);
// The system clock, never pinned: for time that must pass (the agent's lifetime).
int64_t system_now();
// "2026-11-22T00:12:17Z"
std::string format_time(int64_t unix_seconds);
// Accepts "2026-11-22T00:12:17Z", "2026-11-22" (midnight UTC), or "@1700000000", in the years 0000
// to 9999 (k_min_time to k_max_time).
Result<int64_t> parse_time(std::string_view text);
inline constexpr int64_t k_min_time = -62167219200; // 0000-01-01T00:00:00Z
inline constexpr int64_t k_max_time = 253402300799; // 9999-12-31T23:59:59Z

// "90s", "15m", "12h", "30d", "2w", or a sum such as "1d12h". A bare number is seconds.
Result<int64_t> parse_duration(std::string_view text);
// The shortest of the forms above that parse_duration reads back to the same value.
std::string format_duration(int64_t seconds);

} // namespace fleetkey::util
