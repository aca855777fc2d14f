#include <fleetkey/util/text.hpp>

#include <fmt/format.h>

#include <charconv>
#include <chrono>
#include <ctime>
#include <limits>
#include <optional>

namespace fleetkey::util {

namespace {

// Decodes one UTF-8 sequence at s[i]; returns the code point and advances i, or -1.
int32_t decode_one(std::string_view s, size_t& i)
{
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  size_t len = 0;
  uint32_t cp = 0;
  uint32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1Fu, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0Fu, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07u, min = 0x10000;
  } else {
    return -1;
  }
  if (i + len > s.size()) {
    return -1;
  }
  for (size_t k = 1; k < len; ++k) {
    const auto b = static_cast<uint8_t>(s[i + k]);
    if ((b & 0xC0) != 0x80) {
      return -1;
    }
    cp = (cp << 6) | (b & 0x3Fu);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    return -1;
  }
  i += len;
  return static_cast<int32_t>(cp);
}

} // namespace

int32_t invisible_or_bidi(std::string_view s)
{
  for (size_t i = 0; i < s.size();) {
    const int32_t cp = decode_one(s, i);
    if (cp < 0) {
      return -1;
    }
    const bool hidden = cp == 0xAD || cp == 0x34F || cp == 0x61C || cp == 0x180E || (cp >= 0x200B && cp <= 0x200F)
                        || (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2060 && cp <= 0x206F) || cp == 0xFEFF
                        || (cp >= 0xFFF9 && cp <= 0xFFFB) || (cp >= 0xE0000 && cp <= 0xE007F);
    if (hidden) {
      return cp;
    }
  }
  return -1;
}

bool is_printable_utf8(std::string_view s)
{
  for (size_t i = 0; i < s.size();) {
    const int32_t cp = decode_one(s, i);
    if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F)) {
      return false;
    }
  }
  return true;
}

namespace {
std::optional<int64_t> g_pinned_clock;
}

int64_t system_now()
{
  return static_cast<int64_t>(std::time(nullptr));
}

int64_t unix_now()
{
  return g_pinned_clock ? *g_pinned_clock : system_now();
}

void pin_clock(int64_t unix_seconds)
{
  g_pinned_clock = unix_seconds;
}

// Civil time in UTC by calendar arithmetic (std::chrono): glibc's gmtime_r and timegm load the
// local time zone on first use, a file read that no UTC timestamp needs.
std::string format_time(int64_t unix_seconds)
{
  using namespace std::chrono;
  const sys_seconds t{seconds{unix_seconds}};
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss hms{t - day};
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()), hms.hours().count(),
                     hms.minutes().count(), hms.seconds().count());
}

