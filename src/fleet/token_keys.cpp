// Token keys for verifiers outside the fleet: a fleet or device token key, exported with an audit
// row, and its hex, base64 or JWK text.
#include "token_mint.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/util/json_escape.hpp>

#include <sodium.h>

namespace fleetkey::fleet {

TokenKey export_token_key(Fleet& fleet, const std::optional<std::string>& audience, token::Format format)
{
  TokenKey out;
  out.format = format;
  token::Kid kid;
  if (audience) {
    const auto device = usable_device(fleet, *audience);
    out.kid = token::format_kid(device.key_version, device.id);
  } else {
    out.kid = token::format_kid(fleet.keyring().current_version(), "");
  }
  token::parse_kid(out.kid, kid);
  out.key = key_for(fleet, kid, format);
  out.fingerprint = crypto::fingerprint(out.key.span());
  out.test_key = fleet.keyring().is_test_key();
  auto& reg = fleet.registry();
  registry::Transaction tx(reg);
  reg.audit("token.key.export", out.kid, {{"format", token::format_name(format)}, {"fingerprint", out.fingerprint}});
  tx.commit();
  return out;
}

crypto::Secret format_token_key(const TokenKey& key, std::string_view format)
{
  crypto::SecretText text(256 + 6 * key.kid.size() + 2 * key.key.size()); // the JWK is the longest
  if (format == "hex") {
    text.append_hex(key.key.span()).append("\n");
  } else if (format == "base64") {
    text.append_base64(key.key.span(), sodium_base64_VARIANT_ORIGINAL).append("\n");
  } else if (format == "jwk") {
    std::string head = R"({"kty":"oct","kid":)";
    util::append_json_string(head, key.kid);
    if (key.format == token::Format::jwt) {
      head += R"(,"alg":"HS256")";
    }
    head += R"(,"use":"sig","k":")";
    text.append(head).append_base64(key.key.span(), sodium_base64_VARIANT_URLSAFE_NO_PADDING).append("\"}\n");
  } else {
    throw Error(Exit::usage, "unknown key format \"{}\" (hex, base64 or jwk)", format);
  }
  return std::move(text).take();
}

} // namespace fleetkey::fleet
