// Minting and revoking tokens: the claims, the grant that bounds a token, the MAC key from the
// hierarchy and the audit record. The verifier is in token_verifier.cpp, the bulk stream in
// token_stream.cpp, exported token keys in token_keys.cpp and the grant bundle in grant_bundle.cpp.
#include "fleet/convert.hpp"
#include "token_mint.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/fleet/devices.hpp>
#include <fleetkey/fleet/tokens.hpp>
#include <fleetkey/registry/store.hpp>
#include <fleetkey/util/text.hpp>

#include <nlohmann/json.hpp>
#include <sodium.h>

#include <algorithm>

namespace fleetkey::fleet {

namespace {

constexpr int64_t k_max_ttl = 10LL * 366 * 24 * 3600;

// The random token id, or for a test master key one derived from the claims, so that fixtures
// minted with --test-seed and --now are reproducible (a real key always gets random bytes).
std::string make_cti(Fleet& fleet, const token::Claims& claims, token::Format f)
{
  const size_t n = f == token::Format::cwt64 ? token::k_cti_size_cwt64 : token::k_cti_size;
  crypto::Secret raw(n);
  if (fleet.keyring().is_test_key()) {
    const auto payload = token::encode_cwt_claims(claims);
    crypto::Info info("test-cti");
    info.add(token::format_name(f)).add(payload);
    raw = crypto::MasterDeriver(fleet.keyring().current()).derive(info, n);
  } else {
    randombytes_buf(raw.data(), n);
  }
  std::string out(reinterpret_cast<const char*>(raw.data()), n);
  if (f == token::Format::jwt) {
    out = util::to_hex(raw.span()); // a JWT's jti is a string: the hex of the same bytes
  }
  return out;
}

// Bounds a token for `req.subject` on `device` by the subject's grant there (fleetkey-tokens(5),
// GRANT-BOUND TOKENS): returns the epoch it must carry (none for a subject that is no registered
// user: a service, bound by its exp only) and cuts a default `ttl` to the grant's expiry.
std::optional<uint64_t> bound_by_grant(Fleet& fleet, const MintRequest& req, std::string_view device, int64_t now,
                                       std::optional<int64_t>& ttl)
{
  auto& reg = fleet.registry();
  const std::string_view subject = req.subject;
  const auto g = reg.grant(subject, device);
  if (!g) {
    if (reg.user(subject)) {
      throw Error(Exit::exceeds_grant,
                  "\"{}\" is a registered user with no grant on device \"{}\": a token for it would exceed the "
                  "grant (use fleetkey user grant)",
                  subject, device);
    }
    return std::nullopt;
  }
  if (g->status != "active") {
    throw Error(Exit::conflict, "the grant of \"{}\" on device \"{}\" is revoked: no token for it", subject, device)
        .with_reason("grant_revoked");
  }
  const auto expiry = grant_expiry(*g);
  if (expiry && now >= *expiry) {
    throw Error(Exit::conflict, "the grant of \"{}\" on device \"{}\" expired at {}: no token for it", subject, device,
                *g->expires)
        .with_reason("grant_expired");
  }
  if (req.role != g->role) {
    throw Error(Exit::exceeds_grant, "--role {} exceeds the grant of \"{}\" on device \"{}\", which is for role {}",
                req.role, subject, device, g->role);
  }
  if (expiry && ttl && now + *ttl > *expiry) {
    if (req.ttl_explicit) {
      throw Error(Exit::exceeds_grant,
                  "--ttl {}s would outlive the grant of \"{}\" on device \"{}\", which expires at {} ({}s from now)",
                  *ttl, subject, device, *g->expires, *expiry - now);
    }
    ttl = *expiry - now;
  }
  return g->epoch;
}

} // namespace

int64_t now_or_clock(const std::optional<int64_t>& now)
{
  if (now) {
    check_now(*now);
  }
  return now ? *now : util::unix_now();
}

crypto::Secret key_for(Fleet& fleet, const token::Kid& kid, token::Format f)
{
  const auto& mk = fleet.master_key(kid.version);
  const crypto::MasterDeriver master(mk);
  if (kid.device.empty()) {
    return master.token_key(token::key_label(f));
  }
  const auto dev = master.device_key(kid.device);
  return crypto::DeviceDeriver(dev).token_key(token::key_label(f));
}

// A registered, active device whose key the caller may use; throws otherwise.
registry::DeviceRecord usable_device(Fleet& fleet, std::string_view id)
{
  auto device = require_device(fleet, id);
  if (device.status == "revoked") {
    throw Error(Exit::conflict, "device \"{}\" is revoked", id).with_reason("device_revoked");
  }
  return device;
}

void check_ttl(const std::optional<int64_t>& ttl)
{
  if (ttl && (*ttl <= 0 || *ttl > k_max_ttl)) {
    throw Error(Exit::usage, "--ttl must be between 1 second and 10 years");
  }
}

// Builds and MACs a token; writes nothing (record_mint does, inside the caller's transaction).
MintedToken make_token(Fleet& fleet, const MintRequest& req)
{
  validate_name(req.subject, "--sub");
  validate_role(req.role);
  check_ttl(req.ttl);
  token::Claims c;
  for (const auto& kv : req.claims) {
    auto [k, v] = parse_label(kv, "--claim");
    for (const char* reserved : {"iss", "sub", "aud", "exp", "nbf", "iat", "cti", "jti", "scope", "epoch"}) {
      if (k == reserved) {
        throw Error(Exit::usage, "--claim {} is set by fleetkey itself (use --sub, --role, --aud or --ttl)", k);
      }
    }
    for (size_t i = 0; i < c.extra_count; ++i) {
      if (c.extra[i].key == k) {
        throw Error(Exit::usage, "--claim {} is given twice", k);
      }
    }
    auto& e = c.add_extra();
    e.key = k;
    e.value = v;
  }
  auto& ring = fleet.keyring();
  uint32_t version = ring.current_version();
  std::string device_id;
  if (req.audience) {
    const auto device = usable_device(fleet, *req.audience);
    version = device.key_version;
    device_id = device.id;
  }
  const int64_t now = now_or_clock(req.now);
  std::optional<uint64_t> epoch = req.epoch;
  std::optional<int64_t> ttl = req.ttl;
  if (req.audience && !epoch) {
    epoch = bound_by_grant(fleet, req, *req.audience, now, ttl);
  }
  if (!ttl && !epoch) {
    // Verifiers reject such a token (fleetkey-tokens(5)): only a grant epoch can stand in for exp.
    throw Error(Exit::usage, "a token without an expiry must be bound to a grant");
  }
  c.present = token::Claims::sub | token::Claims::scope | token::Claims::iat | token::Claims::nbf;
  c.sub_value = req.subject;
  c.scope_value = req.role;
  c.iat_value = c.nbf_value = now;
  if (req.audience) {
    c.present |= token::Claims::aud;
    c.aud_value = *req.audience;
  }
  if (ttl) {
    c.present |= token::Claims::exp;
    // check_ttl and the range of now keep this far from overflow; checked all the same.
    if (__builtin_add_overflow(now, *ttl, &c.exp_value)) {
      throw Error(Exit::usage, "--now plus --ttl is past the largest time a token can carry");
    }
  }
  if (epoch) {
    c.present |= token::Claims::epoch;
    c.epoch_value = *epoch;
  }
  c.cti_value = make_cti(fleet, c, req.format);
  c.present |= token::Claims::cti;

  MintedToken out;
  out.format = req.format;
  out.kid = token::format_kid(version, device_id);
  token::Kid kid;
  token::parse_kid(out.kid, kid);
  const token::MacKey key(key_for(fleet, kid, req.format).span());
  out.text = token::encode(req.format, c, out.kid, key);
  token::token_id(c, req.format, out.token_id);
  out.claims = std::move(c);
  return out;
}

void record_mint(registry::Store& reg, const MintRequest& req, const MintedToken& t)
{
  const auto& c = t.claims;
  reg.audit("token.mint", req.subject,
            {{"token_id", t.token_id},
             {"format", token::format_name(req.format)},
             {"kid", t.kid},
             {"role", req.role},
             {"aud", req.audience ? nlohmann::json(*req.audience) : nlohmann::json(nullptr)},
             {"exp", c.has(token::Claims::exp) ? nlohmann::json(c.exp_value) : nlohmann::json(nullptr)},
             {"epoch", c.has(token::Claims::epoch) ? nlohmann::json(c.epoch_value) : nlohmann::json(nullptr)}});
}

void check_now(int64_t now, std::string_view what)
{
  if (now < k_min_now || now > k_max_now) {
    throw Error(Exit::usage, "{} @{} is out of range (1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z)", what, now);
  }
}

MintedToken mint_token(Fleet& fleet, const MintRequest& req)
{
  auto out = make_token(fleet, req);
  auto& reg = fleet.registry();
  registry::Transaction tx(reg);
  record_mint(reg, req, out);
  tx.commit();
  return out;
}

RevokedToken revoke_token(Fleet& fleet, std::string_view token_or_id, std::string_view reason)
{
  validate_reason(reason);
  RevokedToken out;
  const bool is_id = token_or_id.size() >= 2 && token_or_id.size() <= 128
                     && token_or_id.find_first_not_of("0123456789abcdefABCDEF") == std::string_view::npos;
  if (is_id) {
    // Folded as token_id() folds a token's: "ABCDEF01" names the JWT whose jti is "ABCDEF01", and
    // the CWT whose cti is h'ABCDEF01' (fleetkey-tokens(5), TOKEN IDS).
    out.token_id.assign(token_or_id);
    token::fold_token_id(out.token_id);
  } else {
    // A whole token: it must be one of ours (known key, good MAC) before it is recorded.
    TokenVerifier verifier(fleet, VerifyOptions{}, Preload::none);
    token::Verification v;
    const auto r = verifier.verify(token_or_id, v);
    if (r == token::Reason::malformed || r == token::Reason::unknown_key || r == token::Reason::bad_mac) {
      throw Error(token::reason_exit(r), "cannot revoke this token: {}", v.detail);
    }
    token::token_id(v.claims, v.decoded.format, out.token_id);
    if (out.token_id.empty()) {
      throw Error(Exit::usage, "the token has no cti or jti to revoke");
    }
    if (v.claims.has(token::Claims::exp)) {
      out.exp = v.claims.exp_value;
    }
    // The device it is for (its kid's, else its aud), if registered: only that lock must learn it.
    token::Kid kid;
    std::string_view device;
    if (token::parse_kid(v.decoded.kid, kid) && !kid.device.empty()) {
      device = kid.device;
    } else if (v.claims.has(token::Claims::aud)) {
      device = v.claims.aud_value;
    }
    if (!device.empty() && fleet.registry().device(device)) {
      out.device = std::string(device);
    }
  }
  auto& reg = fleet.registry();
  registry::Transaction tx(reg);
  if (reg.token_revocation(out.token_id)) {
    throw Error(Exit::conflict, "token {} is already revoked", out.token_id).with_reason("already_revoked");
  }
  out.reason = std::string(reason);
  out.created = util::format_time(util::unix_now());
  reg.insert_token_revocation({out.token_id, out.reason, out.created, out.exp, out.device});
  reg.audit("token.revoke", out.token_id,
            {{"reason", reason}, {"exp", out.exp ? nlohmann::json(*out.exp) : nlohmann::json(nullptr)}});
  // The locks that must learn it: the token's device, or with none known every device.
  out.device ? reg.raise_device_state(*out.device) : reg.raise_global_state();
  tx.commit();
  return out;
}

} // namespace fleetkey::fleet
