// COSE_Mac0 / CWT known answers (RFC 8392 A.4, COSE WG HMac-01 and mac-fail-02), round trips,
// and tampering with each part of a token.
#include <fleetkey/token/cbor.hpp>
#include <fleetkey/token/token.hpp>
#include <fleetkey/token/verify.hpp>
#include <fleetkey/util/bytes.hpp>

#include <doctest/doctest.h>

using namespace fleetkey;
using namespace fleetkey::token;

namespace {

util::Bytes hex(std::string_view s)
{
  return *util::from_hex(s);
}

// RFC 8392 Appendix A.4 with the A.2.2 key (HMAC 256/64).
constexpr std::string_view k_a4_key = "403697de87af64611c1d32a05dab0fe1fcb715a86ab435f1ec99192d79569388";
constexpr std::string_view k_a4_cwt =
    "d83dd18443a10104a1044c53796d6d65747269633235365850a70175636f61703a2f2f61732e6578616d706c652e636f6d02656572696b"
    "77037818636f61703a2f2f6c696768742e6578616d706c652e636f6d041a5612aeb0051a5610d9f0061a5610d9f007420b7148093101ef6d"
    "789200";
constexpr std::string_view k_a4_mac_structure =
    "84644d41433043a10104405850a70175636f61703a2f2f61732e6578616d706c652e636f6d02656572696b77037818636f61703a2f2f6c69"
    "6768742e6578616d706c652e636f6d041a5612aeb0051a5610d9f0061a5610d9f007420b71";

// COSE WG Examples, mac0-tests/HMac-01 (HMAC 256/256) and mac-fail-02 (last tag byte changed).
constexpr std::string_view k_hmac01_key = "849b57219dae48de646d07dbb533566e976686457c1491be3a76dcea6c427188";
constexpr std::string_view k_hmac01 =
    "D18443A10105A054546869732069732074686520636F6E74656E742E5820A1A848D3471F9D61EE49018D"
    "244C824772F223AD4F935293F1789FC3A08D8C58";
constexpr std::string_view k_macfail02 =
    "D18443A10105A054546869732069732074686520636F6E74656E742E5820A1A848D3471F9D61EE4"
    "9018D244C824772F223AD4F935293F1789FC3A08D8C59";

Checks no_time()
{
  Checks c;
  c.times = TimeChecks::off;
  return c;
}

} // namespace

TEST_CASE("cose: RFC 8392 A.4 verifies under its key with alg 4")
{
  Verification v;
  const auto cwt = hex(k_a4_cwt);
  CHECK(verify_cwt_bytes(cwt, hex(k_a4_key), Format::cwt64, no_time(), v) == Reason::valid);
  CHECK(v.decoded.format == Format::cwt64);
  CHECK(v.decoded.kid == "Symmetric256");
  CHECK(util::to_hex(v.decoded.mac_input) == k_a4_mac_structure);
  CHECK(v.claims.iss_value == "coap://as.example.com");
  CHECK(v.claims.sub_value == "erikw");
  CHECK(v.claims.aud_value == "coap://light.example.com");
  CHECK(v.claims.exp_value == 1444064944);
  CHECK(v.claims.nbf_value == 1443944944);
  CHECK(v.claims.iat_value == 1443944944);
  std::string id;
  token_id(v.claims, Format::cwt64, id);
  CHECK(id == "0b71");
  // The same token is expired now, and its key pinned to alg 5 does not verify it.
  Checks now;
  now.now = 1700000000;
  CHECK(verify_cwt_bytes(cwt, hex(k_a4_key), Format::cwt64, now, v) == Reason::expired);
  CHECK(verify_cwt_bytes(cwt, hex(k_a4_key), Format::cwt, no_time(), v) == Reason::unknown_key);
}

TEST_CASE("cose: HMac-01 verifies and mac-fail-02 does not")
{
  Verification v;
  // The payload "This is the content." is not a claims map: check the MAC layer alone.
  const auto good = hex(k_hmac01);
  CHECK(verify_cwt_bytes(good, hex(k_hmac01_key), Format::cwt, no_time(), v) == Reason::malformed);
  CHECK(v.detail == "truncated CBOR string"); // "T" reads as the head of a 20-byte string
  CHECK(util::to_hex(v.decoded.mac_input) == "84644d41433043a101054054546869732069732074686520636f6e74656e742e");
  MacKey key(hex(k_hmac01_key));
  CHECK(check_mac(v.decoded, key));
  const auto bad = hex(k_macfail02);
  CHECK(verify_cwt_bytes(bad, hex(k_hmac01_key), Format::cwt, no_time(), v) == Reason::malformed);
  CHECK_FALSE(check_mac(v.decoded, key));
}

namespace {

Claims sample_claims()
{
  Claims c;
  c.present = Claims::sub | Claims::aud | Claims::scope | Claims::iat | Claims::nbf | Claims::exp | Claims::cti;
  c.sub_value = "alice";
  c.aud_value = "SN-1";
  c.scope_value = "owner";
  c.iat_value = c.nbf_value = 1800000000;
  c.exp_value = 1800003600;
  c.cti_value = std::string("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f", 16);
  auto& e = c.add_extra();
  e.key = "site";
  e.value = "lab";
  return c;
}

const util::Bytes k_key(32, 0x42);

std::string flip_b64(const std::string& token, size_t byte_index)
{
  auto bin = *util::from_base64url(token);
  bin[byte_index] ^= 0x01;
  return util::to_base64url(bin);
}

} // namespace

