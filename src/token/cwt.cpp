// CWT (RFC 8392) in COSE_Mac0 (RFC 9052): decoding the binary token and its claims map, the MAC
// structure, and minting. The byte layout is in fleetkey-tokens(5), CWT LAYOUT.
#include "claims.hpp"
#include "encode.hpp"

#include <fleetkey/token/cbor.hpp>
#include <fleetkey/token/token.hpp>
#include <fleetkey/util/base64url.hpp>
#include <fleetkey/util/utf8.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <utility>
#include <vector>

namespace fleetkey::token {

namespace {

// COSE header labels (RFC 9052) and the COSE_Mac0 and CWT tags.
constexpr uint64_t k_hdr_alg = 1, k_hdr_crit = 2, k_hdr_kid = 4;
constexpr uint64_t k_tag_cwt = 61, k_tag_mac0 = 17;
constexpr size_t k_max_cti_size = 64;

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
  out.assign(util::as_text(it.str));
  return true;
}

// The reader's error as the claim's, for the read_* functions below.
bool reader_failed(const cbor::Reader& r, std::string& error)
{
  error = r.error();
  return false;
}

// The value of an interpreted claim under an integer key; false with `error` set.
bool read_claim(cbor::Reader& r, const claim::Spec& s, Claims& c, std::string& error)
{
  switch (s.kind) {
  case claim::Kind::text:
    c.present |= s.field;
    return read_text(r, c.*s.text) || reader_failed(r, error);
  case claim::Kind::time:
    c.present |= s.field;
    return read_int(r, c.*s.time) || reader_failed(r, error);
  case claim::Kind::id: {
    cbor::Item v;
    if (!r.next(v) || (v.major != cbor::Major::bytes && !r.fail("cti is not a byte string"))) {
      return reader_failed(r, error);
    }
    if (v.str.empty() || v.str.size() > k_max_cti_size) {
      error = "cti must be 1 to 64 bytes";
      return false;
    }
    c.cti_value.assign(util::as_text(v.str));
    c.present |= Claims::cti;
    return true;
  }
  case claim::Kind::epoch:
    break; // never: the epoch has a text key
  }
  return false;
}

// A claim under a text key: the epoch, or an extra claim (a text string) whose name is not
// reserved; false with `error` set.
bool read_text_key_claim(cbor::Reader& r, std::string_view name, Claims& c, std::string& error)
{
  if (name == claim::k_epoch_name) {
    cbor::Item v;
    const bool ok = r.next(v) && (v.major == cbor::Major::uint || r.fail("epoch claim is not an unsigned integer"));
    c.epoch_value = v.value;
    c.present |= Claims::epoch;
    return ok || reader_failed(r, error);
  }
  if (claim::is_reserved(name)) {
    error = fmt::format("text claim key \"{}\" shadows a registered claim", name);
    return false;
  }
  auto& e = c.add_extra();
  e.key.assign(name);
  e.json = false;
  return read_text(r, e.value) || reader_failed(r, error);
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
    if (key.major == cbor::Major::uint) {
      const claim::Spec* s = claim::by_cwt_key(key.value);
      if (s == nullptr) {
        error = fmt::format("unknown CWT claim key {}", key.value);
        return false;
      }
      if (!read_claim(r, *s, c, error)) {
        return false;
      }
    } else if (key.major == cbor::Major::text) {
      if (!read_text_key_claim(r, util::as_text(key.str), c, error)) {
        return false;
      }
    } else {
      error = "negative CWT claim keys are not supported";
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
      if (!util::is_valid_utf8(util::as_text(v.str))) {
        error = "COSE kid is not valid UTF-8";
        return false;
      }
      has_kid = true;
      kid.assign(util::as_text(v.str));
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
    add_text_member(claim::k_epoch_name, [&](cbor::Writer& vw) { vw.uint(c.epoch_value); });
  }
  for (size_t i = 0; i < c.extra_count; ++i) {
    add_text_member(c.extra[i].key, [&](cbor::Writer& vw) { vw.text(c.extra[i].value); });
  }
  std::sort(text_members.begin(), text_members.end());
  const int n = std::popcount(c.present & ~uint32_t{Claims::epoch});
  w.map(static_cast<uint64_t>(n) + text_members.size());
  for (const claim::Spec* s : claim::k_cwt_order) {
    if (!c.has(s->field)) {
      continue;
    }
    w.uint(s->cwt_key);
    switch (s->kind) {
    case claim::Kind::text:
      w.text(c.*s->text);
      break;
    case claim::Kind::time:
      w.integer(c.*s->time);
      break;
    case claim::Kind::id:
      w.bytes(util::as_bytes(c.cti_value));
      break;
    case claim::Kind::epoch:
      break; // never: the epoch has a text key
    }
  }
  for (const auto& [k, v] : text_members) {
    w.raw(k);
    w.raw(v);
  }
  return out;
}

namespace detail {

std::string encode_cwt(Format f, const Claims& c, std::string_view kid, const MacKey& key)
{
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
  std::string text;
  util::append_base64url(text, out);
  return text;
}

} // namespace detail

} // namespace fleetkey::token
