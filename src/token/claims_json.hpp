#pragma once
// JSON output of claims and token ids into space reserved up front from an upper bound of its
// length, so that the bulk verifier's hot path has no per-character capacity checks. Shared by
// append_claims_json (token.hpp), the JWT encoder and append_verdict_json (verify.hpp).

#include <fleetkey/token/token.hpp>

#include <cstddef>
#include <cstring>
#include <string>

namespace fleetkey::token::detail {

// Upper bounds of what the put_* functions below write.
size_t token_id_json_bound(const Claims& c, Format f);
size_t claims_json_bound(const Claims& c, Format f);

// The token id (token_id()) as a JSON string: hex of the CWT cti, or the JWT jti escaped and folded.
char* put_token_id_json(char* o, const Claims& c, Format f);
// The claims as one JSON object, in the table's order (claims.hpp), then the extras.
char* put_claims_json(char* o, const Claims& c, Format f);

// Lower-case hex of `bytes` at `o` (2 bytes a byte); returns the end.
char* put_hex(char* o, std::string_view bytes);

// Appends at most `bound` bytes that `write(char*) -> char* end` produces at the end of `out`.
template<typename Write>
void append_bounded(std::string& out, size_t bound, Write&& write)
{
  const size_t at = out.size();
  out.resize(at + bound);
  char* const end = write(out.data() + at);
  out.resize(static_cast<size_t>(end - out.data()));
}

inline char* put(char* o, std::string_view s)
{
  std::memcpy(o, s.data(), s.size());
  return o + s.size();
}

} // namespace fleetkey::token::detail
