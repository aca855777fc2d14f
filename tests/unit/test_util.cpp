// util: UTF-8 validation, times, durations, encodings, Fd and AtomicFile; crypto::Secret.
#include <fleetkey/crypto/secret.hpp>
#include <fleetkey/util/bytes.hpp>
#include <fleetkey/util/error.hpp>
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

TEST_CASE("printable UTF-8")
{
  CHECK(util::is_printable_utf8("SN-0001"));
  CHECK(util::is_printable_utf8("caf\xc3\xa9 \xe2\x82\xac"));
  CHECK_FALSE(util::is_printable_utf8("a\nb"));
  CHECK_FALSE(util::is_printable_utf8("a\x7f"));
  CHECK_FALSE(util::is_printable_utf8("\xc2\x85"));         // U+0085, a C1 control
  CHECK_FALSE(util::is_printable_utf8("\xc0\xaf"));         // overlong "/"
  CHECK_FALSE(util::is_printable_utf8("\xed\xa0\x80"));     // a surrogate
  CHECK_FALSE(util::is_printable_utf8("\xf4\x90\x80\x80")); // past U+10FFFF
  CHECK_FALSE(util::is_printable_utf8("\xe2\x82"));         // truncated
  CHECK(util::is_valid_utf8(std::string_view("a\0b", 3)));
  CHECK_FALSE(util::is_printable_utf8(std::string_view("a\0b", 3)));
}

TEST_CASE("times")
{
  CHECK(util::format_time(0) == "1970-01-01T00:00:00Z");
  CHECK(util::format_time(1795306337) == "2026-11-22T00:12:17Z");
  CHECK(*util::parse_time("2026-11-22T00:12:17Z") == 1795306337);
  CHECK(*util::parse_time("2026-11-22") == 1795305600);
  CHECK(*util::parse_time("@42") == 42);
  CHECK_FALSE(util::parse_time("2026-02-30"));
  CHECK_FALSE(util::parse_time("2026-11-22T00:12:17"));
  CHECK_FALSE(util::parse_time("@"));
  CHECK_FALSE(util::parse_time("yesterday"));
  CHECK_FALSE(util::parse_time("2100-02-29")); // not a leap year
  CHECK(*util::parse_time("2000-02-29") == 951782400);
  CHECK(*util::parse_time("1969-12-31T23:59:59Z") == -1);
  // Four-digit years only, so that the registry's time text sorts as time does.
  CHECK(*util::parse_time("@253402300799") == 253402300799);
  CHECK(util::format_time(253402300799) == "9999-12-31T23:59:59Z");
  CHECK(*util::parse_time("@-62167219200") == -62167219200);
  CHECK(util::format_time(-62167219200) == "0000-01-01T00:00:00Z");
  CHECK(util::parse_time("@253402300800").error()
        == "time \"@253402300800\" is out of range (0000-01-01T00:00:00Z to 9999-12-31T23:59:59Z)");
  CHECK_FALSE(util::parse_time("@-62167219201"));
  CHECK_FALSE(util::parse_time("@9223372036854775807"));
  CHECK_FALSE(util::parse_time("@-9223372036854775808"));
}

TEST_CASE("times agree with the C library's gmtime_r and timegm")
{
  // Every fifth day from 1900 to 2200 at a time of day that moves, and both ends of the day.
  for (int64_t t = -2208988800; t < 7258118400; t += 5 * 86400 + 3607) {
    for (const int64_t u : {t, t - t % 86400, t - t % 86400 + 86399}) {
      const auto tt = static_cast<time_t>(u);
      struct tm tm
      {
      };
      REQUIRE(gmtime_r(&tt, &tm) != nullptr);
      char want[32];
      std::strftime(want, sizeof want, "%Y-%m-%dT%H:%M:%SZ", &tm);
      REQUIRE(util::format_time(u) == want);
      REQUIRE(*util::parse_time(want) == u);
    }
  }
}

TEST_CASE("durations")
{
  CHECK(*util::parse_duration("90s") == 90);
  CHECK(*util::parse_duration("15m") == 900);
  CHECK(*util::parse_duration("1d12h") == 129600);
  CHECK(*util::parse_duration("2w") == 1209600);
  CHECK(*util::parse_duration("3600") == 3600);
  CHECK_FALSE(util::parse_duration(""));
  CHECK_FALSE(util::parse_duration("0s"));
  CHECK_FALSE(util::parse_duration("5y"));
  CHECK_FALSE(util::parse_duration("1d5"));
  CHECK_FALSE(util::parse_duration("-5m"));
  CHECK_FALSE(util::parse_duration("99999999999999999w"));
  CHECK(util::format_duration(129600) == "1d12h");
  CHECK(util::format_duration(45) == "45s");
}

TEST_CASE("hex and base64")
{
  const util::Bytes b = {0x00, 0xff, 0x10};
  CHECK(util::to_hex(b) == "00ff10");
  CHECK(*util::from_hex("00FF10") == b);
  CHECK_FALSE(util::from_hex("0"));
  CHECK_FALSE(util::from_hex("zz"));
  CHECK(util::to_base64(b) == "AP8Q");
  CHECK(util::to_base64url(util::as_bytes("\xfb\xff")) == "-_8");
  CHECK(*util::from_base64url("-_8") == util::Bytes{0xfb, 0xff});
  CHECK_FALSE(util::from_base64url("-_8="));
  CHECK_FALSE(util::from_base64("AP8Q!"));
  // Into a caller's buffer, as the key file's payload is decoded into guarded memory.
  std::vector<uint8_t> buf(util::base64_decoded_max(4));
  CHECK(*util::from_base64_into(buf, "AP8Q") == 3);
  CHECK(util::Bytes(buf.begin(), buf.begin() + 3) == b);
  CHECK(*util::from_base64_into(buf, "AA==") == 1);
  CHECK_FALSE(util::from_base64_into(buf, "AP8Q!"));
  CHECK_FALSE(util::from_base64_into(buf, "AP8"));
}

