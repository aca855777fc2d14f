// HKDF-SHA256 against RFC 5869 A.1-A.3, and the info encoding's injectivity.
#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/crypto/hkdf.hpp>
#include <fleetkey/util/bytes.hpp>

#include <doctest/doctest.h>

using namespace fleetkey;

namespace {

util::Bytes hex(std::string_view s)
{
  return *util::from_hex(s);
}

struct Case
{
  const char* name;
  const char* ikm;
  const char* salt;
  const char* info;
  size_t length;
  const char* prk;
  const char* okm;
};

// RFC 5869 Appendix A.1-A.3 (HKDF with SHA-256).
constexpr Case k_cases[] = {
    {"A.1", "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9", 42,
     "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
     "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"},
    {"A.2",
     "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f30313233343536373"
     "8"
     "393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f",
     "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f9091929394959697"
     "98999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
     "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7"
     "e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
     82, "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
     "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b83"
     "67793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87"},
    {"A.3", "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "", "", 42,
     "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
     "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"},
};

} // namespace

TEST_CASE("HKDF-SHA256 matches RFC 5869 appendix A")
{
  for (const auto& c : k_cases) {
    CAPTURE(c.name);
    const auto ikm = hex(c.ikm);
    const auto salt = hex(c.salt);
    const auto info = hex(c.info);
    const auto prk = crypto::hkdf_extract(salt, ikm);
    CHECK(util::to_hex(prk.span()) == c.prk);
    const auto okm = crypto::Expander(prk.span()).expand(info, c.length);
    CHECK(util::to_hex(okm.span()) == c.okm);
    CHECK(util::to_hex(crypto::hkdf(salt, ikm, info, c.length).span()) == c.okm);
  }
}

TEST_CASE("an Expander gives the same output on reuse")
{
  const auto prk = crypto::hkdf_extract({}, hex("0b0b"));
  const crypto::Expander e(prk.span());
  const auto a = e.expand(util::as_bytes("x"), 32);
  const auto b = e.expand(util::as_bytes("y"), 32);
  const auto c = e.expand(util::as_bytes("x"), 32);
  CHECK(crypto::equal(a.span(), c.span()));
  CHECK_FALSE(crypto::equal(a.span(), b.span()));
}

TEST_CASE("HKDF-Expand refuses more than 255 blocks")
{
  const auto prk = crypto::hkdf_extract({}, hex("0b0b"));
  CHECK_THROWS(crypto::Expander(prk.span()).expand({}, 255 * 32 + 1));
  CHECK(crypto::Expander(prk.span()).expand({}, 255 * 32).size() == 255 * 32);
}

TEST_CASE("info fields are length-prefixed, so concatenations do not collide")
{
  const auto a = crypto::Info("user").add("alice").add("admin");
  const auto b = crypto::Info("user").add("alicea").add("dmin");
  CHECK(util::to_hex(a.bytes()) == "0004757365720005616c696365000561646d696e");
  CHECK(util::to_hex(a.bytes()) != util::to_hex(b.bytes()));
  CHECK(util::to_hex(crypto::Info("pairing").add_u64(258).bytes()) == "000770616972696e6700080000000000000102");
}
