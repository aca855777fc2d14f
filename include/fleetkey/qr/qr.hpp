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
  Matrix(int size, std::vector<bool> modules) : m_size(size), m_modules(std::move(modules)) {}
  int size() const { return m_size; }
  bool dark(int x, int y) const { return m_modules[static_cast<size_t>(y * m_size + x)]; }

private:
  int m_size;
  std::vector<bool> m_modules;
};

// Encodes `payload` in the smallest version that fits, in the mode that suits it; throws Error.
Matrix encode(std::string_view payload, Ec ec);

// Half-block characters (two modules per character), dark modules drawn as spaces on a light
// background so that the code reads the same in dark and light terminals; `margin` modules of quiet zone.
std::string render_utf8(const Matrix& m, int margin = 2);
std::string render_ansi(const Matrix& m, int margin = 2);
std::string render_svg(const Matrix& m, int scale = 8, int margin = 4);
std::vector<uint8_t> render_png(const Matrix& m, int scale = 8, int margin = 4);

} // namespace fleetkey::qr
