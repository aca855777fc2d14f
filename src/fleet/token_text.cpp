// What the token commands print of a token (fleet/token_text.hpp): forwards to token/, so that the
// names and the JSON are token/'s own, byte for byte the same as `token verify -` prints.
#include <fleetkey/core/error.hpp>
#include <fleetkey/fleet/token_text.hpp>

namespace fleetkey::fleet {

std::string_view token_format_name(TokenFormat f)
{
  return token::format_name(f);
}

TokenFormat parse_token_format(std::string_view name)
{
  auto f = token::parse_format(name);
  if (!f) {
    throw Error(Exit::usage, f.error());
  }
  return *f;
}

std::string_view token_alg_name(TokenFormat f)
{
  switch (f) {
  case TokenFormat::cwt:
    return "COSE_Mac0, HMAC 256/256 (alg 5)";
  case TokenFormat::cwt64:
    return "COSE_Mac0, HMAC 256/64 (alg 4)";
  case TokenFormat::jwt:
    return "JWS, HS256";
  }
  return "?";
}

TokenSummary summarize(const token::Verification& v)
{
  TokenSummary s;
  s.format = v.decoded.format;
  s.kid = v.decoded.kid;
  token::token_id(v.claims, v.decoded.format, s.token_id);
  token::append_claims_json(s.claims_json, v.claims, v.decoded.format);
  return s;
}

std::string claims_json(const MintedToken& t)
{
  std::string out;
  token::append_claims_json(out, t.claims, t.format);
  return out;
}

bool is_valid(const Verified& v)
{
  return v.reason == token::Reason::valid;
}

std::string verdict_json(const Verified& v)
{
  std::string out;
  token::append_verdict_json(out, v.reason, v.verification);
  return out;
}

void require_valid(const Verified& v)
{
  if (v.reason != token::Reason::valid) {
    throw Error(token::reason_exit(v.reason), "token rejected ({}): {}", token::reason_name(v.reason),
                v.verification.detail);
  }
}

} // namespace fleetkey::fleet
