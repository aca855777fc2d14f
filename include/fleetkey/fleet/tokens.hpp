#pragma once
// Role tokens for the fleet: minting with keys from the hierarchy, verifying against the
// registry (keys, revocations, grants), inspecting, revoking, and the user's grant bundle.

#include <fleetkey/fleet/fleet.hpp>
#include <fleetkey/fleet/users.hpp>
#include <fleetkey/qr/qr.hpp>
#include <fleetkey/token/verify.hpp>

#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace fleetkey::fleet {

// The times a token command accepts for --now (fleetkey-tokens(5), LIMITS): 1970-01-01T00:00:00Z
// to 9999-12-31T23:59:59Z, so that now plus a --ttl or a --leeway cannot overflow.
inline constexpr int64_t k_min_now = 0;
inline constexpr int64_t k_max_now = 253402300799;
// Throws Error(usage) unless k_min_now <= now <= k_max_now; `what` names the option.
void check_now(int64_t now, std::string_view what = "--now");

struct MintRequest
{
  std::string subject;
  std::string role;
  std::optional<std::string> audience; // a registered device: the token is MACed with K_tok_dev(D)
  std::optional<int64_t> ttl = 3600;   // nullopt: no exp claim (only for a token with an epoch)
  // False when `ttl` is only the default: for a grant-bound token it is then cut to the grant's
  // expiry, where an explicit one that outlives the grant is refused (Exit::exceeds_grant).
  bool ttl_explicit = true;
  std::vector<std::string> claims; // K=V extras
  token::Format format = token::Format::cwt;
  std::optional<int64_t> now; // default: the clock
  // The grant epoch. Unset with an audience and a subject that is a registered user: the token is
  // bounded by the user's grant on the device (fleetkey-tokens(5), GRANT-BOUND TOKENS): its epoch,
  // its role, its expiry. No grant, another role or a longer life: Exit::exceeds_grant; a revoked or
  // expired grant: Exit::conflict. A subject that is no registered user gets no epoch.
  std::optional<uint64_t> epoch;
};

struct MintedToken
{
  std::string text;
  token::Format format = token::Format::cwt;
  std::string kid;
  std::string token_id;
  token::Claims claims;
};

MintedToken mint_token(Fleet& fleet, const MintRequest& request);

struct VerifyOptions
{
  std::optional<std::string> audience;
  std::optional<int64_t> now;
  int64_t leeway = 0; // seconds, >= 0
};

enum class Preload { none, all };

// The registry side of verification. With Preload::all, every revoked token id and grant is
// read once up front (the bulk path); otherwise each check asks the registry. Keys of every
// usable master version are derived once; device keys on first use. verify() may be called from
// several threads, each with its own Verification.
class TokenVerifier : public token::Authority
{
public:
  TokenVerifier(Fleet& fleet, const VerifyOptions& options, Preload preload);
  ~TokenVerifier() override;

  token::Reason verify(std::string_view text, token::Verification& v);
  const token::MacKey* key(const token::Kid& kid, token::Format f, std::string& why) override;
  token::Reason standing(const token::Claims& c, token::Format f, const token::Kid& kid, std::string& why) override;

private:
  struct Version;
  struct Device;
  struct Grant
  {
    uint64_t epoch = 0;
    bool active = false;
    std::optional<int64_t> expires; // Unix seconds
    std::string role;
  };
  struct Hash
  {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  const Device& device(std::string_view id); // call with m_mutex held; caches registered devices only
  std::optional<Grant> grant(std::string_view user, std::string_view device, std::string& scratch);
  bool is_user(std::string_view name);
  // standing's steps: whether the token's id is revoked; what the grant of its subject on `device` allows.
  token::Reason revocation(const token::Claims& c, token::Format f, std::string& why);
  token::Reason grant_standing(const token::Claims& c, std::string_view device, std::string& why);

  Fleet& m_fleet;
  token::Checks m_checks;
  std::string m_audience;
  Preload m_preload;
  std::map<uint32_t, std::unique_ptr<Version>> m_versions;
  std::unordered_set<std::string, Hash, std::equal_to<>> m_revoked_tokens;
  std::unordered_map<std::string, Grant, Hash, std::equal_to<>> m_grants;
  std::unordered_set<std::string, Hash, std::equal_to<>> m_users;
  std::mutex m_mutex; // guards m_devices and every registry access after construction
  std::unordered_map<std::string, std::unique_ptr<Device>, Hash, std::equal_to<>> m_devices;
};

// `token verify TOKEN`: throws Error with the reason's exit code unless the token is valid.
struct Verified
{
  token::Reason reason = token::Reason::valid;
  token::Verification verification;
};
std::unique_ptr<Verified> verify_token(Fleet& fleet, std::string_view text, const VerifyOptions& options);

struct StreamResult
{
  Exit first_invalid = Exit::ok; // the exit code of the first invalid token in input order
  uint64_t total = 0;
  uint64_t invalid = 0;
};

// `token verify -`: one token a line from `fd` (blank lines skipped), one JSON line each to
// `out`, in input order, on every core.
StreamResult verify_stream(Fleet& fleet, int fd, std::FILE* out, const VerifyOptions& options);

// `token inspect`: decodes without verifying; throws Error(token_malformed).
std::unique_ptr<token::Verification> inspect_token(std::string_view text);

struct TokenKey
{
  crypto::Secret key;
  std::string kid;
  token::Format format = token::Format::cwt;
  std::string fingerprint;
  bool test_key = false;
};

// The verifying key: K_tok of the current master version, or K_tok_dev(D) with an audience.
TokenKey export_token_key(Fleet& fleet, const std::optional<std::string>& audience, token::Format format);
// "hex", "base64" or "jwk" (RFC 7517 oct key with kid; alg HS256 for JWT keys); newline included.
crypto::Secret format_token_key(const TokenKey& key, std::string_view format);

struct RevokedToken
{
  std::string token_id;
  std::optional<int64_t> exp;
  std::string reason;
  std::string created;
  std::optional<std::string> device; // the registered device the token was for, when known
};

// TOKEN (which must decode and carry a valid MAC) or a token id (hex of 2 to 128 digits, either
// case, recorded in lower case).
RevokedToken revoke_token(Fleet& fleet, std::string_view token_or_id, std::string_view reason);

// `user grant`: the grant, its user key, and a CWT for aud = the device with sub = the user,
// scope = the role, epoch = the grant's epoch, exp = the grant's expiry (none if it has none).
// The grant, the mint and their audit rows are one transaction; `before_commit` (which writes the
// output file) runs inside it, after them, so that if it throws nothing is recorded.
struct GrantBundle
{
  Grant grant;
  MintedToken token;
  bool test_key = false;
};
GrantBundle grant_with_token(Fleet& fleet, std::string_view user, std::string_view device, std::string_view role,
                             std::optional<int64_t> ttl_seconds,
                             const std::function<void(const GrantBundle&)>& before_commit = {},
                             KeepEpoch keep = KeepEpoch::no, std::optional<int64_t> now = std::nullopt);
// The bundle for the user's phone, documented in fleetkey-tokens(5); one line, no newline.
crypto::Secret bundle_json(const GrantBundle& bundle);

// The bundle as a QR code (error correction M, 8-bit mode) for the phone to scan.
enum class QrMode { utf8, png, svg };
QrMode parse_qr_mode(std::string_view name); // throws Error(usage)
std::vector<uint8_t> render_bundle_qr(const crypto::Secret& bundle, QrMode mode, qr::Colors colors = qr::Colors::none);

} // namespace fleetkey::fleet
