// QR encoding and renderings: the matrix shape, and each rendering read back module by module.
#include <fleetkey/core/error.hpp>
#include <fleetkey/qr/qr.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

using namespace fleetkey;

namespace {

// Splits UTF-8 text into code points, one line at a time.
std::vector<std::vector<char32_t>> code_points(const std::string& text)
{
  std::vector<std::vector<char32_t>> lines(1);
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    char32_t cp = c;
    size_t n = 1;
    if (c >= 0xe0) {
      cp = static_cast<char32_t>(((c & 0x0fu) << 12) | ((static_cast<unsigned char>(text[i + 1]) & 0x3fu) << 6)
                                 | (static_cast<unsigned char>(text[i + 2]) & 0x3fu));
      n = 3;
    }
    i += n;
    if (cp == U'\n') {
      lines.emplace_back();
    } else {
      lines.back().push_back(cp);
    }
  }
  lines.pop_back(); // after the final newline
  return lines;
}

bool finder_at(const qr::Matrix& m, int x0, int y0)
{
  for (int y = 0; y < 7; ++y) {
    for (int x = 0; x < 7; ++x) {
      const bool ring = x == 0 || y == 0 || x == 6 || y == 6;
      const bool core = x >= 2 && x <= 4 && y >= 2 && y <= 4;
      if (m.dark(x0 + x, y0 + y) != (ring || core)) {
        return false;
      }
    }
  }
  return true;
}

} // namespace

TEST_CASE("encode picks the smallest version and draws the finder patterns")
{
  // 22 alphanumeric characters fit version 1 at level L (25 characters) and M (20 no: version 2).
  const auto l = qr::encode("MT:Y.K9042C00KA0648G00", qr::Ec::L);
  CHECK(l.version() == 1);
  CHECK(l.size() == 21);
  const auto m = qr::encode("MT:Y.K9042C00KA0648G00", qr::Ec::M);
  CHECK(m.version() == 2);
  CHECK(m.size() == 25);
  CHECK(finder_at(m, 0, 0));
  CHECK(finder_at(m, m.size() - 7, 0));
  CHECK(finder_at(m, 0, m.size() - 7));
  CHECK_THROWS_AS(qr::encode("", qr::Ec::M), Error);
  // libqrencode reports ERANGE through the errno of the libc it was loaded with (qr.cpp).
  CHECK_THROWS_WITH_AS(qr::encode(std::string(8000, 'x'), qr::Ec::H),
                       "QR payload of 8000 bytes is too long for a QR code", Error);
}

TEST_CASE("parse_ec")
{
  CHECK(qr::parse_ec("L") == qr::Ec::L);
  CHECK(qr::parse_ec("q") == qr::Ec::Q);
  CHECK_THROWS_AS(qr::parse_ec("X"), Error);
}

TEST_CASE("render_utf8 reads back module by module")
{
  const auto m = qr::encode("FK1:482109375:SN-42", qr::Ec::M);
  for (int margin : {0, 1, 2, 4}) {
    CAPTURE(margin);
    const auto lines = code_points(qr::render_utf8(m, margin));
    const int side = m.size() + 2 * margin;
    REQUIRE(static_cast<int>(lines.size()) == (side + 1) / 2);
    for (int row = 0; row < static_cast<int>(lines.size()); ++row) {
      REQUIRE(static_cast<int>(lines[static_cast<size_t>(row)].size()) == side);
      for (int x = 0; x < side; ++x) {
        const char32_t g = lines[static_cast<size_t>(row)][static_cast<size_t>(x)];
        const bool upper_light = g == U'\u2580' || g == U'\u2588';
        const bool lower_light = g == U'\u2584' || g == U'\u2588';
        CHECK((g == U' ' || upper_light || lower_light));
        for (int half = 0; half < 2; ++half) {
          const int y = row * 2 + half;
          const bool light = half == 0 ? upper_light : lower_light;
          if (y >= side) {
            CHECK(!light);
            continue;
          }
          const int mx = x - margin;
          const int my = y - margin;
          const bool inside = mx >= 0 && my >= 0 && mx < m.size() && my < m.size();
          CHECK(light == !(inside && m.dark(mx, my)));
        }
      }
    }
  }
}

TEST_CASE("render_ansi sets both colours for every cell")
{
  const auto m = qr::encode("A", qr::Ec::L);
  const auto text = qr::render_ansi(m, 2);
  CHECK(text.rfind("\x1b[97;107m", 0) == 0); // quiet zone: white over white
  CHECK(text.find("\x1b[30;40m") != std::string::npos);
  CHECK(text.find("\x1b[0m\n") != std::string::npos);
}

