#pragma once
// QR codes with libqrencode, and their renderings for terminals, labels and web pages.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fleetkey::qr {

enum class Ec { L, M, Q, H };

// The module matrix: size x size, true = dark.
class Matrix
{
public:
  Matrix(int size, std::vector<bool> modules, int version = 0)
      : m_size(size)
      , m_version(version)
      , m_modules(std::move(modules))
  {
  }
  int size() const { return m_size; }
  int version() const { return m_version; } // QR version 1-40 (0 when built by hand)
  bool dark(int x, int y) const { return m_modules[static_cast<size_t>(y * m_size + x)]; }

private:
  int m_size;
  int m_version;
  std::vector<bool> m_modules;
};

// "L", "M", "Q" or "H" (either case); throws Error(usage).
Ec parse_ec(std::string_view name);

// Encodes `payload` in the smallest version that fits, in the mode that suits it; throws Error.
Matrix encode(std::string_view payload, Ec ec);

enum class Colors {
  none,           // plain text, for files and pipes: drawn for a dark terminal (see below)
  black_on_white, // each line in SGR black on bright white: reads the same in any terminal
};

// Half-block characters, two module rows per line. With Colors::none, no escape sequences: light
// modules (and the `margin` modules of quiet zone) are drawn, dark modules are blank, which is
// black on white on a dark terminal and inverted on a light one (phone scanners read both, some
// decoders do not). With Colors::black_on_white, dark modules are drawn in black on a white
// background that the line's colours set, so a dark and a light terminal show the same code.
// A last odd row has a blank lower half.
std::string render_utf8(const Matrix& m, int margin = 2, Colors colors = Colors::none);
// Upper half blocks with explicit SGR colours (97/107 white, 30/40 black): black on white anywhere.
std::string render_ansi(const Matrix& m, int margin = 2);
// Scale is pixels (SVG user units) per module; margin is in modules.
std::string render_svg(const Matrix& m, int scale = 8, int margin = 4);
// A 1-bit greyscale PNG (0 black), compressed for speed.
std::vector<uint8_t> render_png(const Matrix& m, int scale = 8, int margin = 4);

} // namespace fleetkey::qr
