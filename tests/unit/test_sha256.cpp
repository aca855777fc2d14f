// SHA-256 and HMAC-SHA256: the SHA-extension fast path (src/crypto/sha256.hpp) against libsodium,
// and the public HMAC interface (fleetkey/crypto/hmac.hpp) against RFC 4231.
#include "crypto/sha256.hpp"

#include <fleetkey/crypto/hmac.hpp>
#include <fleetkey/util/bytes.hpp>

#include <doctest/doctest.h>
#include <sodium.h>

#include <cstdlib>
#include <fstream>
#include <string>

using namespace fleetkey;

TEST_CASE("the fast HMAC-SHA256 and SHA-256 agree with libsodium for every key and message length")
{
  using namespace crypto::detail;
  INFO("SHA extensions in use: " << sha256_fast_available());
#if defined(__x86_64__) && defined(__linux__)
  // The fast path is taken exactly where the kernel reports the SHA extensions (and their SSE
  // prerequisites), so that a broken detection cannot silently leave it untested.
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line) && line.rfind("flags", 0) != 0) {
  }
  const auto has = [&](const char* flag) {
    return (line + " ").find(std::string(" ") + flag + " ") != std::string::npos;
  };
  CHECK(sha256_fast_available()
        == (has("sha_ni") && has("ssse3") && has("sse4_1") && std::getenv("FLEETKEY_NO_SHA_EXT") == nullptr));
#endif
  util::Bytes key(100), msg(1100);
  randombytes_buf(key.data(), key.size());
  randombytes_buf(msg.data(), msg.size());
  for (const size_t klen : {size_t{0}, size_t{1}, size_t{32}, size_t{64}, size_t{65}, size_t{100}}) {
    HmacKey hk;
    hmac_init(hk, util::ByteView(key.data(), klen));
    // Past 1024 bytes the message goes to libsodium: both sides of that boundary are covered.
    for (size_t mlen = 0; mlen <= msg.size(); mlen += mlen < 130 ? 1 : 37) {
      uint8_t ours[32], split[32], theirs[32];
      const util::ByteView m(msg.data(), mlen);
      hmac(hk, m, {}, {}, ours);
      hmac(hk, m.subspan(0, mlen / 3), m.subspan(mlen / 3, mlen / 3), m.subspan(2 * (mlen / 3)), split);
      crypto_auth_hmacsha256_state st;
      crypto_auth_hmacsha256_init(&st, key.data(), klen);
      crypto_auth_hmacsha256_update(&st, msg.data(), mlen);
      crypto_auth_hmacsha256_final(&st, theirs);
      REQUIRE_MESSAGE(util::to_hex(ours) == util::to_hex(theirs), "key " << klen << " message " << mlen);
      REQUIRE_MESSAGE(util::to_hex(split) == util::to_hex(theirs), "key " << klen << " message " << mlen);
    }
  }
  for (size_t mlen = 0; mlen <= msg.size(); mlen += mlen < 130 ? 1 : 37) {
    uint8_t ours[32], theirs[32];
    sha256(util::ByteView(msg.data(), mlen / 2), util::ByteView(msg.data() + mlen / 2, mlen - mlen / 2), ours);
    crypto_hash_sha256(theirs, msg.data(), mlen);
    REQUIRE_MESSAGE(util::to_hex(ours) == util::to_hex(theirs), "message " << mlen);
  }
}

TEST_CASE("HmacSha256: RFC 4231 test cases 1, 2 and 6, whole and in three parts")
{
  struct Case
  {
    std::string key, data, mac;
  };
  const Case cases[] = {
      {std::string(20, '\x0b'), "Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
      {"Jefe", "what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
      {std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First",
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
  };
  for (const auto& c : cases) {
    const crypto::HmacSha256 key(util::as_bytes(c.key));
    uint8_t out[crypto::k_hmac_sha256_size];
    key.mac(util::as_bytes(c.data), out);
    CHECK(util::to_hex(out) == c.mac);
    const auto d = util::as_bytes(c.data);
    key.mac(d.subspan(0, 3), d.subspan(3, 4), d.subspan(7), out);
    CHECK(util::to_hex(out) == c.mac);
  }
}
