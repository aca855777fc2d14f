// Matter SPAKE2+ verifiers: connectedhomeip's default test verifier, vectors at the edges of the
// salt and iteration ranges, what is refused, and the derived salt.
#include <fleetkey/pairing/spake2p.hpp>
#include <fleetkey/util/bytes.hpp>

#include <doctest/doctest.h>

#include <string>

using namespace fleetkey;
using namespace fleetkey::pairing;

namespace {

std::string verifier_hex(const Spake2p& s, uint32_t passcode, util::ByteView salt, uint32_t iterations)
{
  auto v = s.verifier(passcode, salt, iterations);
  REQUIRE_MESSAGE(v.ok(), (v.ok() ? "" : v.error()));
  REQUIRE(v->size() == k_spake2p_verifier_len);
  return util::to_hex(v->span());
}

util::Bytes counting(size_t n)
{
  util::Bytes b(n);
  for (size_t i = 0; i < n; ++i) {
    b[i] = static_cast<uint8_t>(i);
  }
  return b;
}

} // namespace

TEST_CASE("spake2p: connectedhomeip's default test verifier")
{
  // Passcode 20202021, salt "SPAKE2P Key Salt", 1000 iterations: the verifier connectedhomeip's
  // examples ship (CHIP_DEVICE_CONFIG_USE_TEST_SPAKE2P_VERIFIER).
  const Spake2p s;
  auto v = s.verifier(20202021, util::as_bytes(std::string_view("SPAKE2P Key Salt")), 1000);
  REQUIRE(v.ok());
  CHECK(util::to_base64(v->span())
        == "uWFwqugDNGiEck/po7KHwwMwwqZgN10XuyBajPGuyzUEV/iree4lOrao5GuwnlQ65CJzbeUB49s31EH+NEkg0JVI5MGCQGMMT/"
           "SRPFNRODm3wH/MBiehuFc6FJ/NH6Rmzw==");
  // The same object, again and after another verifier: no state leaks between calls.
  CHECK(verifier_hex(s, 1, counting(16), 1000).substr(0, 8) == "ee1e02f7");
  auto again = s.verifier(20202021, util::as_bytes(std::string_view("SPAKE2P Key Salt")), 1000);
  REQUIRE(again.ok());
  CHECK(util::to_hex(again->span()) == util::to_hex(v->span()));
}

TEST_CASE("spake2p: the edges of the ranges (values from Python's hashlib and python3-cryptography)")
{
  const Spake2p s;
  CHECK(verifier_hex(s, 1, counting(16), 1000)
        == "ee1e02f7de004684ace32d83e771b8009c892dc18694568b434a9549fc2f331404e6e59d0d9b149d90fd9a7a8e53b83de588ba2e1"
           "ebc11b3b67f8cb01d5d236ba1c9d13efdd0d24c720a0b768b5aaeb02b8afb0f98d9bdab5f6884eaf82c58b6b2");
  CHECK(verifier_hex(s, 99999998, counting(32), 100000)
        == "5679c8879d532f8c2257e37e0e99c7562042c2e38c2aec883cd60c8e734d3cf2041b234951912527a3cb0facd8150b6df9c369ea9"
           "da420c5085eb9f5f2e73b973229c38b960722a055468115700363c0a6ab03920ac09395572629a78bdb2ed5b8");
}

TEST_CASE("spake2p: invalid passcodes, salts and iteration counts are refused")
{
  const Spake2p s;
  const auto salt = counting(16);
  for (uint32_t pc : {0u, 11111111u, 88888888u, 99999999u, 100000000u, 12345678u, 87654321u}) {
    CAPTURE(pc);
    auto v = s.verifier(pc, salt, 1000);
    CHECK_FALSE(v.ok());
  }
  CHECK(s.verifier(20202021, counting(15), 1000).error() == "a SPAKE2+ salt has 16-32 bytes, not 15");
  CHECK_FALSE(s.verifier(20202021, counting(33), 1000).ok());
  CHECK(s.verifier(20202021, salt, 999).error() == "999 PBKDF2 iterations are out of range (1000-100000)");
  CHECK_FALSE(s.verifier(20202021, salt, 100001).ok());
  CHECK(iterations_problem(1000) == std::nullopt);
  CHECK(iterations_problem(100000) == std::nullopt);
  CHECK(iterations_problem(0).has_value());
  CHECK(k_spake2p_default_iterations >= k_spake2p_min_iterations);
}

TEST_CASE("spake2p: the derived salt is the start of stream(\"pairing-matter-salt\", n)")
{
  util::Bytes key(32, 7);
  const StreamDeriver d(key);
  const auto salt = derive_salt(d, 0);
  CHECK(salt.size() == k_spake2p_salt_len);
  const auto stream = d.read(crypto::Info("pairing-matter-salt").add_u64(0), 64);
  CHECK(util::to_hex(salt) == util::to_hex(stream.subspan(0, 32)));
  CHECK(util::to_hex(derive_salt(d, 1)) != util::to_hex(salt));
}