Result<int64_t> parse_time(std::string_view text)
{
  if (!text.empty() && text[0] == '@') {
    int64_t v = 0;
    auto [p, ec] = std::from_chars(text.data() + 1, text.data() + text.size(), v);
    if (ec != std::errc() || p != text.data() + text.size() || text.size() == 1) {
      return fail(fmt::format("invalid time \"{}\"", text));
    }
    // Years 0000 to 9999: what format_time writes in four digits, so that its text sorts as
    // time does, and far from where adding a duration could overflow.
    if (v < k_min_time || v > k_max_time) {
      return fail(fmt::format("time \"{}\" is out of range (0000-01-01T00:00:00Z to 9999-12-31T23:59:59Z)", text));
    }
    return v;
  }
  int year = 0, mon = 0, day = 0, hour = 0, min = 0, sec = 0;
  auto num = [&](size_t pos, size_t len, int& out) {
    // Digits only: from_chars would take a sign ("-614-11-22", "T-1:-1:-1Z").
    if (pos + len > text.size() || text.substr(pos, len).find_first_not_of("0123456789") != std::string_view::npos) {
      return false;
    }
    // Digits only: from_chars would take a sign ("T-1:-1:-1Z", "-001-01-01").
    for (size_t k = pos; k < pos + len; ++k) {
      if (text[k] < '0' || text[k] > '9') {
        return false;
      }
    }
    auto [p, ec] = std::from_chars(text.data() + pos, text.data() + pos + len, out);
    return ec == std::errc() && p == text.data() + pos + len;
  };
  bool ok =
      text.size() >= 10 && num(0, 4, year) && text[4] == '-' && num(5, 2, mon) && text[7] == '-' && num(8, 2, day);
  if (ok && text.size() > 10) {
    ok = text.size() == 20 && text[10] == 'T' && num(11, 2, hour) && text[13] == ':' && num(14, 2, min)
         && text[16] == ':' && num(17, 2, sec) && text[19] == 'Z';
  }
  if (!ok || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60) {
    return fail(fmt::format("invalid time \"{}\" (expected YYYY-MM-DDTHH:MM:SSZ or @UNIXSECONDS)", text));
  }
  using namespace std::chrono;
  const year_month_day ymd{std::chrono::year{year}, std::chrono::month{static_cast<unsigned>(mon)},
                           std::chrono::day{static_cast<unsigned>(day)}};
  if (!ymd.ok()) {
    return fail(fmt::format("invalid time \"{}\" (no such date)", text));
  }
  const int64_t t =
      static_cast<int64_t>(sys_days{ymd}.time_since_epoch().count()) * 86400 + hour * 3600 + min * 60 + sec;
  if (t > k_max_time) { // a leap second at the very end: 9999-12-31T23:59:60Z
    return fail(fmt::format("time \"{}\" is out of range (0000-01-01T00:00:00Z to 9999-12-31T23:59:59Z)", text));
  }
  return t;
}

Result<int64_t> parse_duration(std::string_view text)
{
  if (text.empty()) {
    return fail("empty duration");
  }
  int64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    const size_t start = i;
    int64_t n = 0;
    auto [p, ec] = std::from_chars(text.data() + i, text.data() + text.size(), n);
    if (ec != std::errc() || n < 0 || text[i] < '0' || text[i] > '9') {
      return fail(fmt::format("invalid duration \"{}\" (examples: 90s, 15m, 12h, 30d, 2w, 1d12h)", text));
    }
    i = static_cast<size_t>(p - text.data());
    int64_t unit = 1;
    if (i < text.size()) {
      switch (text[i]) {
      case 's':
        unit = 1;
        break;
      case 'm':
        unit = 60;
        break;
      case 'h':
        unit = 3600;
        break;
      case 'd':
        unit = 86400;
        break;
      case 'w':
        unit = 7 * 86400;
        break;
      default:
        return fail(fmt::format("invalid duration \"{}\" (examples: 90s, 15m, 12h, 30d, 2w, 1d12h)", text));
      }
      ++i;
    } else if (start != 0) {
      // A bare number is seconds only as the whole duration: "0s5" is not 5 seconds.
      return fail(fmt::format("invalid duration \"{}\" (a unit is missing)", text));
    }
    if (n > (std::numeric_limits<int64_t>::max() / 4 - total) / unit) {
      return fail(fmt::format("duration \"{}\" is too long", text));
    }
    total += n * unit;
  }
  if (total <= 0) {
    return fail(fmt::format("duration \"{}\" must be positive", text));
  }
  return total;
}

std::string format_duration(int64_t seconds)
{
  static constexpr std::pair<int64_t, char> k_units[] = {{7 * 86400, 'w'}, {86400, 'd'}, {3600, 'h'}, {60, 'm'}};
  std::string out;
  for (auto [unit, c] : k_units) {
    if (seconds >= unit) {
      out += fmt::format("{}{}", seconds / unit, c);
      seconds %= unit;
    }
  }
  if (seconds > 0 || out.empty()) {
    out += fmt::format("{}s", seconds);
  }
  return out;
}

} // namespace fleetkey::util
