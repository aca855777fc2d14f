// Inputs the libFuzzer targets (tests/fuzz/) found to break a property, kept as known answers.
#include <fleetkey/util/text.hpp>

#include <doctest/doctest.h>

using namespace fleetkey;

TEST_CASE("fuzz_time: a time's fields are digits, without a sign")
{
  // parse_time read "-614" as the year -614 (std::from_chars takes a minus sign), a time outside
  // the years 0000-9999 that format_time cannot write back.
  CHECK(!util::parse_time("-614-11-22"));
  CHECK(!util::parse_time("-001-01-01"));
  CHECK(!util::parse_time("2026-01-01T-1:-1:-1Z"));
  CHECK(!util::parse_time("2026--1-01"));
  CHECK(!util::parse_time("+026-01-01"));
  CHECK(util::parse_time("0000-01-01").value() == util::k_min_time);
  // A leap second is read as the next second: at the very end, that is past 9999.
  CHECK(!util::parse_time("9999-12-31T23:59:60Z"));
  CHECK(util::parse_time("9999-12-31T23:59:59Z").value() == util::k_max_time);
  CHECK(util::parse_time("2016-12-31T23:59:60Z").value() == util::parse_time("2017-01-01").value());
  CHECK(util::parse_time("2026-11-22T00:12:17Z").value() == 1795306337);
}
