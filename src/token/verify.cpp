#include "claims_json.hpp"

#include <fleetkey/token/verify.hpp>
#include <fleetkey/util/json_escape.hpp>

#include <fmt/format.h>

#include <cstdlib>

namespace fleetkey::token {

std::string_view reason_name(Reason r)
{
  switch (r) {
  case Reason::valid:
    return "ok";
  case Reason::malformed:
    return "malformed";
  case Reason::unknown_key:
    return "unknown_key";
  case Reason::bad_mac:
    return "bad_mac";
  case Reason::expired:
    return "expired";
  case Reason::not_yet_valid:
    return "not_yet_valid";
  case Reason::wrong_audience:
    return "wrong_audience";
  case Reason::revoked:
    return "revoked";
  }
  return "?";
}

Exit reason_exit(Reason r)
{
  switch (r) {
  case Reason::valid:
    return Exit::ok;
  case Reason::malformed:
    return Exit::token_malformed;
  case Reason::unknown_key:
    return Exit::token_unknown_key;
  case Reason::bad_mac:
    return Exit::token_bad_mac;
  case Reason::expired:
    return Exit::token_expired;
  case Reason::not_yet_valid:
    return Exit::token_not_yet_valid;
  case Reason::wrong_audience:
    return Exit::token_wrong_audience;
  case Reason::revoked:
    return Exit::token_revoked;
  }
  return Exit::failure;
}

bool has_passed(int64_t at, int64_t now, int64_t leeway)
{
  int64_t earliest = 0;
  if (__builtin_sub_overflow(now, leeway, &earliest)) {
    return leeway < 0; // now - leeway is past INT64_MAX (leeway < 0) or before INT64_MIN
  }
  return earliest >= at;
}

bool is_ahead(int64_t at, int64_t now, int64_t leeway)
{
  int64_t latest = 0;
  if (__builtin_add_overflow(now, leeway, &latest)) {
    return leeway < 0; // now + leeway is before INT64_MIN (leeway < 0) or past INT64_MAX
  }
  return latest < at;
}

namespace {

// What every fleetkey token carries beyond what RFC 8392 and RFC 7519 require: an id to revoke it
// by, and a bound on its life (exp, or a grant epoch that `user revoke` and re-granting bump).
bool has_required_claims(const Claims& c, Format f, std::string& why)
{
  if (!c.has(Claims::cti)) {
    why = f == Format::jwt ? "no jti" : "no cti";
    return false;
  }
  if (!c.has(Claims::exp) && !c.has(Claims::epoch)) {
    why = "no exp";
    return false;
  }
  return true;
}

// Decoding and the claims every token needs: the malformed step of fleetkey-tokens(5).
bool decode_checked(std::string_view text, Verification& v)
{
  return v.decoder.decode(text, v.decoded, v.claims, v.detail)
         && has_required_claims(v.claims, v.decoded.format, v.detail);
}

Reason after_decode(Authority& authority, const Checks& checks, Verification& v, const Kid& kid)
{
  const Decoded& d = v.decoded;
  const Claims& c = v.claims;
  const MacKey* key = authority.key(kid, d.format, v.detail);
  if (key == nullptr) {
    return Reason::unknown_key;
  }
  if (!check_mac(d, *key)) {
    v.detail = d.tag_len == tag_size(d.format) ? "MAC check failed"
                                               : fmt::format("tag of {} bytes for a {} token (needs {})", d.tag_len,
                                                             format_name(d.format), tag_size(d.format));
    return Reason::bad_mac;
  }
  if (checks.times == TimeChecks::on) {
    if (c.has(Claims::exp) && has_passed(c.exp_value, checks.now, checks.leeway)) {
      v.detail = fmt::format("expired at {} (now {})", c.exp_value, checks.now);
      return Reason::expired;
    }
    if (c.has(Claims::nbf) && is_ahead(c.nbf_value, checks.now, checks.leeway)) {
      v.detail = fmt::format("not valid before {} (now {})", c.nbf_value, checks.now);
      return Reason::not_yet_valid;
    }
  }
  if (!kid.device.empty() && (!c.has(Claims::aud) || c.aud_value != kid.device)) {
    v.detail =
        fmt::format("kid names device \"{}\" but aud is \"{}\"", kid.device, c.has(Claims::aud) ? c.aud_value : "");
    return Reason::wrong_audience;
  }
  if (!checks.audience.empty() && (!c.has(Claims::aud) || c.aud_value != checks.audience)) {
    v.detail = c.has(Claims::aud) ? fmt::format("audience is \"{}\", not \"{}\"", c.aud_value, checks.audience)
                                  : fmt::format("token has no audience, expected \"{}\"", checks.audience);
    return Reason::wrong_audience;
  }
  if (const Reason r = authority.standing(c, d.format, kid, v.detail); r != Reason::valid) {
    return r;
  }
  v.detail.clear();
  return Reason::valid;
}

} // namespace

Reason verify(std::string_view text, Authority& authority, const Checks& checks, Verification& v)
{
  v.detail.clear();
  if (!decode_checked(text, v)) {
    return Reason::malformed;
  }
  Kid kid;
  if (v.decoded.kid.empty()) {
    v.detail = "token has no kid";
    return Reason::unknown_key;
  }
  if (!parse_kid(v.decoded.kid, kid)) {
    v.detail = "kid is not a fleetkey key id (v<N> or v<N>/<device>)";
    return Reason::unknown_key;
  }
  return after_decode(authority, checks, v, kid);
}

const MacKey* FixedKey::key(const Kid&, Format f, std::string& why)
{
  if (f != m_format) {
    why = fmt::format("the key is for {} tokens, not {}", format_name(m_format), format_name(f));
    return nullptr;
  }
  return &m_key;
}

Reason verify_with_key(std::string_view text, util::ByteView key, Format format, const Checks& checks, Verification& v)
{
  FixedKey authority(key, format);
  v.detail.clear();
  if (!decode_checked(text, v)) {
    return Reason::malformed;
  }
  return after_decode(authority, checks, v, Kid{});
}

Reason verify_cwt_bytes(util::ByteView cwt, util::ByteView key, Format format, const Checks& checks, Verification& v)
{
  FixedKey authority(key, format);
  v.detail.clear();
  if (!v.decoder.decode_cwt(cwt, v.decoded, v.claims, v.detail)
      || !has_required_claims(v.claims, v.decoded.format, v.detail)) {
    return Reason::malformed;
  }
  return after_decode(authority, checks, v, Kid{});
}

namespace {

// FLEETKEY_NO_FAST_JSON (any value) turns the reserved-space writer's gain off for
// bench/tokens.sh --no-fast-json: each verdict is then appended one character at a time, each
// append checking the string's capacity, as the writer did before. The bytes are the same.
bool fast_json()
{
  static const bool fast = std::getenv("FLEETKEY_NO_FAST_JSON") == nullptr;
  return fast;
}

void append_verdict_json_fast(std::string& out, Reason reason, const Verification& v)
{
  using detail::put;
  const bool valid = reason == Reason::valid;
  const bool claims = reason != Reason::malformed;
  const Format f = v.decoded.format;
  size_t bound = 96 + util::json_string_bound(v.detail.size());
  if (claims) {
    bound += 64 + util::json_string_bound(v.decoded.kid.size()) + detail::token_id_json_bound(v.claims, f)
             + detail::claims_json_bound(v.claims, f);
  }
  detail::append_bounded(out, bound, [&](char* o) {
    if (valid) {
      o = put(o, R"({"valid":true,"reason":"ok")");
    } else {
      o = put(o, R"({"valid":false,"reason":")");
      o = put(o, reason_name(reason));
      o = put(o, R"(","error":)");
      o = util::put_json_string(o, v.detail);
    }
    if (!claims) {
      return put(o, R"(,"claims":null})");
    }
    o = put(o, R"(,"format":")");
    o = put(o, format_name(f));
    o = put(o, R"(","kid":)");
    o = util::put_json_string(o, v.decoded.kid);
    o = put(o, R"(,"token_id":)");
    o = v.claims.has(Claims::cti) ? detail::put_token_id_json(o, v.claims, f) : put(o, R"("")");
    o = put(o, R"(,"claims":)");
    o = detail::put_claims_json(o, v.claims, f);
    *o++ = '}';
    return o;
  });
}

} // namespace

void append_verdict_json(std::string& out, Reason reason, const Verification& v)
{
  if (fast_json()) {
    append_verdict_json_fast(out, reason, v);
    return;
  }
  thread_local std::string line;
  line.clear();
  append_verdict_json_fast(line, reason, v);
  for (const char ch : line) {
    out.push_back(ch);
  }
}

} // namespace fleetkey::token
