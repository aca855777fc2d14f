// util/utf8.hpp: well-formed UTF-8 (RFC 3629), with and without the ASCII fast path.
#include <fleetkey/util/utf8.hpp>

#include <doctest/doctest.h>

#include <string>

using namespace fleetkey;

TEST_CASE("utf8: well-formed sequences pass, every ill-formed kind fails")
{
  CHECK(util::is_valid_utf8(""));
  CHECK(util::is_valid_utf8(std::string_view("a\0b", 3)));
  CHECK(util::is_valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf"));
  CHECK_FALSE(util::is_valid_utf8("\x80"));             // a stray continuation byte
  CHECK_FALSE(util::is_valid_utf8("\xc0\xaf"));         // overlong "/"
  CHECK_FALSE(util::is_valid_utf8("\xe0\x80\xaf"));     // overlong, three bytes
  CHECK_FALSE(util::is_valid_utf8("\xed\xa0\x80"));     // a surrogate
  CHECK_FALSE(util::is_valid_utf8("\xf4\x90\x80\x80")); // past U+10FFFF
  CHECK_FALSE(util::is_valid_utf8("\xf5\x80\x80\x80"));
  CHECK_FALSE(util::is_valid_utf8("ok \xe2\x82")); // truncated
}

TEST_CASE("utf8: sequence lengths")
{
  CHECK(util::utf8_sequence_length("\xc3\xa9", 0) == 2);
  CHECK(util::utf8_sequence_length("\xe2\x82\xac", 0) == 3);
  CHECK(util::utf8_sequence_length("x\xf0\x9f\x98\x80", 1) == 4);
  CHECK(util::utf8_sequence_length("\xf0\x9f\x98", 0) == 0);
  CHECK(util::utf8_sequence_length("\xc1\xbf", 0) == 0);
}
