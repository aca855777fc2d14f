// JWT HS256: RFC 7515 A.1 as a known answer, the strict JSON reader, and rejected headers.
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

// RFC 7515 Appendix A.1.
constexpr std::string_view k_a1_key =
    "0323354b2b0fa5bc837e0665777ba68f5ab328e6f054c928a90f84b2d2502ebfd3fb5a92d20647ef968ab4"
    "c377623d223d2e2172052e4f08c0cd9af567d080a3";
constexpr std::string_view k_a1_jws =
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNv"
    "bS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

const util::Bytes k_key(32, 0x42);

std::string b64(std::string_view s)
{
  return util::to_base64url(util::as_bytes(s));
}

// A JWT with the given header and claims JSON, MACed with k_key.
std::string make(std::string_view header, std::string_view claims)
{
  std::string input = b64(header) + "." + b64(claims);
  uint8_t tag[32];
  MacKey(k_key).mac(util::as_bytes(input), tag);
  return input + "." + util::to_base64url(tag);
}

Reason check(const std::string& jwt, Verification& v)
{
  Checks c;
  c.now = 1800000000;
  return verify_with_key(jwt, k_key, Format::jwt, c, v);
}

constexpr std::string_view k_header = R"({"alg":"HS256","typ":"JWT","kid":"v1"})";

} // namespace

TEST_CASE("jwt: RFC 7515 A.1 decodes and its MAC checks")
{
  // The RFC's JWS has no jti, so fleetkey's verification refuses it (see below): the known answer
  // is checked on the decoder and MAC level.
  Decoder decoder;
  Decoded d;
  Claims c;
  std::string error;
  REQUIRE(decoder.decode(k_a1_jws, d, c, error));
  CHECK(c.iss_value == "joe");
  CHECK(c.exp_value == 1300819380);
  REQUIRE(c.extra_count == 1);
  CHECK(c.extra[0].key == "http://example.com/is_root");
  CHECK(c.extra[0].value == "true");
  CHECK(c.extra[0].json);
  const MacKey key(hex(k_a1_key));
  CHECK(check_mac(d, key));
  // The last signature character changed.
  std::string bad(k_a1_jws);
  bad.back() = 'l';
  CHECK_FALSE(decoder.decode(bad, d, c, error)); // non-canonical base64url
  bad.back() = 'U';
  REQUIRE(decoder.decode(bad, d, c, error));
  CHECK_FALSE(check_mac(d, key));
  // Verification requires a jti (fleetkey-tokens(5), VERIFICATION step 2), before the key.
  Verification v;
  Checks off;
  off.times = TimeChecks::off;
  CHECK(verify_with_key(k_a1_jws, hex(k_a1_key), Format::jwt, off, v) == Reason::malformed);
  CHECK(v.detail == "no jti");
}

TEST_CASE("jwt: a token needs a jti, and exp or an epoch")
{
  Verification v;
  CHECK(check(make(k_header, R"({"sub":"a","exp":1800000060})"), v) == Reason::malformed);
  CHECK(v.detail == "no jti");
  CHECK(check(make(k_header, R"({"sub":"a","jti":"j"})"), v) == Reason::malformed);
  CHECK(v.detail == "no exp");
  CHECK(check(make(k_header, R"({"sub":"a","jti":"j","epoch":3})"), v) == Reason::valid);
  CHECK(check(make(k_header, R"({"sub":"a","jti":"j","exp":1800000060})"), v) == Reason::valid);
  CHECK(check(make(k_header, R"({"sub":"a","jti":"j","exp":1800000000})"), v) == Reason::expired);
}

TEST_CASE("jwt: mint and verify round trip with the documented header")
{
  Claims c;
  c.present = Claims::sub | Claims::scope | Claims::iat | Claims::exp | Claims::cti;
  c.sub_value = "svc\"1";
  c.scope_value = "reader";
  c.iat_value = 1800000000;
  c.exp_value = 1800000060;
  c.cti_value = "00112233445566778899aabbccddeeff";
  const auto jwt = encode(Format::jwt, c, "v2", MacKey(k_key));
  const auto header = jwt.substr(0, jwt.find('.'));
  CHECK(util::to_base64url(util::as_bytes(R"({"alg":"HS256","typ":"JWT","kid":"v2"})")) == header);
  Verification v;
  CHECK(check(jwt, v) == Reason::valid);
  CHECK(v.decoded.kid == "v2");
  CHECK(v.claims.sub_value == "svc\"1");
  std::string json;
  append_claims_json(json, v.claims, Format::jwt);
  CHECK(
      json
      == R"({"sub":"svc\"1","scope":"reader","iat":1800000000,"exp":1800000060,"jti":"00112233445566778899aabbccddeeff"})");
}