TEST_CASE("cose: a minted CWT has the documented layout and round-trips")
{
  const auto c = sample_claims();
  const auto text = encode(Format::cwt, c, "v1/SN-1", MacKey(k_key));
  const auto bin = *util::from_base64url(text);
  // Tag 17, array(4), bstr(protected {1: 5, 4: h'76312f534e2d31'}), {}, payload, 32-byte tag.
  CHECK(util::to_hex(bin).substr(0, 32) == "d1844ca20105044776312f534e2d31a0");
  CHECK(util::to_hex(encode_cwt_claims(c))
        == "a80265616c6963650364534e2d31041a6b49e010051a6b49d200061a6b49d2000750000102030405060708090a0b0c0d0e0f"
           "09656f776e65726473697465636c6162"); // cbor2.dumps(..., canonical=True)
  Verification v;
  Checks ch;
  ch.now = 1800000100;
  CHECK(verify_with_key(text, k_key, Format::cwt, ch, v) == Reason::valid);
  CHECK(v.claims.sub_value == "alice");
  CHECK(v.claims.extra_count == 1);
  std::string json;
  append_claims_json(json, v.claims, v.decoded.format);
  CHECK(json
        == R"({"sub":"alice","aud":"SN-1","scope":"owner","iat":1800000000,"nbf":1800000000,"exp":1800003600,)"
           R"("cti":"000102030405060708090a0b0c0d0e0f","site":"lab"})");
}

TEST_CASE("cose: tampering with any byte of a CWT is rejected")
{
  const auto text = encode(Format::cwt, sample_claims(), "v1", MacKey(k_key));
  const auto len = util::from_base64url(text)->size();
  Checks ch;
  ch.now = 1800000100;
  Verification v;
  for (size_t i = 0; i < len; ++i) {
    const auto r = verify_with_key(flip_b64(text, i), k_key, Format::cwt, ch, v);
    CHECK_MESSAGE(r != Reason::valid, "byte " << i);
  }
  // Payload and tag bytes decode fine, so they must fail the MAC.
  CHECK(verify_with_key(flip_b64(text, len - 1), k_key, Format::cwt, ch, v) == Reason::bad_mac);
  CHECK(verify_with_key(flip_b64(text, len - 40), k_key, Format::cwt, ch, v) == Reason::bad_mac);
}

TEST_CASE("cose: a CWT needs a cti, and exp or an epoch")
{
  Checks ch;
  ch.now = 1800000100;
  Verification v;
  auto c = sample_claims();
  c.present &= ~Claims::cti;
  CHECK(verify_with_key(encode(Format::cwt, c, "v1", MacKey(k_key)), k_key, Format::cwt, ch, v) == Reason::malformed);
  CHECK(v.detail == "no cti");
  c = sample_claims();
  c.present &= ~Claims::exp;
  const auto no_exp = encode(Format::cwt, c, "v1", MacKey(k_key));
  CHECK(verify_with_key(no_exp, k_key, Format::cwt, ch, v) == Reason::malformed);
  CHECK(v.detail == "no exp");
  // Checked before the key, in every entry point.
  CHECK(verify_cwt_bytes(*util::from_base64url(no_exp), util::Bytes(32, 0), Format::cwt64, ch, v) == Reason::malformed);
  CHECK(v.detail == "no exp");
  c.present |= Claims::epoch;
  c.epoch_value = 2;
  CHECK(verify_with_key(encode(Format::cwt, c, "v1", MacKey(k_key)), k_key, Format::cwt, ch, v) == Reason::valid);
}

TEST_CASE("cose: a 64-bit tag is never accepted under the 256-bit format")
{
  auto c = sample_claims();
  c.cti_value.resize(8);
  const auto t64 = encode(Format::cwt64, c, "v1", MacKey(k_key));
  Checks ch;
  ch.now = 1800000100;
  Verification v;
  CHECK(verify_with_key(t64, k_key, Format::cwt64, ch, v) == Reason::valid);
  CHECK(verify_with_key(t64, k_key, Format::cwt, ch, v) == Reason::unknown_key);
  // Rewrite alg 4 -> 5 in the protected header: the 8-byte tag is now too short.
  auto bin = *util::from_base64url(t64);
  CHECK(bin[5] == 0x04);
  bin[5] = 0x05;
  CHECK(verify_with_key(util::to_base64url(bin), k_key, Format::cwt, ch, v) == Reason::bad_mac);
  CHECK(v.detail == "tag of 8 bytes for a cwt token (needs 32)");
}

