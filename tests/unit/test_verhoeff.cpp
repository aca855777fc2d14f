// The Verhoeff check digit against published examples.
#include <fleetkey/pairing/verhoeff.hpp>

#include <doctest/doctest.h>

#include <string>

using namespace fleetkey::pairing;

TEST_CASE("verhoeff digits of published examples")
{
  CHECK(verhoeff_digit("236") == '3'); // Verhoeff's worked example
  CHECK(verhoeff_digit("12345") == '1');
  CHECK(verhoeff_digit("142857") == '0');
  CHECK(verhoeff_digit("3497011233") == '2'); // the Matter manual code 34970112332
  CHECK(verhoeff_digit("") == '0');
  CHECK(verhoeff_digit("12a") == std::nullopt);
  CHECK(verhoeff_valid("2363"));
  CHECK(verhoeff_valid("34970112332"));
  CHECK_FALSE(verhoeff_valid("2364"));
  CHECK_FALSE(verhoeff_valid(""));
  CHECK_FALSE(verhoeff_valid("23x3"));
}

TEST_CASE("verhoeff catches every single-digit error and adjacent transposition")
{
  const std::string body = "4821093757";
  const std::string code = body + *verhoeff_digit(body);
  REQUIRE(verhoeff_valid(code));
  for (size_t i = 0; i < code.size(); ++i) {
    for (char d = '0'; d <= '9'; ++d) {
      if (d == code[i]) {
        continue;
      }
      std::string bad = code;
      bad[i] = d;
      CHECK_FALSE(verhoeff_valid(bad));
    }
    if (i + 1 < code.size() && code[i] != code[i + 1]) {
      std::string swapped = code;
      std::swap(swapped[i], swapped[i + 1]);
      CHECK_FALSE(verhoeff_valid(swapped));
    }
  }
}