TEST_CASE("Fd moves ownership")
{
  util::Fd a(::open("/dev/null", O_RDONLY));
  const int raw = a.get();
  REQUIRE(raw >= 0);
  util::Fd b(std::move(a));
  CHECK_FALSE(a.valid());
  CHECK(b.get() == raw);
  util::Fd c;
  c = std::move(b);
  CHECK(c.get() == raw);
  CHECK(::fcntl(raw, F_GETFD) != -1);
  c = util::Fd();
  CHECK(::fcntl(raw, F_GETFD) == -1); // closed by the move-assignment
}

TEST_CASE("AtomicFile renames only on commit")
{
  char tmpl[] = "/tmp/fleetkey-unit-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const std::string path = dir + "/out";
  {
    util::AtomicFile f(path, util::Overwrite::no);
    f.write(std::string_view("half"));
    // With O_TMPFILE (ext4, tmpfs) nothing is visible until commit, so a kill leaves nothing.
    CHECK(std::filesystem::is_empty(dir));
  }
  CHECK_FALSE(util::exists(path));
  CHECK(std::filesystem::is_empty(dir));
  {
    util::AtomicFile f(path, util::Overwrite::no);
    f.write(std::string_view("whole"));
    f.commit();
  }
  CHECK(*util::read_file(path) == "whole");
  CHECK_THROWS_AS(util::AtomicFile(path, util::Overwrite::no), Error);
  {
    util::AtomicFile f(path, util::Overwrite::yes);
    f.write(std::string_view("new"));
    f.commit();
  }
  CHECK(*util::read_file(path) == "new");
  CHECK(std::filesystem::status(path).permissions() == std::filesystem::perms(0600));
  int entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) {
    ++entries;
  }
  CHECK(entries == 1);
  std::filesystem::remove_all(dir);
}

TEST_CASE("open_private checks the opened file, and read_into reads it whole or refuses it")
{
  char tmpl[] = "/tmp/fleetkey-unit-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const std::string path = dir + "/secret";
  {
    util::Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600));
    REQUIRE(::write(fd.get(), "12345678", 8) == 8);
  }
  auto fd = util::open_private(path, "test file");
  REQUIRE(fd);
  // The check is on the descriptor: what was opened is what is read, whatever the path becomes.
  REQUIRE(::rename(path.c_str(), (dir + "/moved").c_str()) == 0);
  uint8_t buf[8];
  auto n = util::read_into(*fd, buf, "test file");
  REQUIRE(n);
  CHECK(*n == 8);
  CHECK(std::memcmp(buf, "12345678", 8) == 0);
  auto small = util::open_private(dir + "/moved", "test file");
  REQUIRE(small);
  uint8_t seven[7];
  auto too_big = util::read_into(*small, seven, "test file x");
  REQUIRE_FALSE(too_big);
  CHECK(too_big.error() == "test file x is larger than 7 bytes");
  ::chmod((dir + "/moved").c_str(), 0640);
  auto shared = util::open_private(dir + "/moved", "test file");
  REQUIRE_FALSE(shared);
  CHECK(shared.error()
        == fmt::format(
            "test file {0}/moved is accessible by group or others (mode 0640); fix it with: chmod 600 {0}/moved", dir));
  REQUIRE(::symlink((dir + "/moved").c_str(), path.c_str()) == 0);
  auto link = util::open_private(path, "test file"); // followed: the target's mode is what counts
  REQUIRE_FALSE(link);
  CHECK(link.error()
        == fmt::format("test file {0} is accessible by group or others (mode 0640); fix it with: chmod 600 {0}", path));
  ::chmod((dir + "/moved").c_str(), 0600);
  CHECK(util::open_private(path, "test file"));
  auto missing = util::open_private(dir + "/none", "test file");
  REQUIRE_FALSE(missing);
  CHECK(missing.error() == fmt::format("cannot read test file {}/none: No such file or directory", dir));
  std::filesystem::remove_all(dir);
}

TEST_CASE("passwd_name reads the first account with a uid, without NSS")
{
  char tmpl[] = "/tmp/fleetkey-unit-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const std::string path = dir + "/passwd";
  const std::string gecos(10000, 'g'); // longer than the first buffer: read again with a larger one
  const std::string text = "+::1001:1001:::\n"
                           "-nis:x:1002:1002::/:/bin/sh\n"
                           "root:x:0:0:root:/root:/bin/bash\n"
                           "no colons here\n"
                           ":x:1003:1003::/:/bin/sh\n"
                           "alice:x:1001:1001:"
                           + gecos
                           + ":/home/alice:/bin/sh\n"
                             "alias:x:1001:1001::/home/alice:/bin/sh\n"
                             "carol:x:1004:1004::/home/carol:/bin/sh";
  {
    util::Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644));
    REQUIRE(util::write_fully(fd.get(), text));
  }
  CHECK(util::passwd_name(path, 0) == "root");
  CHECK(util::passwd_name(path, 1001) == "alice"); // the first account, after the "+" line
  CHECK(util::passwd_name(path, 1002) == std::nullopt);
  CHECK(util::passwd_name(path, 1003) == std::nullopt);
  CHECK(util::passwd_name(path, 1004) == "carol"); // the last line needs no newline
  CHECK(util::passwd_name(path, 4242) == std::nullopt);
  CHECK(util::passwd_name(dir + "/none", 0) == std::nullopt);
  std::filesystem::remove_all(dir);
}

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