TEST_CASE("jwt: strict headers and claims")
{
  Verification v;
  CHECK(check(make(k_header, R"({"sub":"a","jti":"j","exp":1800000060})"), v) == Reason::valid);
  CHECK(check(make(R"({"alg":"none","kid":"v1"})", R"({"sub":"a","jti":"j","exp":1800000060})"), v)
        == Reason::malformed);
  CHECK(v.detail == "JWT alg \"none\" is not HS256");
  CHECK(check(make(R"({"alg":"HS512","kid":"v1"})", R"({"sub":"a","jti":"j","exp":1800000060})"), v)
        == Reason::malformed);
  CHECK(check(make(R"({"typ":"JWT","kid":"v1"})", R"({"sub":"a","jti":"j","exp":1800000060})"), v)
        == Reason::malformed);
  CHECK(v.detail == "JWT header has no alg");
  CHECK(check(make(R"({"alg":"HS256","alg":"HS256","kid":"v1"})", R"({"sub":"a","jti":"j","exp":1800000060})"), v)
        == Reason::malformed);
  CHECK(v.detail == "JWT header: duplicate JSON member \"alg\"");
  CHECK(check(make(R"({"alg":"HS256","crit":["exp"],"kid":"v1"})", R"({"sub":"a","jti":"j","exp":1800000060})"), v)
        == Reason::malformed);
  CHECK(check(make(R"({"alg":"HS256","typ":"JOSE+JSON"})", R"({"sub":"a","jti":"j","exp":1800000060})"), v)
        == Reason::malformed);
  CHECK(check(make(k_header, R"({"sub":"a","sub":"b"})"), v) == Reason::malformed);
  CHECK(v.detail == "JWT claims: duplicate JSON member \"sub\"");
  CHECK(check(make(k_header, R"({"x":{"a":1,"a":2}})"), v) == Reason::malformed);
  CHECK(check(make(k_header, R"({"sub":"a","jti":"j","exp":1800000060} )"), v) == Reason::valid);
  CHECK(check(make(k_header, R"({"sub":"a"}x)"), v) == Reason::malformed);
  CHECK(check(make(k_header, R"({"exp":1.5})"), v) == Reason::malformed);
  CHECK(check(make(k_header, R"({"exp":"1"})"), v) == Reason::malformed);
  CHECK(check(make(k_header, R"({"aud":["a","b"]})"), v) == Reason::malformed);
  CHECK(check(make(k_header, R"({"sub":"\ud800"})"), v) == Reason::malformed);
  CHECK(check(make(k_header, "{\"sub\":\"a\tb\"}"), v) == Reason::malformed);
  CHECK(check(make(k_header, R"({"n":01})"), v) == Reason::malformed);
  CHECK(check(make(k_header, R"([1])"), v) == Reason::malformed);
  CHECK(check(make(k_header, R"({"sub":"\u00e9\ud83d\ude00","jti":"j","exp":1800000060})"), v) == Reason::valid);
  CHECK(v.claims.sub_value == "\xc3\xa9\xf0\x9f\x98\x80");
  // Raw JSON extras lose their insignificant whitespace, never the spaces inside strings.
  CHECK(check(make(k_header, "{\"jti\":\"j\",\"exp\":1800000060,\"x\": [1,\n 2, {\"a b\": \"c \\\" d\"}]\r\n}"), v)
        == Reason::valid);
  std::string json;
  append_claims_json(json, v.claims, Format::jwt);
  CHECK(json == R"({"exp":1800000060,"jti":"j","x":[1,2,{"a b":"c \" d"}]})");
  // Shape: four parts, padding, oversized input.
  const auto ok = make(k_header, R"({"sub":"a","jti":"j","exp":1800000060})");
  CHECK(check(ok + ".x", v) == Reason::malformed);
  CHECK(check(ok + "=", v) == Reason::malformed);
  CHECK(check(ok.substr(0, ok.rfind('.')), v) == Reason::malformed);
  CHECK(check(make(k_header, "{\"x\":\"" + std::string(9000, 'a') + "\"}"), v) == Reason::malformed);
}

