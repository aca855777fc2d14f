// util/text.hpp: printable UTF-8, times and durations.
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
