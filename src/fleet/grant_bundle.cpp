// The user's grant bundle: a grant and its first token in one transaction, the bundle's JSON
// (fleetkey-tokens(5), GRANT BUNDLE) and its QR code.
#include "fleet/convert.hpp"
#include "token_mint.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/fleet/devices.hpp>
#include <fleetkey/qr/qr.hpp>
#include <fleetkey/util/text.hpp>

#include <nlohmann/json.hpp>
#include <sodium.h>

#include <algorithm>

namespace fleetkey::fleet {

GrantBundle grant_with_token(Fleet& fleet, std::string_view user, std::string_view device, std::string_view role,
                             std::optional<int64_t> ttl_seconds,
                             const std::function<void(const GrantBundle&)>& before_commit, KeepEpoch keep,
                             std::optional<int64_t> now_arg)
{
  // Everything that can be checked without the registry is checked before it is written to.
  validate_name(user, "user name");
  validate_name(device, "device id");
  validate_role(role);
  check_ttl(ttl_seconds);
  // What needs no key is refused before a passphrase is asked for (grant_user checks it again
  // inside the transaction, where it counts).
  show_user(fleet, user);
  usable_device(fleet, device);
  fleet.keyring(); // a passphrase prompt must not hold the registry's write lock
  auto& reg = fleet.registry();
  registry::Transaction tx(reg);
  // One clock reading for the grant and its token: created = iat, and expires = exp exactly
  // (user grant --now: that time instead, for fixtures).
  const int64_t now = now_arg.value_or(util::unix_now());
  GrantBundle b;
  b.grant = grant_user(fleet, tx, user, device, role, ttl_seconds, now, keep);
  MintRequest req;
  req.subject = std::string(user);
  req.role = std::string(role);
  req.audience = std::string(device);
  req.epoch = b.grant.grant.epoch;
  req.ttl = std::nullopt;
  req.now = now;
  if (const auto expiry = grant_expiry(b.grant.grant)) {
    req.ttl = std::max<int64_t>(1, *expiry - now);
  }
  b.token = make_token(fleet, req);
  record_mint(reg, req, b.token);
  b.test_key = fleet.keyring().is_test_key();
  if (before_commit) {
    before_commit(b);
  }
  tx.commit();
  return b;
}

crypto::Secret bundle_json(const GrantBundle& b)
{
  nlohmann::ordered_json j;
  j["type"] = "fleetkey-grant";
  j["version"] = 1;
  j["user"] = b.grant.grant.user;
  j["device"] = b.grant.device.id;
  j["role"] = b.grant.grant.role;
  j["epoch"] = b.grant.grant.epoch;
  j["key_version"] = b.grant.device.key_version;
  j["expires"] =
      b.grant.grant.expires ? nlohmann::ordered_json(*b.grant.grant.expires) : nlohmann::ordered_json(nullptr);
  j["fingerprint"] = b.grant.fingerprint;
  j["test_key"] = b.test_key;
  j["token"] = b.token.text;
  j["token_id"] = b.token.token_id;
  // The key is spliced in last, encoded straight into guarded memory sized for the whole bundle,
  // so that no copy of it lands in memory that is freed unzeroed (the json object, a temporary).
  std::string text = j.dump();
  text.pop_back(); // the closing '}'
  constexpr std::string_view k_key_member = R"(,"user_key":")";
  constexpr std::string_view k_end = "\"}";
  const size_t b64_len = sodium_base64_encoded_len(b.grant.user_key.size(), sodium_base64_VARIANT_ORIGINAL) - 1;
  crypto::SecretText out(text.size() + k_key_member.size() + b64_len + k_end.size());
  out.append(text).append(k_key_member).append_base64(b.grant.user_key.span(), sodium_base64_VARIANT_ORIGINAL);
  out.append(k_end);
  sodium_memzero(text.data(), text.size());
  return std::move(out).take();
}

QrMode parse_qr_mode(std::string_view name)
{
  if (name == "utf8") {
    return QrMode::utf8;
  }
  if (name == "png") {
    return QrMode::png;
  }
  if (name == "svg") {
    return QrMode::svg;
  }
  throw Error(Exit::usage, "unknown QR mode \"{}\" (utf8, png or svg)", name);
}

std::vector<uint8_t> render_bundle_qr(const crypto::Secret& bundle, QrMode mode, qr::Colors colors)
{
  const auto m = qr::encode({reinterpret_cast<const char*>(bundle.data()), bundle.size()}, qr::Ec::M);
  if (mode == QrMode::png) {
    return qr::render_png(m);
  }
  std::string text = mode == QrMode::utf8 ? qr::render_utf8(m, 2, colors) : qr::render_svg(m);
  std::vector<uint8_t> out(text.begin(), text.end());
  sodium_memzero(text.data(), text.size());
  return out;
}

} // namespace fleetkey::fleet