TEST_CASE("jwt: the remembered header never leaks into another token")
{
  Verification v;
  const auto a = make(k_header, R"({"sub":"a","jti":"j","exp":1800000060})");
  const auto b = make(R"({"alg":"HS256","typ":"JWT","kid":"v2"})", R"({"sub":"b","jti":"j","exp":1800000060})");
  const auto bad = make(R"({"alg":"none","typ":"JWT","kid":"v1"})", R"({"sub":"c"})");
  for (int round = 0; round < 2; ++round) {
    CHECK(check(a, v) == Reason::valid);
    CHECK(v.decoded.kid == "v1");
    CHECK(check(a, v) == Reason::valid);
    CHECK(v.decoded.kid == "v1");
    CHECK(check(b, v) == Reason::valid);
    CHECK(v.decoded.kid == "v2");
    CHECK(check(bad, v) == Reason::malformed);
    CHECK(check(bad, v) == Reason::malformed);
    CHECK(v.detail == "JWT alg \"none\" is not HS256");
  }
}

TEST_CASE("jwt: a jti is shown as it is, its token id folded to lower case")
{
  Verification v;
  CHECK(check(make(k_header, R"({"sub":"a","jti":"ABCdef-Q\u00c9","exp":1800000060})"), v) == Reason::valid);
  std::string id;
  token_id(v.claims, Format::jwt, id);
  CHECK(id == "abcdef-q\xc3\x89"); // only A-Z are folded
  std::string json;
  append_verdict_json(json, Reason::valid, v);
  CHECK(json
        == "{\"valid\":true,\"reason\":\"ok\",\"format\":\"jwt\",\"kid\":\"v1\",\"token_id\":\"abcdef-q\xc3\x89\","
           "\"claims\":{\"sub\":\"a\",\"exp\":1800000060,\"jti\":\"ABCdef-Q\xc3\x89\"}}");
}

TEST_CASE("jwt: each bad claim has its own message")
{
  Verification v;
  auto detail = [&](std::string_view claims) {
    CHECK(check(make(k_header, claims), v) == Reason::malformed);
    return v.detail;
  };
  CHECK(detail(R"({"jti":"","exp":1800000060})") == "JWT claims: jti must be 1 to 128 bytes");
  CHECK(detail(R"({"jti":")" + std::string(129, 'a') + R"(","exp":1800000060})")
        == "JWT claims: jti must be 1 to 128 bytes");
  CHECK(check(make(k_header, R"({"jti":")" + std::string(128, 'a') + R"(","exp":1800000060})"), v) == Reason::valid);
  CHECK(detail(R"({"jti":"j","epoch":-1})") == "JWT claims: epoch claim is not an unsigned integer");
  CHECK(detail(R"({"jti":"j","epoch":"1"})") == "JWT claims: epoch claim is not an integer");
  CHECK(detail(R"({"jti":"j","exp":"1800000060"})") == "JWT claims: exp claim is not an integer");
  CHECK(detail(R"({"jti":7,"exp":1800000060})") == "JWT claims: jti claim is not a string");
  CHECK(detail(R"({"jti":"j","aud":["a"],"exp":1800000060})") == "JWT claims: aud claim is not a string");
}

TEST_CASE("jwt: times at the ends of int64 never overflow")
{
  CHECK(has_passed(INT64_MIN, INT64_MIN, 0));
  CHECK_FALSE(has_passed(INT64_MIN, INT64_MIN, 1)); // now - leeway is before every exp
  CHECK(has_passed(INT64_MAX, INT64_MAX, 0));
  CHECK(has_passed(INT64_MAX, INT64_MAX - 1, -1)); // a negative leeway moves now forward
  CHECK(has_passed(INT64_MAX, 0, INT64_MIN));      // ... past INT64_MAX
  CHECK_FALSE(has_passed(INT64_MAX, INT64_MAX, 1));
  CHECK_FALSE(is_ahead(INT64_MAX, INT64_MAX, 1)); // now + leeway is past every nbf
  CHECK(is_ahead(INT64_MAX, INT64_MAX - 2, 1));
  CHECK(is_ahead(INT64_MIN + 1, INT64_MIN, -1)); // before INT64_MIN
  CHECK_FALSE(is_ahead(INT64_MIN, INT64_MIN, 0));
  Verification v;
  Checks c;
  c.now = INT64_MIN;
  c.leeway = 1;
  CHECK(verify_with_key(make(k_header, R"({"jti":"j","exp":-9223372036854775808})"), k_key, Format::jwt, c, v)
        == Reason::valid);
  c.now = INT64_MAX;
  CHECK(verify_with_key(make(k_header, R"({"jti":"j","nbf":9223372036854775807,"epoch":1})"), k_key, Format::jwt, c, v)
        == Reason::valid);
}
