// crypto/secret.hpp: Secret and SecretText in guarded memory.
#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/secret.hpp>
#include <fleetkey/util/bytes.hpp>
#include <fleetkey/util/file.hpp>
#include <fleetkey/util/text.hpp>

#include <doctest/doctest.h>
#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <filesystem>
#include <span>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace fleetkey;

TEST_CASE("Secret is zero-filled, moves, compares in constant time and never formats its bytes")
{
  crypto::Secret a(4);
  CHECK(util::to_hex(a.span()) == "00000000");
  auto b = crypto::Secret::copy_of(util::as_bytes("key!"));
  CHECK(fmt::format("{}", b) == "[redacted]");
  crypto::Secret c(std::move(b));
  CHECK(b.empty());
  CHECK(c.size() == 4);
  CHECK(crypto::equal(c.span(), util::as_bytes("key!")));
  CHECK_FALSE(crypto::equal(c.span(), util::as_bytes("key?")));
  CHECK_FALSE(crypto::equal(c.span(), util::as_bytes("key")));
  c.truncate(2);
  CHECK(crypto::equal(c.span(), util::as_bytes("ke")));
  a = std::move(c);
  CHECK(a.size() == 2);
  CHECK(crypto::Secret::random(32).size() == 32);
}

namespace {

// True when every byte of `bytes` is `value`.
bool all_bytes(std::span<const uint8_t> bytes, uint8_t value)
{
  return std::all_of(bytes.begin(), bytes.end(), [value](uint8_t b) { return b == value; });
}

} // namespace

TEST_CASE("small Secrets share guarded chunks without overlapping, and are zeroed when released")
{
  // Enough of each size to span several chunks, around every size-class boundary, and past the
  // largest class (those get a region of their own).
  std::vector<crypto::Secret> live;
  uint8_t tag = 0;
  for (const size_t size : {1UL, 31UL, 32UL, 33UL, 64UL, 100UL, 256UL, 1000UL, 1024UL, 1025UL, 5000UL}) {
    for (int i = 0; i < 300; ++i) {
      auto& s = live.emplace_back(size);
      REQUIRE(util::to_hex(s.span()) == std::string(2 * size, '0'));
      std::memset(s.data(), ++tag, size);
    }
  }
  auto intact = [&] {
    uint8_t t = 0;
    for (const auto& s : live) {
      ++t;
      if (!all_bytes(s.span(), t)) {
        return false;
      }
    }
    return true;
  };
  CHECK(intact());
  // Released slots are wiped at once (bytes past the free list's 8-byte link stay readable in the
  // chunk), and reused zero-filled.
  const uint8_t* old = live[5].data(); // a 1-byte secret: its 32-byte slot
  CHECK(old[0] == 6);
  live[5] = crypto::Secret();
  CHECK(all_bytes({old + 8, old + 32}, 0));
  live[5] = crypto::Secret(1);
  std::memset(live[5].data(), 6, 1);
  // Free half, allocate them again (from the freed slots), and nothing overlaps.
  for (size_t i = 0; i < live.size(); i += 2) {
    const size_t size = live[i].size();
    live[i] = crypto::Secret();
    live[i] = crypto::Secret(size);
    REQUIRE(util::to_hex(live[i].span()) == std::string(2 * size, '0'));
    std::memset(live[i].data(), static_cast<uint8_t>(i + 1), size);
  }
  CHECK(intact());
}

TEST_CASE("Secrets are allocated and released from several threads at once")
{
  std::atomic<bool> ok{true};
  auto work = [&ok](uint8_t seed) {
    std::vector<crypto::Secret> mine;
    for (int i = 0; i < 20000; ++i) {
      const size_t size = 1 + (static_cast<size_t>(i) * 37 + seed) % 700;
      auto& s = mine.emplace_back(size);
      std::memset(s.data(), seed, size);
      if (mine.size() > 64) {
        const auto& first = mine.front();
        if (!all_bytes(first.span(), seed)) {
          ok = false;
        }
        mine.erase(mine.begin());
      }
    }
  };
  std::thread a(work, uint8_t{0xa5});
  std::thread b(work, uint8_t{0x5a});
  a.join();
  b.join();
  CHECK(ok);
}

TEST_CASE("SecretText builds text in guarded memory: hex, base64, and a hard capacity")
{
  const uint8_t key[] = {0x00, 0x01, 0xfe, 0xff};
  crypto::SecretText t(32);
  t.append("k=").append_hex(key).append(" ").append_base64(key, sodium_base64_VARIANT_ORIGINAL);
  CHECK(t.view() == "k=0001feff AAH+/w==");
  t.append(" ").append_base64(key, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  CHECK(t.view() == "k=0001feff AAH+/w== AAH-_w");
  CHECK_THROWS_AS(t.append(std::string(7, 'x')), std::length_error); // 26 + 7 > 32
  CHECK(t.view() == "k=0001feff AAH+/w== AAH-_w");                   // unchanged by the refusal
  const auto s = std::move(t).take();
  CHECK(crypto::as_text(s) == "k=0001feff AAH+/w== AAH-_w");
  crypto::SecretText exact(8 + 8); // the capacity is the text's: exactly enough is enough
  exact.append_hex(key).append_base64(key, sodium_base64_VARIANT_ORIGINAL);
  CHECK(exact.view() == "0001feffAAH+/w==");
  CHECK_THROWS_AS(exact.append("x"), std::length_error);
}
