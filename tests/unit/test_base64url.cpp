// util/base64url.hpp: the strict decoder and the appending encoder of token text.
#include <fleetkey/util/base64url.hpp>

#include <doctest/doctest.h>

#include <string>

using namespace fleetkey;

TEST_CASE("base64url: RFC 4648 vectors without padding, both ways")
{
  const std::pair<std::string, std::string> vectors[] = {
      {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},          {"foo", "Zm9v"},
      {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}, {"\xfb\xff", "-_8"}};
  for (const auto& [plain, text] : vectors) {
    std::string enc = "x";
    util::append_base64url(enc, util::as_bytes(plain));
    CHECK(enc == "x" + text);
    util::Bytes dec;
    REQUIRE(util::decode_base64url_strict(text, dec));
    CHECK(util::as_text(dec) == plain);
  }
}

TEST_CASE("base64url: the decoder is strict")
{
  util::Bytes out;
  for (const char* bad : {"Z", "Zg==", "Zm9v\n", "Zm 9", "Zm+v", "Zm/v", "Zh", "Zm9", "Zm8="}) {
    CAPTURE(bad);
    CHECK_FALSE(util::decode_base64url_strict(bad, out));
  }
}
