// Shamir sharing over GF(2^8): the field arithmetic and the split/combine round trip. The share
// format and its independent Python implementation are tested in tests/cli/test_backup.py.
#include <fleetkey/crypto/shamir.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <vector>

using namespace fleetkey;

TEST_CASE("GF(2^8) multiplication matches FIPS 197's examples")
{
  CHECK(crypto::gf256_mul(0x57, 0x83) == 0xc1); // FIPS 197 section 4.2
  CHECK(crypto::gf256_mul(0x57, 0x13) == 0xfe); // section 4.2.1
  CHECK(crypto::gf256_mul(0x57, 0x02) == 0xae);
  CHECK(crypto::gf256_mul(0x00, 0x83) == 0x00);
  CHECK(crypto::gf256_mul(0x01, 0x83) == 0x83);
}

TEST_CASE("GF(2^8) inverses")
{
  CHECK(crypto::gf256_inv(0) == 0);
  CHECK(crypto::gf256_inv(0x53) == 0xca); // FIPS 197 section 5.1.1
  for (unsigned a = 1; a < 256; ++a) {
    CHECK(crypto::gf256_mul(static_cast<uint8_t>(a), crypto::gf256_inv(static_cast<uint8_t>(a))) == 1);
  }
}

TEST_CASE("any threshold shares combine to the secret, fewer do not")
{
  std::vector<uint8_t> secret(58);
  for (size_t i = 0; i < secret.size(); ++i) {
    secret[i] = static_cast<uint8_t>(i * 37 + 5);
  }
  const auto ys = crypto::shamir_split(secret, 5, 3);
  REQUIRE(ys.size() == 5);
  for (const auto& y : ys) {
    CHECK(y.size() == secret.size());
  }
  // Every 3-subset, in every order of the first one.
  for (uint8_t a = 1; a <= 5; ++a) {
    for (uint8_t b = static_cast<uint8_t>(a + 1); b <= 5; ++b) {
      for (uint8_t c = static_cast<uint8_t>(b + 1); c <= 5; ++c) {
        std::array<uint8_t, 3> xs{c, a, b};
        std::vector<crypto::Secret> pick;
        for (const auto x : xs) {
          pick.push_back(crypto::Secret::copy_of(ys[x - 1u].span()));
        }
        const auto got = crypto::shamir_combine(xs, pick);
        CHECK(std::equal(got.span().begin(), got.span().end(), secret.begin(), secret.end()));
      }
    }
  }
  // All five agree too; two do not give the secret.
  std::array<uint8_t, 5> all{1, 2, 3, 4, 5};
  std::vector<crypto::Secret> every;
  for (const auto& y : ys) {
    every.push_back(crypto::Secret::copy_of(y.span()));
  }
  const auto five = crypto::shamir_combine(all, every);
  CHECK(std::equal(five.span().begin(), five.span().end(), secret.begin(), secret.end()));
  std::array<uint8_t, 2> two{1, 2};
  std::vector<crypto::Secret> pair;
  pair.push_back(crypto::Secret::copy_of(ys[0].span()));
  pair.push_back(crypto::Secret::copy_of(ys[1].span()));
  const auto short_of = crypto::shamir_combine(two, pair);
  CHECK_FALSE(std::equal(short_of.span().begin(), short_of.span().end(), secret.begin(), secret.end()));
}

TEST_CASE("split and combine refuse what they cannot do")
{
  const std::array<uint8_t, 4> secret{1, 2, 3, 4};
  CHECK_THROWS_AS(crypto::shamir_split(secret, 3, 1), std::invalid_argument);
  CHECK_THROWS_AS(crypto::shamir_split(secret, 2, 3), std::invalid_argument);
  CHECK_THROWS_AS(crypto::shamir_split(secret, 256, 3), std::invalid_argument);
  CHECK(crypto::shamir_split(secret, 255, 255).size() == 255);
  const auto ys = crypto::shamir_split(secret, 3, 2);
  std::vector<crypto::Secret> two;
  two.push_back(crypto::Secret::copy_of(ys[0].span()));
  two.push_back(crypto::Secret::copy_of(ys[1].span()));
  const std::array<uint8_t, 2> same{1, 1};
  CHECK_THROWS_AS(crypto::shamir_combine(same, two), std::invalid_argument);
  const std::array<uint8_t, 2> zero{0, 1};
  CHECK_THROWS_AS(crypto::shamir_combine(zero, two), std::invalid_argument);
}
