// The strict deterministic CBOR decoder: what it accepts, and every non-canonical form it rejects.
#include <fleetkey/token/cbor.hpp>
#include <fleetkey/util/bytes.hpp>

#include <doctest/doctest.h>

using namespace fleetkey;
using namespace fleetkey::token;

namespace {

util::Bytes hex(std::string_view s)
{
  return *util::from_hex(s);
}

// Skips one whole item and requires the input to end there.
std::string check(std::string_view h)
{
  const auto b = hex(h);
  cbor::Reader r(b);
  if (!r.skip()) {
    return r.error();
  }
  return r.at_end() ? "" : "trailing";
}

} // namespace

TEST_CASE("cbor: the writer uses the shortest head")
{
  util::Bytes out;
  cbor::Writer w(out);
  w.uint(23);
  w.uint(24);
  w.uint(255);
  w.uint(256);
  w.uint(65536);
  w.uint(4294967296ULL);
  w.integer(-1);
  w.integer(-25);
  w.text("a");
  w.bytes(hex("0102"));
  CHECK(util::to_hex(out) == "17181818ff1901001a000100001b00000001000000002038186161420102");
}

TEST_CASE("cbor: well-formed deterministic items are accepted")
{
  CHECK(check("00") == "");
  CHECK(check("1818") == "");
  CHECK(check("a20102036161") == ""); // {1: 2, 3: "a"}
  CHECK(check("a201026161f6") == ""); // {1: 2, "a": null}
  CHECK(check("d18443a10105a0f6f6") == "");
  CHECK(check("6449455446") == ""); // "IETF"
}

TEST_CASE("cbor: non-canonical and malformed items are rejected")
{
  CHECK(check("1817") == "non-canonical CBOR: integer or length not in its shortest form");
  CHECK(check("190017") == "non-canonical CBOR: integer or length not in its shortest form");
  CHECK(check("5f4100ff") == "non-canonical CBOR: indefinite length");
  CHECK(check("a203040102") == "non-canonical CBOR: map keys out of order");
  CHECK(check("a201020103") == "duplicate CBOR map key");
  CHECK(check("a26161016101") == "non-canonical CBOR: map keys out of order"); // "a" then 1
  CHECK(check("f93c00") == "unsupported CBOR simple value or float");
  CHECK(check("fb3ff0000000000000") == "unsupported CBOR simple value or float");
  CHECK(check("f7") == "unsupported CBOR simple value or float"); // undefined
  CHECK(check("62c328") == "CBOR text string is not valid UTF-8");
  CHECK(check("43010203") == "");
  CHECK(check("440102") == "truncated CBOR string");
  CHECK(check("1c") == "malformed CBOR: reserved additional information");
  CHECK(check("0000") == "trailing");
  CHECK(check("8181818181818181818181818181818181818100") == "CBOR nested too deeply");
}
