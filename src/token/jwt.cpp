// JWT HS256 (RFC 7519, RFC 7515 compact serialization): decoding the header and the claims, and
// minting. The layout is in fleetkey-tokens(5), JWT LAYOUT.
#include "claims.hpp"
#include "claims_json.hpp"
#include "encode.hpp"
#include "json.hpp"

#include <fleetkey/token/token.hpp>
#include <fleetkey/util/base64url.hpp>
#include <fleetkey/util/json_escape.hpp>

#include <fmt/format.h>

#include <cstring>

namespace fleetkey::token {

namespace {

constexpr std::string_view k_jwt_header_prefix = R"({"alg":"HS256","typ":"JWT","kid":)";

// Without insignificant whitespace, so that the value fits on one JSON line of output.
void strip_json_whitespace(std::string_view raw, std::string& out)
{
  out.clear();
  bool in_string = false;
  bool escaped = false;
  for (const char ch : raw) {
    if (in_string) {
      in_string = escaped || ch != '"';
      escaped = !escaped && ch == '\\';
    } else if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
      continue;
    } else {
      in_string = ch == '"';
    }
    out.push_back(ch);
  }
}

// One member of the claims object: an interpreted claim (claims.hpp) or an extra one, kept as a
// string or, for any other JSON value, as its raw text.
bool read_member(std::string_view key, json::Reader& r, Claims& claims)
{
  // Each failure names its claim; r.fail keeps the first message, so it must come first.
  auto text_claim = [&](std::string& dst, Claims::Field f) {
    claims.present |= f;
    if (!r.peek_string()) {
      return r.fail(fmt::format("{} claim is not a string", key));
    }
    return r.read_string(dst);
  };
  auto int_claim = [&](int64_t& dst, Claims::Field f) {
    claims.present |= f;
    if (!r.peek_number()) {
      return r.fail(fmt::format("{} claim is not an integer", key));
    }
    return r.read_int(dst);
  };
  if (const claim::Spec* s = claim::by_jwt_name(key)) {
    switch (s->kind) {
    case claim::Kind::text:
      return text_claim(claims.*s->text, s->field);
    case claim::Kind::id:
      return text_claim(claims.cti_value, Claims::cti)
             && ((!claims.cti_value.empty() && claims.cti_value.size() <= k_max_jti_size)
                 || r.fail(fmt::format("jti must be 1 to {} bytes", k_max_jti_size)));
    case claim::Kind::time:
      return int_claim(claims.*s->time, s->field);
    case claim::Kind::epoch: {
      int64_t e = 0;
      if (!int_claim(e, Claims::epoch)) {
        return false;
      }
      if (e < 0) {
        return r.fail("epoch claim is not an unsigned integer");
      }
      claims.epoch_value = static_cast<uint64_t>(e);
      return true;
    }
    }
  }
  auto& x = claims.add_extra();
  x.key.assign(key);
  if (r.peek_string()) {
    x.json = false;
    return r.read_string(x.value);
  }
  std::string_view raw;
  x.json = true;
  if (!r.read_raw(raw)) {
    return false;
  }
  strip_json_whitespace(raw, x.value);
  return true;
}

} // namespace

struct Decoder::JsonScratch : json::Scratch
{
  std::string alg;
  std::string typ;
  bool header_ok = false;  // last_header decoded and passed every header check
  std::string last_header; // its base64url text
  std::string last_kid;
};

bool Decoder::decode_jwt_header(Decoded& out, std::string& error)
{
  bool has_alg = false;
  bool bad_alg = false;
  out.kid.clear();
  std::string& scratch = m_json->typ;
  std::string& alg = m_json->alg;
  json::Reader hr(util::as_text(m_header), *m_json);
  const bool header_ok = hr.object([&](std::string_view key, json::Reader& r) {
    if (key == "alg") {
      has_alg = true;
      if (!r.read_string(alg)) {
        return false;
      }
      bad_alg = alg != "HS256";
      return true;
    }
    if (key == "typ") {
      return r.read_string(scratch) && (scratch == "JWT" || r.fail("JWT typ is not \"JWT\""));
    }
    if (key == "kid") {
      return r.read_string(out.kid);
    }
    if (key == "crit") {
      return r.fail("JWT header has critical parameters this verifier does not understand");
    }
    std::string_view raw;
    return r.read_raw(raw);
  });
  if (!header_ok) {
    error = "JWT header: " + hr.error();
    return false;
  }
  if (!has_alg || bad_alg) {
    error = has_alg ? fmt::format("JWT alg \"{}\" is not HS256", alg) : "JWT header has no alg";
    return false;
  }
  return true;
}

bool Decoder::decode_jwt(std::string_view text, size_t dot1, Decoded& out, Claims& claims, std::string& error)
{
  if (!m_json) {
    m_json = std::make_shared<JsonScratch>();
  }
  // JWT: header.payload.signature, each base64url without padding.
  out.format = Format::jwt;
  const auto dot2 = text.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || text.find('.', dot2 + 1) != std::string_view::npos) {
    error = "JWT must have exactly three parts";
    return false;
  }
  // A batch from one issuer repeats one header: its verdict is remembered, byte for byte.
  const auto header_text = text.substr(0, dot1);
  const bool cached = m_json->header_ok && header_text == m_json->last_header;
  if ((!cached && !util::decode_base64url_strict(header_text, m_header))
      || !util::decode_base64url_strict(text.substr(dot1 + 1, dot2 - dot1 - 1), m_payload)
      || !util::decode_base64url_strict(text.substr(dot2 + 1), m_bin)) {
    error = "JWT part is not base64url without padding";
    return false;
  }
  out.mac_input = util::as_bytes(text.substr(0, dot2));
  if (cached) {
    out.kid = m_json->last_kid;
  } else if (!decode_jwt_header(out, error)) {
    m_json->header_ok = false;
    return false;
  } else {
    m_json->header_ok = true;
    m_json->last_header.assign(header_text);
    m_json->last_kid = out.kid;
  }
  if (m_bin.size() != 32) {
    error = fmt::format("JWT signature of {} bytes is not an HS256 tag", m_bin.size());
    return false;
  }
  std::memcpy(out.tag, m_bin.data(), 32);
  out.tag_len = 32;

  json::Reader pr(util::as_text(m_payload), *m_json);
  if (!pr.object([&](std::string_view key, json::Reader& r) { return read_member(key, r, claims); })) {
    error = "JWT claims: " + pr.error();
    return false;
  }
  return true;
}

namespace detail {

std::string encode_jwt(const Claims& c, std::string_view kid, const MacKey& key)
{
  std::string header(k_jwt_header_prefix);
  util::append_json_string(header, kid);
  header += "}";
  std::string payload;
  append_claims_json(payload, c, Format::jwt);
  std::string text;
  util::append_base64url(text, util::as_bytes(header));
  text += '.';
  util::append_base64url(text, util::as_bytes(payload));
  uint8_t tag[32];
  key.mac(util::as_bytes(text), tag);
  text += '.';
  util::append_base64url(text, tag);
  return text;
}

} // namespace detail

} // namespace fleetkey::token
