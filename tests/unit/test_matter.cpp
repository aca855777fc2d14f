// Matter onboarding codes against the connectedhomeip vectors, base38, and what decode refuses.
#include <fleetkey/pairing/decode.hpp>
#include <fleetkey/pairing/matter.hpp>
#include <fleetkey/pairing/verhoeff.hpp>

#include <doctest/doctest.h>

#include <numeric>

using namespace fleetkey;
using namespace fleetkey::pairing;

namespace {

struct Vector
{
  MatterPayload payload;
  const char* qr;
  const char* manual;
};

// From connectedhomeip's setup payload tests (vectors/matter-onboarding.json).
const Vector k_vectors[] = {
    {{0, 0xFFF1, 0x8000, 0, 2, 3840, 20202021}, "MT:Y.K9042C00KA0648G00", "34970112332"},
    {{0, 0, 0, 0, 4, 3840, 20202021}, "MT:00000CQM00KA0648G00", "34970112332"},
};

} // namespace

TEST_CASE("matter vectors: QR payload and manual code")
{
  for (const auto& v : k_vectors) {
    CAPTURE(v.qr);
    CHECK(matter_qr(v.payload) == v.qr);
    CHECK(matter_manual_code(v.payload) == v.manual);
    const auto back = parse_matter_qr(v.qr);
    REQUIRE(back);
    CHECK(back->vendor_id == v.payload.vendor_id);
    CHECK(back->product_id == v.payload.product_id);
    CHECK(back->flow == v.payload.flow);
    CHECK(back->discovery == v.payload.discovery);
    CHECK(back->discriminator == v.payload.discriminator);
    CHECK(back->passcode == v.payload.passcode);
    const auto manual = parse_matter_manual_code(v.manual);
    REQUIRE(manual);
    CHECK(manual->short_discriminator == 15);
    CHECK(manual->passcode == 20202021);
    CHECK_FALSE(manual->long_code);
  }
  CHECK(group_manual_code("34970112332") == "3497-011-2332");
}

TEST_CASE("matter long manual code for non-standard flows")
{
  MatterPayload p{0, 0xFFF1, 0x8000, 2, 2, 3840, 20202021};
  const auto code = matter_manual_code(p);
  CHECK(code.size() == 21);
  CHECK(code.substr(0, 10) == "7497011233"); // first digit gains the vid/pid flag (4)
  CHECK(code.substr(10, 10) == "6552132768");
  const auto back = parse_matter_manual_code(group_manual_code(code));
  REQUIRE(back);
  CHECK(back->long_code);
  CHECK(back->vendor_id == 0xFFF1);
  CHECK(back->product_id == 0x8000);
  CHECK(back->passcode == 20202021);
  p.flow = 1;
  CHECK(matter_manual_code(p).size() == 21);
}

TEST_CASE("invalid passcodes are refused with the reason")
{
  for (uint64_t bad : {0ull, 11111111ull, 22222222ull, 33333333ull, 44444444ull, 55555555ull, 66666666ull, 77777777ull,
                       88888888ull, 99999999ull, 12345678ull, 87654321ull, 100000000ull}) {
    CAPTURE(bad);
    CHECK(passcode_problem(bad).has_value());
  }
  CHECK(*passcode_problem(12345678) == "passcode 12345678 is a sequence, which Matter forbids");
  CHECK(*passcode_problem(100000000) == "passcode 100000000 is out of range (1-99999998)");
  CHECK_FALSE(passcode_problem(1));
  CHECK_FALSE(passcode_problem(20202021));
  CHECK_FALSE(passcode_problem(99999998));
}

TEST_CASE("base38 round trips every length and refuses bad text")
{
  util::Bytes data(20);
  std::iota(data.begin(), data.end(), uint8_t{250});
  for (size_t n = 0; n <= data.size(); ++n) {
    const util::ByteView part(data.data(), n);
    const auto text = base38_encode(part);
    CHECK(text.size() == n / 3 * 5 + (n % 3 == 2 ? 4 : n % 3 == 1 ? 2 : 0));
    const auto back = base38_decode(text);
    REQUIRE(back);
    CHECK(*back == util::Bytes(part.begin(), part.end()));
  }
  CHECK(base38_encode(util::Bytes{0xff, 0xff, 0xff}) == "PLS18"); // 16777215 = 25 + 21*38 + 28*38^2 + 1*38^3 + 8*38^4
  CHECK_FALSE(base38_decode("abc12"));                            // lower case is not base38
  CHECK_FALSE(base38_decode("..."));                              // a final group of 3
  CHECK_FALSE(base38_decode("....."));                            // 38^5 - 1 > 2^24 - 1
}

TEST_CASE("decode explains bad Matter codes")
{
  const auto error = [](std::string_view text) {
    auto r = decode(text, SchemeHint::any);
    REQUIRE_FALSE(r);
    return r.error();
  };
  CHECK(error("34970112333") == "bad check digit: 34970112333 ends in 3, the Verhoeff digit of 3497011233 is 2");
  CHECK(error("MT:Y.K9042C00KA0648G0") == "base38 text of 18 characters has a final group of 3 (5, 4 or 2 expected)");
  CHECK(error("MT:Y.K9042C00KA064")
        == "wrong length: 15 base38 characters hold 9 bytes, a Matter record needs 11 (19 characters)");
  CHECK(error("MT:y.K9042C00KA0648G00") == "'y' at offset 0 is not a base38 character (0-9 A-Z - .)");
  // Version 1 (the lowest bit group): not defined.
  MatterPayload p{0, 0xFFF1, 0x8000, 0, 2, 3840, 20202021};
  auto bytes = pack(p);
  bytes[0] = static_cast<uint8_t>(bytes[0] | 1);
  CHECK(error("MT:" + base38_encode(bytes)) == "payload version 1 is unknown (only 0 is defined)");
  bytes = pack(p);
  bytes[10] = static_cast<uint8_t>(bytes[10] | 0x80); // the last padding bit
  CHECK(error("MT:" + base38_encode(bytes)) == "the 4 padding bits are not zero");
  p.passcode = 11111111;
  CHECK(error(matter_qr(p)) == "passcode 11111111 is eight repeated digits, which Matter forbids");
  // A manual code whose passcode is forbidden, with a correct check digit.
  p.passcode = 12345678;
  CHECK(error(matter_manual_code(p)) == "passcode 12345678 is a sequence, which Matter forbids");
  CHECK(error("8497011233" + std::string(1, *verhoeff_digit("8497011233"))) == "first digit 8 is reserved (0-7)");
}

TEST_CASE("derived passcode and discriminator match the reference implementation")
{
  std::array<uint8_t, 32> key{};
  std::iota(key.begin(), key.end(), uint8_t{0});
  const StreamDeriver d(key);
  CHECK(derive_passcode(d, 0) == 12069602);
  CHECK(derive_passcode(d, 1) == 17377142);
  CHECK(derive_discriminator(d, 0) == 2209);
  CHECK(derive_discriminator(d, 1) == 2568);
}
