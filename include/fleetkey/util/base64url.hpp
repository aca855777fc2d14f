#pragma once
// Base64url (RFC 4648 section 5) without padding, for token text: a strict table-driven decoder
// and an appending encoder, both reusing the caller's buffers. util/bytes.hpp has the
// value-returning forms for everything that is not a hot path. Knows nothing of fleetkey.

#include <fleetkey/util/bytes.hpp>

#include <string>
#include <string_view>

namespace fleetkey::util {

// Decodes into `out` (resized): false on any character outside the alphabet, '=', whitespace, a
// length of 1 mod 4, or unused low bits of the last character that are not zero. Token text is
// not secret: the decoder is not constant-time.
bool decode_base64url_strict(std::string_view text, Bytes& out);

// Appends `data` as base64url without padding.
void append_base64url(std::string& out, ByteView data);

} // namespace fleetkey::util
