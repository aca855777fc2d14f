// util/json_escape.hpp: the one JSON string escaping of every fleetkey output.
#include <fleetkey/util/json_escape.hpp>

#include <doctest/doctest.h>

#include <string>

using namespace fleetkey;

TEST_CASE("json_escape: JSON strings are escaped exactly as fleetkey-tokens(5) JWT LAYOUT says")
{
  std::string s;
  util::append_json_string(s, "a\"b\\c/d\x01\x1f\x7f\n\t \xc3\xa9\xf0\x9f\x98\x80~");
  CHECK(s == "\"a\\\"b\\\\c/d\\u0001\\u001f\\u007f\\u000a\\u0009 \xc3\xa9\xf0\x9f\x98\x80~\"");
  // Bytes that are not UTF-8 never reach the output as they are: every JSON line stays valid.
  s.clear();
  util::append_json_string(s, "\xff\xfe\"x\xc3\xe0\x80\x80\xed\xa0\x80\xf4\x90\x80\x80\xc3");
  CHECK(s == R"("\ufffd\ufffd\"x\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd")");
}

TEST_CASE("json_escape: put_json_string stays within json_string_bound")
{
  const std::string inputs[] = {std::string(), std::string(7, '\x01'), std::string(5, '\xff'), "\xf0\x9f\x98\x80"};
  for (const auto& s : inputs) {
    std::string buf(util::json_string_bound(s.size()), '\0');
    const char* end = util::put_json_string(buf.data(), s);
    CHECK(end <= buf.data() + buf.size());
  }
}
