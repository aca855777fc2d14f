// Formats, key ids, token ids, the MAC check, and the two entry points that pick a format:
// Decoder::decode and encode. The formats themselves are in cwt.cpp and jwt.cpp, the claim table
// in claims.hpp, JSON output in claims_json.cpp.
#include "claims_json.hpp"
#include "encode.hpp"

#include <fleetkey/crypto/secret.hpp>
#include <fleetkey/token/token.hpp>
#include <fleetkey/util/base64url.hpp>

#include <fmt/format.h>
#include <sodium.h>

#include <charconv>

namespace fleetkey::token {

std::string_view format_name(Format f)
{
  switch (f) {
  case Format::cwt:
    return "cwt";
  case Format::cwt64:
    return "cwt64";
  case Format::jwt:
    return "jwt";
  }
  return "?";
}

Result<Format> parse_format(std::string_view name)
{
  if (name == "cwt") {
    return Format::cwt;
  }
  if (name == "cwt64") {
    return Format::cwt64;
  }
  if (name == "jwt") {
    return Format::jwt;
  }
  return fail(fmt::format("unknown token format \"{}\" (use cwt, cwt64 or jwt)", name));
}

std::string_view key_label(Format f)
{
  switch (f) {
  case Format::cwt:
    return "cose-hmac256/256";
  case Format::cwt64:
    return "cose-hmac256/64";
  case Format::jwt:
    return "jwt-hs256";
  }
  return "?";
}

int cose_alg(Format f)
{
  return f == Format::cwt ? 5 : f == Format::cwt64 ? 4 : 0;
}
size_t tag_size(Format f)
{
  return f == Format::cwt64 ? 8 : 32;
}

std::string format_kid(uint32_t version, std::string_view device)
{
  return device.empty() ? fmt::format("v{}", version) : fmt::format("v{}/{}", version, device);
}

bool parse_kid(std::string_view text, Kid& out)
{
  if (text.size() < 2 || text[0] != 'v' || text[1] == '0') {
    return false;
  }
  const auto slash = text.find('/');
  const auto num = text.substr(1, slash == std::string_view::npos ? std::string_view::npos : slash - 1);
  uint32_t v = 0;
  const auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), v);
  if (ec != std::errc() || p != num.data() + num.size() || num.empty() || v == 0) {
    return false;
  }
  out.version = v;
  out.device = slash == std::string_view::npos ? std::string_view() : text.substr(slash + 1);
  return slash == std::string_view::npos || (!out.device.empty() && out.device.size() <= k_max_kid_device);
}

Extra& Claims::add_extra()
{
  if (extra.size() <= extra_count) {
    extra.emplace_back();
  }
  return extra[extra_count++];
}

void fold_token_id(std::string& id)
{
  for (char& ch : id) {
    if (ch >= 'A' && ch <= 'Z') {
      ch = static_cast<char>(ch - 'A' + 'a');
    }
  }
}

void token_id(const Claims& c, Format f, std::string& out)
{
  out.clear();
  if (!c.has(Claims::cti)) {
    return;
  }
  if (f == Format::jwt) {
    out = c.cti_value;
    fold_token_id(out);
    return;
  }
  out.resize(c.cti_value.size() * 2);
  detail::put_hex(out.data(), c.cti_value);
}

bool check_mac(const Decoded& d, const MacKey& key)
{
  if (d.tag_len != tag_size(d.format)) {
    return false;
  }
  uint8_t full[32];
  key.mac(d.mac_input, full);
  const bool ok = crypto::equal({full, d.tag_len}, {d.tag, d.tag_len});
  sodium_memzero(full, sizeof full);
  return ok;
}

bool Decoder::decode(std::string_view text, Decoded& out, Claims& claims, std::string& error)
{
  claims.clear();
  if (text.empty()) {
    error = "empty token";
    return false;
  }
  if (text.size() > k_max_token_size) {
    error = fmt::format("token of {} bytes is longer than {}", text.size(), k_max_token_size);
    return false;
  }
  const auto dot1 = text.find('.');
  if (dot1 == std::string_view::npos) {
    if (!util::decode_base64url_strict(text, m_bin)) {
      error = "token is not base64url without padding";
      return false;
    }
    return decode_cwt(m_bin, out, claims, error);
  }
  return decode_jwt(text, dot1, out, claims, error);
}

std::string encode(Format f, const Claims& c, std::string_view kid, const MacKey& key)
{
  return f == Format::jwt ? detail::encode_jwt(c, kid, key) : detail::encode_cwt(f, c, kid, key);
}

} // namespace fleetkey::token