TEST_CASE("render_png writes a 1-bit greyscale PNG of the right size")
{
  const auto m = qr::encode("FK1:482109375:SN-42", qr::Ec::M);
  const auto png = qr::render_png(m, 3, 4);
  REQUIRE(png.size() > 33);
  CHECK(std::string(png.begin(), png.begin() + 8) == "\x89PNG\r\n\x1a\n");
  const auto be32 = [&](size_t at) {
    return (uint32_t{png[at]} << 24) | (uint32_t{png[at + 1]} << 16) | (uint32_t{png[at + 2]} << 8) | png[at + 3];
  };
  const auto side = static_cast<uint32_t>((m.size() + 8) * 3);
  CHECK(be32(16) == side); // IHDR width
  CHECK(be32(20) == side); // IHDR height
  CHECK(png[24] == 1);     // bit depth
  CHECK(png[25] == 0);     // greyscale
  CHECK_THROWS_AS(qr::render_png(m, 0, 4), Error);
  CHECK_THROWS_AS(qr::render_png(m, 8, -1), Error);
}

TEST_CASE("render_svg draws one unit square per dark module")
{
  const auto m = qr::encode("FK1:482109375:SN-42", qr::Ec::M);
  const auto svg = qr::render_svg(m, 8, 4);
  const int side = m.size() + 8;
  CHECK(svg.find(fmt::format("viewBox=\"0 0 {0} {0}\"", side)) != std::string::npos);
  CHECK(svg.find(fmt::format("width=\"{0}\" height=\"{0}\"", side * 8)) != std::string::npos);
  // Re-draw the path's runs and compare with the matrix.
  std::vector<bool> drawn(static_cast<size_t>(m.size() * m.size()));
  const auto d = svg.substr(svg.find(" d=\"") + 4);
  size_t pos = 0;
  int x = 0;
  int y = 0;
  int run = 0;
  int back = 0;
  while (std::sscanf(d.c_str() + pos, "M%d %dh%dv1h-%dz", &x, &y, &run, &back) == 4) {
    CHECK(run == back);
    for (int i = 0; i < run; ++i) {
      drawn[static_cast<size_t>((y - 4) * m.size() + x - 4 + i)] = true;
    }
    pos = d.find('z', pos) + 1;
  }
  for (int yy = 0; yy < m.size(); ++yy) {
    for (int xx = 0; xx < m.size(); ++xx) {
      CHECK(drawn[static_cast<size_t>(yy * m.size() + xx)] == m.dark(xx, yy));
    }
  }
}

TEST_CASE("render_utf8 with explicit colours draws the dark modules in black on white")
{
  const auto m = qr::encode("FK1:503315982:SN-0001", qr::Ec::M);
  const auto plain = qr::render_utf8(m, 2);
  const auto coloured = qr::render_utf8(m, 2, qr::Colors::black_on_white);
  // Same lines; each coloured line is wrapped in SGR 30;107 ... 0 and its glyphs are the
  // complement of the plain ones (ink is dark instead of light).
  std::vector<std::string> a, b;
  for (size_t p = 0, q; (q = plain.find('\n', p)) != std::string::npos; p = q + 1) {
    a.push_back(plain.substr(p, q - p));
  }
  for (size_t p = 0, q; (q = coloured.find('\n', p)) != std::string::npos; p = q + 1) {
    b.push_back(coloured.substr(p, q - p));
  }
  REQUIRE(a.size() == b.size());
  const std::string k_on = "\x1b[30;107m", k_off = "\x1b[0m";
  const std::map<std::string, std::string> k_complement = {
      {" ", "\u2588"}, {"\u2588", " "}, {"\u2580", "\u2584"}, {"\u2584", "\u2580"}};
  for (size_t i = 0; i < a.size(); ++i) {
    REQUIRE(b[i].substr(0, k_on.size()) == k_on);
    REQUIRE(b[i].substr(b[i].size() - k_off.size()) == k_off);
    std::string body = b[i].substr(k_on.size(), b[i].size() - k_on.size() - k_off.size());
    std::string flipped;
    for (size_t p = 0; p < a[i].size();) {
      const size_t n = a[i][p] == ' ' ? 1 : 3;
      const auto want = a[i].substr(p, n);
      flipped += k_complement.at(want);
      p += n;
    }
    if (i + 1 == a.size() && m.size() % 2 == 1) {
      // An odd last row: the blank lower half stays blank in both renderings.
      continue;
    }
    CHECK(body == flipped);
  }
}
