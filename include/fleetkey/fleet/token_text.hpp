#pragma once
// What the token commands print of a token: the names of its format and algorithm, its token id,
// its claims and a verification's verdict as JSON, in the shapes fleetkey-tokens(5) documents. cmd
// prints these and never reaches into token/ itself (tests/test_layers.py).

#include <fleetkey/fleet/tokens.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace fleetkey::fleet {

using TokenFormat = token::Format;

// Token text is at most this long; longer input is rejected before decoding.
inline constexpr size_t k_max_token_size = token::k_max_token_size;

std::string_view token_format_name(TokenFormat f);     // "cwt", "cwt64", "jwt"
TokenFormat parse_token_format(std::string_view name); // throws Error(usage)
std::string_view token_alg_name(TokenFormat f);        // "COSE_Mac0, HMAC 256/256 (alg 5)", ...

// A decoded (inspected, or verified) token as the commands print it; `kid` points into the token.
struct TokenSummary
{
  TokenFormat format = TokenFormat::cwt;
  std::string_view kid;
  std::string token_id;
  std::string claims_json; // one JSON object in a fixed member order
};
TokenSummary summarize(const token::Verification& v);

// A minted token's claims as one JSON object, as in TokenSummary.
std::string claims_json(const MintedToken& t);

// `token verify TOKEN`.
bool is_valid(const Verified& v);
// The verdict as one JSON object (no newline): {"valid", "reason", "error", "format", "kid", "token_id",
// "claims"}, as each line of `token verify -`.
std::string verdict_json(const Verified& v);
// Throws the Error that a rejected token exits with (the reason's exit code, "token rejected (REASON):
// DETAIL"); returns when the token is valid.
void require_valid(const Verified& v);

} // namespace fleetkey::fleet
