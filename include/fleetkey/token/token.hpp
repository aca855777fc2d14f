#pragma once
// Role tokens: CWT (RFC 8392) in COSE_Mac0 (RFC 9052) and JWT HS256 (RFC 7519), minted and
// decoded without a registry. The byte layout is specified in fleetkey-tokens(5).

#include <fleetkey/crypto/hmac.hpp>
#include <fleetkey/util/bytes.hpp>
#include <fleetkey/util/result.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace fleetkey::token {

enum class Format { cwt, cwt64, jwt };

std::string_view format_name(Format f); // "cwt", "cwt64", "jwt"
Result<Format> parse_format(std::string_view name);
// The HKDF label of the key for this format: no two formats share a key (fleetkey-tokens(5)).
std::string_view key_label(Format f); // "cose-hmac256/256", "cose-hmac256/64", "jwt-hs256"
int cose_alg(Format f);               // 5, 4; 0 for JWT
size_t tag_size(Format f);            // 32, 8, 32

// Token text is at most this long; longer input is rejected before decoding.
inline constexpr size_t k_max_token_size = 8192;
inline constexpr size_t k_cti_size = 16; // cwt and jwt
inline constexpr size_t k_cti_size_cwt64 = 8;
inline constexpr size_t k_max_jti_size = 128; // bytes of a JWT jti, as of a token id
// The longest device id (fleet::validate_name) and so the longest device part of a kid.
inline constexpr size_t k_max_kid_device = 128;

// The key id: "v<N>" for K_tok of master version N, "v<N>/<device>" for K_tok_dev(device)
// derived from master version N. N is decimal without leading zeros; the device id is
// everything after the first '/', 1 to k_max_kid_device bytes (a longer one names no device
// and is no kid: verifiers never look it up, let alone remember it).
struct Kid
{
  uint32_t version = 0;
  std::string_view device; // empty for server tokens
};
std::string format_kid(uint32_t version, std::string_view device);
bool parse_kid(std::string_view text, Kid& out);

struct Extra
{
  std::string key;
  std::string value;
  bool json = false; // value is raw JSON text (a JWT claim that is not a string), else a string
};

// A token's claims. Strings are reused between tokens by the bulk verifier (clear() keeps capacity).
struct Claims
{
  enum Field : uint32_t {
    iss = 1u << 0,
    sub = 1u << 1,
    aud = 1u << 2,
    exp = 1u << 3,
    nbf = 1u << 4,
    iat = 1u << 5,
    cti = 1u << 6,
    scope = 1u << 7,
    epoch = 1u << 8,
  };
  uint32_t present = 0;
  std::string iss_value, sub_value, aud_value, scope_value;
  int64_t exp_value = 0, nbf_value = 0, iat_value = 0;
  uint64_t epoch_value = 0;
  std::string cti_value; // CWT: the raw cti bytes; JWT: the jti string
  std::vector<Extra> extra;
  size_t extra_count = 0; // entries of `extra` in use

  bool has(Field f) const { return (present & f) != 0; }
  void clear()
  {
    present = 0;
    extra_count = 0;
  }
  Extra& add_extra();
};

// The revocation id of a token: lower-case hex of the CWT cti, or the JWT jti with A-Z folded to
// a-z, so that ids compare without regard to the case of ASCII letters (fleetkey-tokens(5), TOKEN
// IDS). Writes into `out`.
void token_id(const Claims& c, Format f, std::string& out);
// Folds A-Z to a-z in place: what token_id() does to a jti, and `token revoke` to an id it is given.
void fold_token_id(std::string& id);

// A MAC key with its HMAC-SHA256 state precomputed, in guarded memory; mac() is thread-safe.
using MacKey = crypto::HmacSha256;

// A decoded (not yet verified) token. Views point into the decoder's buffers and the input text.
struct Decoded
{
  Format format = Format::cwt;
  std::string kid;
  util::ByteView mac_input; // COSE MAC_structure, or the JWS signing input
  uint8_t tag[32] = {};
  size_t tag_len = 0; // the tag's length, which may exceed 32 (tag then holds its first 32 bytes)
};

// Strict decoding of one token's text, reusing buffers across calls: one Decoder per thread.
class Decoder
{
public:
  // False with `error` set when the token is malformed; the claims are decoded too.
  bool decode(std::string_view text, Decoded& out, Claims& claims, std::string& error);
  // The binary CWT (after base64url): COSE_Mac0, optionally inside CWT tag 61.
  bool decode_cwt(util::ByteView bin, Decoded& out, Claims& claims, std::string& error);

private:
  bool decode_jwt(std::string_view text, size_t dot1, Decoded& out, Claims& claims, std::string& error);
  bool decode_jwt_header(Decoded& out, std::string& error);

  struct JsonScratch;
  std::shared_ptr<JsonScratch> m_json; // the JSON reader's reused buffers
  util::Bytes m_bin;
  util::Bytes m_mac_input;
  util::Bytes m_header;
  util::Bytes m_payload;
};

// Checks the tag in constant time.
bool check_mac(const Decoded& d, const MacKey& key);

// Mints a token; `claims` must hold cti for CWT (jti for JWT).
std::string encode(Format f, const Claims& claims, std::string_view kid, const MacKey& key);
// The deterministic CBOR claims map (payload) of a CWT, for the test-key cti and for tests.
util::Bytes encode_cwt_claims(const Claims& claims);

// Appends the claims as one JSON object, in a fixed member order (fleetkey-tokens(5)).
void append_claims_json(std::string& out, const Claims& c, Format f);

} // namespace fleetkey::token
