#include "crypto/sha256.hpp"
#include "json.hpp"

#include <fleetkey/token/cbor.hpp>
#include <fleetkey/token/token.hpp>
#include <fleetkey/token/verify.hpp>
#include <fleetkey/util/error.hpp>
#include <fleetkey/util/text.hpp>

#include <sodium.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>

namespace fleetkey::token {

namespace {

// COSE header labels (RFC 9052) and CWT claim keys (RFC 8392, scope from RFC 8693).
constexpr uint64_t k_hdr_alg = 1, k_hdr_crit = 2, k_hdr_kid = 4;
constexpr uint64_t k_iss = 1, k_sub = 2, k_aud = 3, k_exp = 4, k_nbf = 5, k_iat = 6, k_cti = 7, k_scope = 9;
constexpr uint64_t k_tag_cwt = 61, k_tag_mac0 = 17;
constexpr std::string_view k_epoch_key = "epoch";
constexpr std::string_view k_jwt_header_prefix = R"({"alg":"HS256","typ":"JWT","kid":)";

// Names that extra claims may not take: the JSON names of the claims fleetkey interprets.
bool is_reserved_claim(std::string_view name)
{
  for (const char* r : {"iss", "sub", "aud", "exp", "nbf", "iat", "cti", "jti", "scope", "epoch"}) {
    if (name == r) {
      return true;
    }
  }
  return false;
}

constexpr char k_hex_digits[] = "0123456789abcdef";

// Lower-case hex of `bytes` at `o` (2 bytes a byte); returns the end.
char* put_hex(char* o, std::string_view bytes)
{
  for (const char ch : bytes) {
    const auto b = static_cast<uint8_t>(ch);
    *o++ = k_hex_digits[b >> 4];
    *o++ = k_hex_digits[b & 15];
  }
  return o;
}

std::string_view as_text(util::ByteView b)
{
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// RFC 4648 section 5 without padding, strict: no '=', no whitespace, the unused low bits of
// the last character zero. Table-driven: token text is not secret, and this is the hot path.
constexpr auto k_b64url_table = [] {
  std::array<int8_t, 256> t{};
  t.fill(-1);
  const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (int i = 0; i < 64; ++i) {
    t[static_cast<uint8_t>(alphabet[i])] = static_cast<int8_t>(i);
  }
  return t;
}();

bool decode_b64url(std::string_view text, util::Bytes& out)
{
  const size_t n = text.size();
  if (n % 4 == 1) {
    return false;
  }
  out.resize(n / 4 * 3 + (n % 4 == 0 ? 0 : n % 4 - 1));
  const auto* in = reinterpret_cast<const uint8_t*>(text.data());
  uint8_t* o = out.data();
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const int a = k_b64url_table[in[i]], b = k_b64url_table[in[i + 1]], c = k_b64url_table[in[i + 2]],
              d = k_b64url_table[in[i + 3]];
    if ((a | b | c | d) < 0) {
      return false;
    }
    const auto v = static_cast<uint32_t>(a << 18 | b << 12 | c << 6 | d);
    *o++ = static_cast<uint8_t>(v >> 16);
    *o++ = static_cast<uint8_t>(v >> 8);
    *o++ = static_cast<uint8_t>(v);
  }
  const size_t rest = n - i;
  if (rest == 2) {
    const int a = k_b64url_table[in[i]], b = k_b64url_table[in[i + 1]];
    if ((a | b) < 0 || (b & 0x0f) != 0) {
      return false;
    }
    *o++ = static_cast<uint8_t>(a << 2 | b >> 4);
  } else if (rest == 3) {
    const int a = k_b64url_table[in[i]], b = k_b64url_table[in[i + 1]], c = k_b64url_table[in[i + 2]];
    if ((a | b | c) < 0 || (c & 0x03) != 0) {
      return false;
    }
    *o++ = static_cast<uint8_t>(a << 2 | b >> 4);
    *o++ = static_cast<uint8_t>((b & 0x0f) << 4 | c >> 2);
  }
  return true;
}

void append_b64url(std::string& out, util::ByteView data)
{
  const size_t n = sodium_base64_encoded_len(data.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  const size_t at = out.size();
  out.resize(at + n);
  sodium_bin2base64(out.data() + at, n, data.data(), data.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  out.resize(at + n - 1); // the terminating NUL
}

bool read_int(cbor::Reader& r, int64_t& out)
{
  cbor::Item it;
  if (!r.next(it)) {
    return false;
  }
  if (it.major == cbor::Major::uint && it.value <= static_cast<uint64_t>(INT64_MAX)) {
    out = static_cast<int64_t>(it.value);
    return true;
  }
  if (it.major == cbor::Major::nint && it.value <= static_cast<uint64_t>(INT64_MAX)) {
    out = -static_cast<int64_t>(it.value) - 1;
    return true;
  }
  return r.fail("claim is not an integer in range");
}

bool read_text(cbor::Reader& r, std::string& out)
{
  cbor::Item it;
  if (!r.next(it)) {
    return false;
  }
  if (it.major != cbor::Major::text) {
    return r.fail("claim is not a text string");
  }
  out.assign(as_text(it.str));
  return true;
}

bool decode_claims(util::ByteView payload, Claims& c, std::string& error)
{
  cbor::Reader r(payload);
  cbor::Item it;
  if (!r.next(it) || it.major != cbor::Major::map) {
    error = r.error().empty() ? "CWT claims are not a CBOR map" : r.error();
    return false;
  }
  util::ByteView prev;
  for (uint64_t i = 0; i < it.value; ++i) {
    cbor::Item key;
    if (!r.read_map_key(key, prev)) {
      error = r.error();
      return false;
    }
    bool ok = true;
    if (key.major == cbor::Major::uint) {
      switch (key.value) {
      case k_iss:
        ok = read_text(r, c.iss_value);
        c.present |= Claims::iss;
        break;
      case k_sub:
        ok = read_text(r, c.sub_value);
        c.present |= Claims::sub;
        break;
      case k_aud:
        ok = read_text(r, c.aud_value);
        c.present |= Claims::aud;
        break;
      case k_scope:
        ok = read_text(r, c.scope_value);
        c.present |= Claims::scope;
        break;
      case k_exp:
        ok = read_int(r, c.exp_value);
        c.present |= Claims::exp;
        break;
      case k_nbf:
        ok = read_int(r, c.nbf_value);
        c.present |= Claims::nbf;
        break;
      case k_iat:
        ok = read_int(r, c.iat_value);
        c.present |= Claims::iat;
        break;
      case k_cti: {
        cbor::Item v;
        ok = r.next(v) && (v.major == cbor::Major::bytes || r.fail("cti is not a byte string"));
        if (ok) {
          if (v.str.empty() || v.str.size() > 64) {
            error = "cti must be 1 to 64 bytes";
            return false;
          }
          c.cti_value.assign(as_text(v.str));
          c.present |= Claims::cti;
        }
        break;
      }
      default:
        error = fmt::format("unknown CWT claim key {}", key.value);
        return false;
      }
    } else if (key.major == cbor::Major::text) {
      const auto name = as_text(key.str);
      if (name == k_epoch_key) {
        cbor::Item v;
        ok = r.next(v) && (v.major == cbor::Major::uint || r.fail("epoch claim is not an unsigned integer"));
        c.epoch_value = v.value;
        c.present |= Claims::epoch;
      } else if (is_reserved_claim(name)) {
        error = fmt::format("text claim key \"{}\" shadows a registered claim", name);
        return false;
      } else {
        auto& e = c.add_extra();
        e.key.assign(name);
        e.json = false;
        ok = read_text(r, e.value);
      }
    } else {
      error = "negative CWT claim keys are not supported";
      return false;
    }
    if (!ok) {
      error = r.error();
      return false;
    }
  }
  if (!r.at_end()) {
    error = "trailing bytes after the CWT claims";
    return false;
  }
  return true;
}

// Reads a COSE header map (protected or not), noting alg and kid. crit is never understood.
bool decode_header(cbor::Reader& r, bool is_protected, int64_t& alg, std::string& kid, bool& has_kid,
                   std::string& error)
{
  cbor::Item m;
  if (!r.next(m) || m.major != cbor::Major::map) {
    error = r.error().empty() ? "COSE header is not a map" : r.error();
    return false;
  }
  util::ByteView prev;
  for (uint64_t i = 0; i < m.value; ++i) {
    cbor::Item key;
    if (!r.read_map_key(key, prev)) {
      error = r.error();
      return false;
    }
    const bool int_key = key.major == cbor::Major::uint;
    if (int_key && key.value == k_hdr_alg) {
      if (!is_protected) {
        error = "COSE alg must be in the protected header";
        return false;
      }
      if (!read_int(r, alg)) {
        error = "COSE alg is not an integer";
        return false;
      }
    } else if (int_key && key.value == k_hdr_crit) {
      error = "COSE header has critical parameters this verifier does not understand";
      return false;
    } else if (int_key && key.value == k_hdr_kid) {
      cbor::Item v;
      if (!r.next(v) || v.major != cbor::Major::bytes) {
        error = "COSE kid is not a byte string";
        return false;
      }
      if (has_kid) {
        error = "COSE kid appears in both headers";
        return false;
      }
      // A kid is text (KEY IDS in fleetkey-tokens(5)), shown in JSON output and messages.
      if (!json::valid_utf8(as_text(v.str))) {
        error = "COSE kid is not valid UTF-8";
        return false;
      }
      has_kid = true;
      kid.assign(as_text(v.str));
    } else if (!r.skip()) {
      error = r.error();
      return false;
    }
  }
  return true;
}

// MAC_structure = ["MAC0", protected, external_aad = h'', payload] (RFC 9052 section 6.3), written
// in one pass: this runs once per token in bulk verification.
void append_mac_structure(util::Bytes& out, util::ByteView prot, util::ByteView payload)
{
  static constexpr uint8_t k_prefix[] = {0x84, 0x64, 'M', 'A', 'C', '0'};
  out.resize(sizeof k_prefix + cbor::head_size(prot.size()) + prot.size() + 1 + cbor::head_size(payload.size())
             + payload.size());
  uint8_t* o = out.data();
  auto put = [&o](util::ByteView b) {
    if (!b.empty()) {
      std::memcpy(o, b.data(), b.size());
      o += b.size();
    }
  };
  auto put_bytes = [&](util::ByteView b) {
    o = cbor::write_head(o, cbor::Major::bytes, b.size());
    put(b);
  };
  put(k_prefix);
  put_bytes(prot);
  put_bytes({});
  put_bytes(payload);
}

} // namespace

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
  put_hex(out.data(), c.cti_value);
}

MacKey::MacKey(util::ByteView key)
    : m_state(sizeof(crypto::detail::HmacKey))
{
  crypto::detail::hmac_init(*reinterpret_cast<crypto::detail::HmacKey*>(m_state.data()), key);
}

void MacKey::mac(util::ByteView data, uint8_t out[32]) const
{
  crypto::detail::hmac(*reinterpret_cast<const crypto::detail::HmacKey*>(m_state.data()), data, {}, {}, out);
}

bool check_mac(const Decoded& d, const MacKey& key)
{
  if (d.tag_len != tag_size(d.format)) {
    return false;
  }
  uint8_t full[32];
  key.mac(d.mac_input, full);
  const bool ok = sodium_memcmp(full, d.tag, d.tag_len) == 0;
  sodium_memzero(full, sizeof full);
  return ok;
}

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
  json::Reader hr(as_text(m_header), *m_json);
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

bool Decoder::decode(std::string_view text, Decoded& out, Claims& claims, std::string& error)
{
  if (!m_json) {
    m_json = std::make_shared<JsonScratch>();
  }
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
    if (!decode_b64url(text, m_bin)) {
      error = "token is not base64url without padding";
      return false;
    }
    return decode_cwt(m_bin, out, claims, error);
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
  if ((!cached && !decode_b64url(header_text, m_header))
      || !decode_b64url(text.substr(dot1 + 1, dot2 - dot1 - 1), m_payload)
      || !decode_b64url(text.substr(dot2 + 1), m_bin)) {
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

  json::Reader pr(as_text(m_payload), *m_json);
  const bool payload_ok = pr.object([&](std::string_view key, json::Reader& r) {
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
    if (key == "iss") {
      return text_claim(claims.iss_value, Claims::iss);
    }
    if (key == "sub") {
      return text_claim(claims.sub_value, Claims::sub);
    }
    if (key == "aud") {
      return text_claim(claims.aud_value, Claims::aud);
    }
    if (key == "scope") {
      return text_claim(claims.scope_value, Claims::scope);
    }
    if (key == "jti") {
      return text_claim(claims.cti_value, Claims::cti)
             && ((!claims.cti_value.empty() && claims.cti_value.size() <= k_max_jti_size)
                 || r.fail(fmt::format("jti must be 1 to {} bytes", k_max_jti_size)));
    }
    if (key == "exp") {
      return int_claim(claims.exp_value, Claims::exp);
    }
    if (key == "nbf") {
      return int_claim(claims.nbf_value, Claims::nbf);
    }
    if (key == "iat") {
      return int_claim(claims.iat_value, Claims::iat);
    }
    if (key == k_epoch_key) {
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
    // Without insignificant whitespace, so that the value fits on one JSON line of output.
    x.value.clear();
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
      x.value.push_back(ch);
    }
    return true;
  });
  if (!payload_ok) {
    error = "JWT claims: " + pr.error();
    return false;
  }
  return true;
}

bool Decoder::decode_cwt(util::ByteView bin, Decoded& out, Claims& claims, std::string& error)
{
  claims.clear();
  out.kid.clear();
  cbor::Reader r(bin);
  cbor::Item it;
  auto bad = [&](std::string_view why) {
    error = r.error().empty() ? std::string(why) : r.error();
    return false;
  };
  if (!r.next(it)) {
    return bad("");
  }
  if (it.major == cbor::Major::tag && it.value == k_tag_cwt) {
    if (!r.next(it)) {
      return bad("");
    }
  }
  if (it.major != cbor::Major::tag || it.value != k_tag_mac0) {
    return bad("token is not a tagged COSE_Mac0 (CBOR tag 17)");
  }
  if (!r.next(it) || it.major != cbor::Major::array || it.value != 4) {
    return bad("COSE_Mac0 is not an array of 4");
  }
  cbor::Item prot;
  if (!r.next(prot) || prot.major != cbor::Major::bytes) {
    return bad("COSE protected header is not a byte string");
  }
  int64_t alg = 0;
  bool has_kid = false;
  if (!prot.str.empty()) {
    cbor::Reader pr(prot.str);
    if (!decode_header(pr, true, alg, out.kid, has_kid, error)) {
      return false;
    }
    if (!pr.at_end()) {
      error = "trailing bytes in the COSE protected header";
      return false;
    }
  }
  if (!decode_header(r, false, alg, out.kid, has_kid, error)) {
    return false;
  }
  cbor::Item payload;
  if (!r.next(payload) || payload.major != cbor::Major::bytes) {
    return bad("COSE payload is not a byte string");
  }
  cbor::Item tag;
  if (!r.next(tag) || tag.major != cbor::Major::bytes) {
    return bad("COSE tag is not a byte string");
  }
  if (!r.at_end()) {
    return bad("trailing bytes after the COSE_Mac0");
  }
  if (alg == 5) {
    out.format = Format::cwt;
  } else if (alg == 4) {
    out.format = Format::cwt64;
  } else {
    error = fmt::format("COSE alg {} is not HMAC 256/256 (5) or HMAC 256/64 (4)", alg);
    return false;
  }
  // A tag of another length than the format's is a bad MAC (check_mac), however long: only the
  // first 32 bytes are kept, and tag_len says how long it was.
  std::memcpy(out.tag, tag.str.data(), std::min(tag.str.size(), sizeof out.tag));
  out.tag_len = tag.str.size();
  append_mac_structure(m_mac_input, prot.str, payload.str);
  out.mac_input = m_mac_input;
  return decode_claims(payload.str, claims, error);
}

util::Bytes encode_cwt_claims(const Claims& c)
{
  // Deterministic order: encoded keys sorted bytewise, so 1..9, then text keys by length, bytes.
  util::Bytes out;
  cbor::Writer w(out);
  std::vector<std::pair<util::Bytes, util::Bytes>> text_members;
  auto add_text_member = [&](std::string_view k, auto&& write_value) {
    util::Bytes kb, vb;
    cbor::Writer kw(kb), vw(vb);
    kw.text(k);
    write_value(vw);
    text_members.emplace_back(std::move(kb), std::move(vb));
  };
  if (c.has(Claims::epoch)) {
    add_text_member(k_epoch_key, [&](cbor::Writer& vw) { vw.uint(c.epoch_value); });
  }
  for (size_t i = 0; i < c.extra_count; ++i) {
    add_text_member(c.extra[i].key, [&](cbor::Writer& vw) { vw.text(c.extra[i].value); });
  }
  std::sort(text_members.begin(), text_members.end());
  const int n = std::popcount(c.present & ~uint32_t{Claims::epoch});
  w.map(static_cast<uint64_t>(n) + text_members.size());
  if (c.has(Claims::iss)) {
    w.uint(k_iss);
    w.text(c.iss_value);
  }
  if (c.has(Claims::sub)) {
    w.uint(k_sub);
    w.text(c.sub_value);
  }
  if (c.has(Claims::aud)) {
    w.uint(k_aud);
    w.text(c.aud_value);
  }
  if (c.has(Claims::exp)) {
    w.uint(k_exp);
    w.integer(c.exp_value);
  }
  if (c.has(Claims::nbf)) {
    w.uint(k_nbf);
    w.integer(c.nbf_value);
  }
  if (c.has(Claims::iat)) {
    w.uint(k_iat);
    w.integer(c.iat_value);
  }
  if (c.has(Claims::cti)) {
    w.uint(k_cti);
    w.bytes(util::as_bytes(c.cti_value));
  }
  if (c.has(Claims::scope)) {
    w.uint(k_scope);
    w.text(c.scope_value);
  }
  for (const auto& [k, v] : text_members) {
    w.raw(k);
    w.raw(v);
  }
  return out;
}

std::string encode(Format f, const Claims& c, std::string_view kid, const MacKey& key)
{
  std::string text;
  if (f == Format::jwt) {
    std::string header(k_jwt_header_prefix);
    append_json_string(header, kid);
    header += "}";
    std::string payload;
    append_claims_json(payload, c, Format::jwt);
    append_b64url(text, util::as_bytes(header));
    text += '.';
    append_b64url(text, util::as_bytes(payload));
    uint8_t tag[32];
    key.mac(util::as_bytes(text), tag);
    text += '.';
    append_b64url(text, tag);
    return text;
  }
  util::Bytes prot;
  {
    cbor::Writer w(prot);
    w.map(2);
    w.uint(k_hdr_alg);
    w.integer(cose_alg(f));
    w.uint(k_hdr_kid);
    w.bytes(util::as_bytes(kid));
  }
  const auto payload = encode_cwt_claims(c);
  util::Bytes to_mac;
  append_mac_structure(to_mac, prot, payload);
  uint8_t tag[32];
  key.mac(to_mac, tag);
  util::Bytes out;
  cbor::Writer w(out);
  w.tag(k_tag_mac0);
  w.array(4);
  w.bytes(prot);
  w.map(0);
  w.bytes(payload);
  w.bytes({tag, tag_size(f)});
  append_b64url(text, out);
  return text;
}

namespace {

// JSON output writes into space reserved up front from an upper bound of its length, so the
// bulk verifier's hot path has no per-character capacity checks.
constexpr auto k_json_escaped = [] {
  std::array<bool, 256> t{};
  for (int c = 0; c < 0x20; ++c) {
    t[static_cast<size_t>(c)] = true;
  }
  t['"'] = t['\\'] = t[0x7f] = true;
  return t;
}();

constexpr size_t string_bound(size_t n)
{
  return 2 + 6 * n; // quotes, and \u00XX for each byte at worst
}
constexpr size_t k_int_bound = 20;    // "-9223372036854775808"
constexpr size_t k_member_bound = 12; // ',' + "\"epoch\"" + ':' and slack

char* put(char* o, std::string_view s)
{
  std::memcpy(o, s.data(), s.size());
  return o + s.size();
}

// The length of the valid UTF-8 sequence (RFC 3629) that starts at s[i] >= 0x80, or 0.
size_t utf8_sequence(std::string_view s, size_t i)
{
  const auto at = [&](size_t k) {
    return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : static_cast<unsigned char>(0);
  };
  const auto cont = [](unsigned char b) { return (b & 0xc0) == 0x80; };
  const unsigned char b0 = at(0), b1 = at(1);
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    return cont(b1) ? 2 : 0;
  }
  if (b0 >= 0xe0 && b0 <= 0xef) {
    const bool ok1 = b0 == 0xe0 ? b1 >= 0xa0 && b1 <= 0xbf : b0 == 0xed ? b1 >= 0x80 && b1 <= 0x9f : cont(b1);
    return ok1 && cont(at(2)) ? 3 : 0;
  }
  if (b0 >= 0xf0 && b0 <= 0xf4) {
    const bool ok1 = b0 == 0xf0 ? b1 >= 0x90 && b1 <= 0xbf : b0 == 0xf4 ? b1 >= 0x80 && b1 <= 0x8f : cont(b1);
    return ok1 && cont(at(2)) && cont(at(3)) ? 4 : 0;
  }
  return 0;
}

// Escapes '"' and '\\' with a backslash, the control characters U+0000-U+001F and DEL as \u00xx
// (lower-case hex), and copies every other character, UTF-8 included, as it is (fleetkey-tokens(5),
// JWT LAYOUT). A byte that does not start a valid UTF-8 sequence becomes \ufffd, so that output is
// always valid JSON; decoded tokens and minted claims never hold one.
char* put_json_string(char* o, std::string_view s)
{
  *o++ = '"';
  for (size_t i = 0; i < s.size(); ++i) {
    const char ch = s[i];
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x80) {
      const size_t n = utf8_sequence(s, i);
      if (n == 0) {
        o = put(o, "\\ufffd");
        continue;
      }
      o = put(o, s.substr(i, n));
      i += n - 1;
    } else if (!k_json_escaped[c]) {
      *o++ = ch;
    } else if (c == '"' || c == '\\') {
      *o++ = '\\';
      *o++ = ch;
    } else {
      o = put(o, "\\u00");
      *o++ = k_hex_digits[c >> 4];
      *o++ = k_hex_digits[c & 15];
    }
  }
  *o++ = '"';
  return o;
}

template<typename Int>
char* put_int(char* o, Int v)
{
  return std::to_chars(o, o + k_int_bound, v).ptr;
}

// The token id (token_id()) as a JSON string: hex of the CWT cti, or the JWT jti escaped and folded.
size_t token_id_json_bound(const Claims& c, Format f)
{
  return f == Format::jwt ? string_bound(c.cti_value.size()) : 2 + 2 * c.cti_value.size();
}

char* put_token_id_json(char* o, const Claims& c, Format f)
{
  if (f == Format::jwt) {
    // Folding the escaped text is folding the text: no escape holds an upper-case letter.
    char* const start = o;
    o = put_json_string(o, c.cti_value);
    for (char* p = start; p != o; ++p) {
      if (*p >= 'A' && *p <= 'Z') {
        *p = static_cast<char>(*p - 'A' + 'a');
      }
    }
    return o;
  }
  *o++ = '"';
  o = put_hex(o, c.cti_value);
  *o++ = '"';
  return o;
}

size_t claims_json_bound(const Claims& c, Format f)
{
  size_t n = 2 + 9 * (k_member_bound + k_int_bound);
  n += string_bound(c.iss_value.size()) + string_bound(c.sub_value.size()) + string_bound(c.aud_value.size())
       + string_bound(c.scope_value.size()) + token_id_json_bound(c, f);
  for (size_t i = 0; i < c.extra_count; ++i) {
    n += 2 + string_bound(c.extra[i].key.size()) + string_bound(c.extra[i].value.size());
  }
  return n;
}

// The claims fleetkey interprets, in their JSON output order (fleetkey-tokens(5)): the text
// claims, then the times; cti/jti and epoch follow, then the extras.
struct TextMember
{
  Claims::Field field;
  std::string_view name; // quoted, with the colon
  std::string Claims::*value;
};
constexpr TextMember k_text_members[] = {{Claims::iss, R"("iss":)", &Claims::iss_value},
                                         {Claims::sub, R"("sub":)", &Claims::sub_value},
                                         {Claims::aud, R"("aud":)", &Claims::aud_value},
                                         {Claims::scope, R"("scope":)", &Claims::scope_value}};
struct TimeMember
{
  Claims::Field field;
  std::string_view name;
  int64_t Claims::*value;
};
constexpr TimeMember k_time_members[] = {{Claims::iat, R"("iat":)", &Claims::iat_value},
                                         {Claims::nbf, R"("nbf":)", &Claims::nbf_value},
                                         {Claims::exp, R"("exp":)", &Claims::exp_value}};

char* put_claims_json(char* o, const Claims& c, Format f)
{
  char* const start = o;
  *o++ = '{';
  auto separate = [&] {
    if (o != start + 1) {
      *o++ = ',';
    }
  };
  for (const auto& m : k_text_members) {
    if (c.has(m.field)) {
      separate();
      o = put_json_string(put(o, m.name), c.*m.value);
    }
  }
  for (const auto& m : k_time_members) {
    if (c.has(m.field)) {
      separate();
      o = put_int(put(o, m.name), c.*m.value);
    }
  }
  if (c.has(Claims::cti)) {
    separate();
    // The claim as it is: a jti keeps its case (only the token id is folded).
    o = f == Format::jwt ? put_json_string(put(o, R"("jti":)"), c.cti_value)
                         : put_token_id_json(put(o, R"("cti":)"), c, f);
  }
  if (c.has(Claims::epoch)) {
    separate();
    o = put_int(put(o, R"("epoch":)"), c.epoch_value);
  }
  for (size_t i = 0; i < c.extra_count; ++i) {
    separate();
    o = put_json_string(o, c.extra[i].key);
    *o++ = ':';
    o = c.extra[i].json ? put(o, c.extra[i].value) : put_json_string(o, c.extra[i].value);
  }
  *o++ = '}';
  return o;
}

// Appends at most `bound` bytes that `write` produces at the end of `out`.
template<typename Write>
void append_bounded(std::string& out, size_t bound, Write&& write)
{
  const size_t at = out.size();
  out.resize(at + bound);
  char* const end = write(out.data() + at);
  out.resize(static_cast<size_t>(end - out.data()));
}

} // namespace

void append_json_string(std::string& out, std::string_view s)
{
  append_bounded(out, string_bound(s.size()), [&](char* o) { return put_json_string(o, s); });
}

void append_claims_json(std::string& out, const Claims& c, Format f)
{
  append_bounded(out, claims_json_bound(c, f), [&](char* o) { return put_claims_json(o, c, f); });
}

void append_verdict_json(std::string& out, Reason reason, const Verification& v)
{
  const bool valid = reason == Reason::valid;
  const bool claims = reason != Reason::malformed;
  const Format f = v.decoded.format;
  size_t bound = 96 + string_bound(v.detail.size());
  if (claims) {
    bound +=
        64 + string_bound(v.decoded.kid.size()) + token_id_json_bound(v.claims, f) + claims_json_bound(v.claims, f);
  }
  append_bounded(out, bound, [&](char* o) {
    if (valid) {
      o = put(o, R"({"valid":true,"reason":"ok")");
    } else {
      o = put(o, R"({"valid":false,"reason":")");
      o = put(o, reason_name(reason));
      o = put(o, R"(","error":)");
      o = put_json_string(o, v.detail);
    }
    if (!claims) {
      return put(o, R"(,"claims":null})");
    }
    o = put(o, R"(,"format":")");
    o = put(o, format_name(f));
    o = put(o, R"(","kid":)");
    o = put_json_string(o, v.decoded.kid);
    o = put(o, R"(,"token_id":)");
    o = v.claims.has(Claims::cti) ? put_token_id_json(o, v.claims, f) : put(o, R"("")");
    o = put(o, R"(,"claims":)");
    o = put_claims_json(o, v.claims, f);
    *o++ = '}';
    return o;
  });
}

} // namespace fleetkey::token
