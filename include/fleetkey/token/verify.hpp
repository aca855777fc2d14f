#pragma once
// Verification policy: decode strictly, require a token id and a lifetime (exp, or a grant
// epoch), find the key the kid names (the key pins the algorithm), check the tag in constant
// time, then times, audience and revocation, in that order (fleetkey-tokens(5), VERIFICATION).

#include <fleetkey/core/error.hpp>
#include <fleetkey/token/token.hpp>

namespace fleetkey::token {

// In the order they are checked; each maps to its own exit code (fleetkey-tokens(5)).
enum class Reason { valid, malformed, unknown_key, bad_mac, expired, not_yet_valid, wrong_audience, revoked };

std::string_view reason_name(Reason r); // "ok", "malformed", "unknown_key", "bad_mac", ...
Exit reason_exit(Reason r);             // Exit::ok, Exit::token_malformed, ...

enum class TimeChecks { on, off };

// now - leeway >= at, exactly and without overflow for any values: an exp (or grant expiry) at
// `at` has passed.
bool has_passed(int64_t at, int64_t now, int64_t leeway);
// now + leeway < at, exactly and without overflow for any values: an nbf at `at` is still ahead.
bool is_ahead(int64_t at, int64_t now, int64_t leeway);

struct Checks
{
  int64_t now = 0;
  int64_t leeway = 0;        // seconds of clock skew allowed on both exp and nbf
  std::string_view audience; // when not empty, the token's aud must equal it
  TimeChecks times = TimeChecks::on;
};

// What verification needs to know beyond the token: keys and revocations. Must be thread-safe.
class Authority
{
public:
  virtual ~Authority() = default;
  // The key for `kid` and format `f`, or nullptr with `why` set.
  virtual const MacKey* key(const Kid& kid, Format f, std::string& why) = 0;
  // The last check, on a token whose MAC, times and audience passed: Reason::valid, or (with
  // `why`) Reason::revoked when the token, its device or its subject's grant was revoked, or
  // Reason::expired when the subject's grant on the device has expired.
  virtual Reason standing(const Claims& c, Format f, const Kid& kid, std::string& why) = 0;
};

// Per-thread scratch and results of verify(); reused from token to token.
struct Verification
{
  Decoder decoder;
  Decoded decoded;
  Claims claims;
  std::string detail; // why, when not valid
  std::string scratch;
};

Reason verify(std::string_view text, Authority& authority, const Checks& checks, Verification& v);

// One verification result as one JSON object (no newline), the shape documented in fleetkey-tokens(5):
// {"valid":..,"reason":..,"error":..,"format":..,"kid":..,"token_id":..,"claims":{..}|null}
void append_verdict_json(std::string& out, Reason reason, const Verification& v);

// An Authority with one fixed key and no revocations, for known-answer tests and devices.
class FixedKey : public Authority
{
public:
  FixedKey(util::ByteView key, Format format)
      : m_key(key)
      , m_format(format)
  {
  }
  const MacKey* key(const Kid&, Format f, std::string& why) override;
  Reason standing(const Claims&, Format, const Kid&, std::string&) override { return Reason::valid; }

private:
  MacKey m_key;
  Format m_format;
};

// Verification with a FixedKey ignores the kid; this is the kid it accepts for any token.
Reason verify_with_key(std::string_view text, util::ByteView key, Format format, const Checks& checks, Verification& v);
Reason verify_cwt_bytes(util::ByteView cwt, util::ByteView key, Format format, const Checks& checks, Verification& v);

} // namespace fleetkey::token
