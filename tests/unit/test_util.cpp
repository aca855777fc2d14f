// util: UTF-8 validation, times, durations, encodings, Fd and AtomicFile; crypto::Secret.
#include <fleetkey/crypto/secret.hpp>
#include <fleetkey/util/bytes.hpp>
#include <fleetkey/util/error.hpp>
#include <fleetkey/util/file.hpp>
#include <fleetkey/util/text.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <filesystem>
#include <unistd.h>

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