TEST_CASE("cose: strict structure")
{
  Verification v;
  auto reason = [&](std::string_view h) { return verify_cwt_bytes(hex(h), k_key, Format::cwt, no_time(), v); };
  // Untagged COSE_Mac0.
  CHECK(reason("8443a10105a0f65820" + std::string(64, '0')) == Reason::malformed);
  CHECK(v.detail == "token is not a tagged COSE_Mac0 (CBOR tag 17)");
  // crit in the protected header.
  CHECK(reason("d18446a20105028101a0f65820" + std::string(64, '0')) == Reason::malformed);
  CHECK(v.detail == "COSE header has critical parameters this verifier does not understand");
  // alg in the unprotected header.
  CHECK(reason("d18440a10105a15820" + std::string(64, '0')) == Reason::malformed);
  // Trailing byte.
  CHECK(reason("d18443a10105a041a0582000" + std::string(62, '0') + "00") == Reason::malformed);
  CHECK(v.detail == "trailing bytes after the COSE_Mac0");
  // alg 6 (HMAC 384/384).
  CHECK(reason("d18443a10106a041a05820" + std::string(64, '0')) == Reason::malformed);
  CHECK(v.detail == "COSE alg 6 is not HMAC 256/256 (5) or HMAC 256/64 (4)");
  // Duplicate claim key inside the payload.
  CHECK(reason("d18443a10105a047a2026161026162"
               "5820"
               + std::string(64, '0'))
        == Reason::malformed);
  CHECK(v.detail == "duplicate CBOR map key");
}

TEST_CASE("cose: kid encoding")
{
  Kid k;
  CHECK(parse_kid("v1", k));
  CHECK(k.version == 1);
  CHECK(k.device.empty());
  CHECK(parse_kid("v12/SN/1", k));
  CHECK(k.version == 12);
  CHECK(k.device == "SN/1");
  CHECK_FALSE(parse_kid("v0", k));
  CHECK_FALSE(parse_kid("v01", k));
  CHECK_FALSE(parse_kid("v1/", k));
  CHECK_FALSE(parse_kid("x1", k));
  CHECK_FALSE(parse_kid("v", k));
  CHECK_FALSE(parse_kid("v4294967296", k));
  // The device part is at most as long as a device id.
  CHECK(parse_kid("v1/" + std::string(128, 'D'), k));
  CHECK(k.device.size() == 128);
  CHECK_FALSE(parse_kid("v1/" + std::string(129, 'D'), k));
  CHECK(format_kid(3, "") == "v3");
  CHECK(format_kid(3, "SN-1") == "v3/SN-1");
}

namespace {

util::Bytes mac0(util::ByteView prot, util::ByteView payload, util::ByteView tag)
{
  util::Bytes out;
  cbor::Writer w(out);
  w.tag(17);
  w.array(4);
  w.bytes(prot);
  w.map(0);
  w.bytes(payload);
  w.bytes(tag);
  return out;
}

} // namespace

TEST_CASE("cose: a kid that is not UTF-8 is malformed, and no output carries its bytes")
{
  // protected {1: 5, 4: h'FFFE22'}, a zero tag: no key is needed to send this.
  const auto bin = mac0(hex("a201050443fffe22"), encode_cwt_claims(sample_claims()), util::Bytes(32, 0));
  Verification v;
  CHECK(verify_cwt_bytes(bin, k_key, Format::cwt, no_time(), v) == Reason::malformed);
  CHECK(v.detail == "COSE kid is not valid UTF-8");
  std::string json;
  append_verdict_json(json, Reason::malformed, v);
  CHECK(json == R"({"valid":false,"reason":"malformed","error":"COSE kid is not valid UTF-8","claims":null})");
  // A UTF-8 kid (a device id may be any printable UTF-8) decodes.
  const auto ok =
      mac0(hex("a20105044c76312fc3a9636c6169722d31"), encode_cwt_claims(sample_claims()), util::Bytes(32, 0));
  CHECK(verify_cwt_bytes(ok, k_key, Format::cwt, no_time(), v) == Reason::bad_mac);
  CHECK(v.decoded.kid
        == "v1/\xc3\xa9"
           "clair-1");
}

TEST_CASE("cose: a tag of any length but the format's is a bad MAC")
{
  const auto prot = hex("a2010504427631");
  const auto payload = encode_cwt_claims(sample_claims());
  for (const size_t n : std::initializer_list<size_t>{0, 1, 31, 33, 64, 1000}) {
    CAPTURE(n);
    Verification v;
    CHECK(verify_cwt_bytes(mac0(prot, payload, util::Bytes(n, 0)), k_key, Format::cwt, no_time(), v)
          == Reason::bad_mac);
    CHECK(v.detail == fmt::format("tag of {} bytes for a cwt token (needs 32)", n));
  }
  // A right tag with a byte more is still refused.
  const auto good = *util::from_base64url(encode(Format::cwt, sample_claims(), "v1", MacKey(k_key)));
  Verification v;
  CHECK(verify_cwt_bytes(good, k_key, Format::cwt, no_time(), v) == Reason::valid);
  util::Bytes tag(good.end() - 32, good.end());
  tag.push_back(0);
  CHECK(verify_cwt_bytes(mac0(prot, payload, tag), k_key, Format::cwt, no_time(), v) == Reason::bad_mac);
}
