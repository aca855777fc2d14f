// Verifying one token against the registry: the key of its kid, the revocation set, the grant
// that bounds it, and inspecting a token without verifying it.
#include "fleet/convert.hpp"
#include "token_mint.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/fleet/tokens.hpp>
#include <fleetkey/registry/store.hpp>
#include <fleetkey/util/text.hpp>

#include <memory>
#include <mutex>

namespace fleetkey::fleet {

namespace {

constexpr token::Format k_formats[] = {token::Format::cwt, token::Format::cwt64, token::Format::jwt};

size_t format_index(token::Format f)
{
  return static_cast<size_t>(f);
}

} // namespace

struct TokenVerifier::Version
{
  bool retired = false;
  std::unique_ptr<token::MacKey> keys[3];
  std::unique_ptr<crypto::MasterDeriver> deriver; // for device keys, used under m_mutex
};

struct TokenVerifier::Device
{
  bool known = false;
  bool revoked = false;
  uint32_t key_version = 0;
  std::unique_ptr<token::MacKey> keys[3];
};

TokenVerifier::TokenVerifier(Fleet& fleet, const VerifyOptions& options, Preload preload)
    : m_fleet(fleet)
    , m_audience(options.audience.value_or(""))
    , m_preload(preload)
{
  // token::Checks takes an empty audience for "any": an empty --aud must not turn the check off.
  if (options.audience && options.audience->empty()) {
    throw Error(Exit::usage, "--aud must name a device, not be empty");
  }
  if (options.leeway < 0) {
    throw Error(Exit::usage, "--leeway must not be negative");
  }
  m_checks.now = now_or_clock(options.now);
  m_checks.leeway = options.leeway;
  m_checks.audience = m_audience;
  auto& reg = fleet.registry();
  const auto& ring = fleet.keyring();
  for (const auto& rec : reg.master_keys()) {
    auto v = std::make_unique<Version>();
    v->retired = rec.status == "retired";
    if (!v->retired) {
      const auto& mk = ring.get(rec.version);
      v->deriver = std::make_unique<crypto::MasterDeriver>(mk);
      for (auto f : k_formats) {
        const auto k = v->deriver->token_key(token::key_label(f));
        v->keys[format_index(f)] = std::make_unique<token::MacKey>(k.span());
      }
    }
    m_versions.emplace(rec.version, std::move(v));
  }
  if (preload == Preload::all) {
    // Stored folded, as token_id() folds a token's (schema 3 folded rows recorded before).
    reg.for_each_revoked_token([this](std::string_view id) { m_revoked_tokens.emplace(id); });
    reg.for_each_grant_state([this](std::string_view user, std::string_view device, std::string_view role,
                                    uint64_t epoch, std::string_view status, std::string_view expires) {
      std::string key;
      key.append(user).push_back('\0');
      key.append(device);
      m_grants.emplace(std::move(key),
                       Grant{epoch, status == "active",
                             grant_expiry(user, device, expires.empty() ? std::nullopt : std::optional(expires)),
                             std::string(role)});
    });
    reg.for_each_user_name([this](std::string_view name) { m_users.emplace(name); });
  }
}

TokenVerifier::~TokenVerifier() = default;

token::Reason TokenVerifier::verify(std::string_view text, token::Verification& v)
{
  return token::verify(text, *this, m_checks, v);
}

const TokenVerifier::Device& TokenVerifier::device(std::string_view id)
{
  // Called with m_mutex held. Only registered devices are remembered: the ids come from tokens,
  // and remembering every unknown one would let a stream of forged kids grow the cache without end.
  static const Device k_unknown;
  if (auto it = m_devices.find(id); it != m_devices.end()) {
    return *it->second;
  }
  auto rec = m_fleet.registry().device(id);
  if (!rec) {
    return k_unknown;
  }
  auto d = std::make_unique<Device>();
  d->known = true;
  d->revoked = rec->status == "revoked";
  d->key_version = rec->key_version;
  return *m_devices.emplace(std::string(id), std::move(d)).first->second;
}

const token::MacKey* TokenVerifier::key(const token::Kid& kid, token::Format f, std::string& why)
{
  const auto vit = m_versions.find(kid.version);
  if (vit == m_versions.end()) {
    why = fmt::format("master key version {} is not in the registry", kid.version);
    return nullptr;
  }
  const Version& ver = *vit->second;
  if (ver.retired) {
    why = fmt::format("master key version {} is retired", kid.version);
    return nullptr;
  }
  if (kid.device.empty()) {
    return ver.keys[format_index(f)].get();
  }
  std::lock_guard lock(m_mutex);
  const Device& dc = device(kid.device);
  if (!dc.known) {
    why = fmt::format("device \"{}\" is not registered", kid.device);
    return nullptr;
  }
  if (dc.key_version != kid.version) {
    why = fmt::format("device \"{}\" has keys of master version {}, not {}", kid.device, dc.key_version, kid.version);
    return nullptr;
  }
  auto& slot = const_cast<Device&>(dc).keys[format_index(f)];
  if (!slot) {
    const auto dev = ver.deriver->device_key(kid.device);
    const auto k = crypto::DeviceDeriver(dev).token_key(token::key_label(f));
    slot = std::make_unique<token::MacKey>(k.span());
  }
  return slot.get();
}

std::optional<TokenVerifier::Grant> TokenVerifier::grant(std::string_view user, std::string_view device,
                                                         std::string& scratch)
{
  if (m_preload == Preload::all) {
    scratch.assign(user).push_back('\0');
    scratch.append(device);
    const auto it = m_grants.find(std::string_view(scratch));
    return it == m_grants.end() ? std::nullopt : std::optional(it->second);
  }
  std::lock_guard lock(m_mutex);
  const auto g = m_fleet.registry().grant(user, device);
  return g ? std::optional(Grant{g->epoch, g->status == "active", grant_expiry(*g), g->role}) : std::nullopt;
}

bool TokenVerifier::is_user(std::string_view name)
{
  if (m_preload == Preload::all) {
    return m_users.find(name) != m_users.end();
  }
  std::lock_guard lock(m_mutex);
  return m_fleet.registry().user(name).has_value();
}

token::Reason TokenVerifier::revocation(const token::Claims& c, token::Format f, std::string& why)
{
  thread_local std::string id;
  // With every revocation preloaded and none recorded, no token id needs formatting.
  if (!c.has(token::Claims::cti) || (m_preload == Preload::all && m_revoked_tokens.empty())) {
    return token::Reason::valid;
  }
  token::token_id(c, f, id);
  bool is_revoked = false;
  if (m_preload == Preload::all) {
    is_revoked = m_revoked_tokens.find(std::string_view(id)) != m_revoked_tokens.end();
  } else {
    std::lock_guard lock(m_mutex);
    auto& reg = m_fleet.registry();
    is_revoked = reg.token_revocation(id).has_value();
  }
  if (is_revoked) {
    why = fmt::format("token {} was revoked", id);
    return token::Reason::revoked;
  }
  return token::Reason::valid;
}

token::Reason TokenVerifier::standing(const token::Claims& c, token::Format f, const token::Kid& kid, std::string& why)
{
  if (const auto r = revocation(c, f, why); r != token::Reason::valid) {
    return r;
  }
  std::string_view device_id = kid.device;
  if (device_id.empty() && c.has(token::Claims::aud)) {
    device_id = c.aud_value;
  }
  if (device_id.empty()) {
    return token::Reason::valid;
  }
  {
    std::lock_guard lock(m_mutex);
    const Device& d = device(device_id);
    if (d.revoked) {
      why = fmt::format("device \"{}\" is revoked", device_id);
      return token::Reason::revoked;
    }
  }
  if (!c.has(token::Claims::sub)) {
    return token::Reason::valid;
  }
  return grant_standing(c, device_id, why);
}

// A subject with a grant on the device is bound to it: the token must carry the grant's current epoch,
// and the grant must be active and unexpired. Without a grant, only a token that claims an epoch is
// refused.
token::Reason TokenVerifier::grant_standing(const token::Claims& c, std::string_view device_id, std::string& why)
{
  thread_local std::string scratch;
  const auto g = grant(c.sub_value, device_id, scratch);
  if (!g) {
    if (c.has(token::Claims::epoch)) {
      why = fmt::format("\"{}\" has no grant on device \"{}\"", c.sub_value, device_id);
      return token::Reason::revoked;
    }
    if (is_user(c.sub_value)) {
      // A registered user's token never grants more than the user's grant: here, none.
      why = fmt::format("\"{}\" is a registered user with no grant on device \"{}\"", c.sub_value, device_id);
      return token::Reason::revoked;
    }
    return token::Reason::valid; // a service: bound by its exp
  }
  if (!c.has(token::Claims::epoch)) {
    why = fmt::format("the token has no epoch, but \"{}\" has a grant on device \"{}\" ({}, epoch {})", c.sub_value,
                      device_id, g->active ? "active" : "revoked", g->epoch);
    return token::Reason::revoked;
  }
  if (!g->active) {
    why = fmt::format("grant of \"{}\" on device \"{}\" was revoked (token epoch {}, grant epoch {})", c.sub_value,
                      device_id, c.epoch_value, g->epoch);
    return token::Reason::revoked;
  }
  if (g->epoch != c.epoch_value) {
    // The grant is active: it was granted again since this token, whose epoch it superseded.
    why = c.epoch_value < g->epoch
              ? fmt::format("the token's grant epoch {} is superseded: the grant of \"{}\" on device \"{}\" is at "
                            "epoch {}",
                            c.epoch_value, c.sub_value, device_id, g->epoch)
              : fmt::format("the token's grant epoch {} is not the current epoch {} of the grant of \"{}\" on device "
                            "\"{}\"",
                            c.epoch_value, g->epoch, c.sub_value, device_id);
    return token::Reason::revoked;
  }
  if (g->expires && token::has_passed(*g->expires, m_checks.now, m_checks.leeway)) {
    why = fmt::format("grant of \"{}\" on device \"{}\" expired at {} (now {})", c.sub_value, device_id, *g->expires,
                      m_checks.now);
    return token::Reason::expired;
  }
  // Never more than the grant: its role, and no life beyond its expiry.
  if (c.has(token::Claims::scope) && c.scope_value != g->role) {
    why = fmt::format("the token's role {} exceeds the grant of \"{}\" on device \"{}\", which is for role {}",
                      c.scope_value, c.sub_value, device_id, g->role);
    return token::Reason::revoked;
  }
  if (g->expires && (!c.has(token::Claims::exp) || c.exp_value > *g->expires)) {
    why = fmt::format("the token outlives the grant of \"{}\" on device \"{}\", which expires at @{}", c.sub_value,
                      device_id, *g->expires);
    return token::Reason::revoked;
  }
  return token::Reason::valid;
}

std::unique_ptr<Verified> verify_token(Fleet& fleet, std::string_view text, const VerifyOptions& options)
{
  TokenVerifier verifier(fleet, options, Preload::none);
  auto out = std::make_unique<Verified>();
  out->reason = verifier.verify(text, out->verification);
  return out;
}

std::unique_ptr<token::Verification> inspect_token(std::string_view text)
{
  auto v = std::make_unique<token::Verification>();
  if (!v->decoder.decode(text, v->decoded, v->claims, v->detail)) {
    throw Error(Exit::token_malformed, "malformed token: {}", v->detail);
  }
  return v;
}

} // namespace fleetkey::fleet
