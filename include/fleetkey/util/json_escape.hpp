#pragma once
// JSON string output (RFC 8259) in the one escaping every fleetkey format uses (fleetkey-tokens(5),
// JWT LAYOUT): '"' and '\\' with a backslash, U+0000-U+001F and DEL as \u00xx (lower-case hex),
// every other character, UTF-8 included, as it is; a byte that starts no well-formed UTF-8
// sequence becomes \ufffd, so that output is always valid JSON. Knows nothing of fleetkey.

#include <cstddef>
#include <string>
#include <string_view>

namespace fleetkey::util {

// The most bytes put_json_string() writes for `n` bytes of input: quotes, and \u00XX for each.
constexpr size_t json_string_bound(size_t n)
{
  return 2 + 6 * n;
}

// Writes `s` quoted and escaped at `o`, which has room for json_string_bound(s.size()) bytes;
// returns the end. For writers that reserve space once for a whole line (the bulk verifier).
char* put_json_string(char* o, std::string_view s);

// Appends `s` quoted and escaped.
void append_json_string(std::string& out, std::string_view s);

} // namespace fleetkey::util
