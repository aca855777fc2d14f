// TEMPORARY (token branch): a minimal implementation of qr.hpp so that `user grant --qr` builds
// and is tested before the pairing branch's src/qr/ lands. Delete this file when merging that branch.
#include <fleetkey/qr/qr.hpp>
#include <fleetkey/util/error.hpp>

#include <fmt/format.h>
#include <png.h>
#include <qrencode.h>

#include <memory>

namespace fleetkey::qr {

Matrix encode(std::string_view payload, Ec ec)
{
  const QRecLevel level = ec == Ec::L   ? QR_ECLEVEL_L
                          : ec == Ec::M ? QR_ECLEVEL_M
                          : ec == Ec::Q ? QR_ECLEVEL_Q
                                        : QR_ECLEVEL_H;
  std::unique_ptr<QRcode, void (*)(QRcode*)> code(
      QRcode_encodeData(static_cast<int>(payload.size()), reinterpret_cast<const unsigned char*>(payload.data()), 0,
                        level),
      QRcode_free);
  if (!code) {
    throw Error(Exit::failure, "cannot encode a QR code of {} bytes", payload.size());
  }
  const int n = code->width;
  std::vector<bool> modules(static_cast<size_t>(n) * static_cast<size_t>(n));
  for (size_t i = 0; i < modules.size(); ++i) {
    modules[i] = (code->data[i] & 1) != 0;
  }
  return Matrix(n, std::move(modules));
}

namespace {

bool dark_at(const Matrix& m, int x, int y)
{
  return x >= 0 && y >= 0 && x < m.size() && y < m.size() && m.dark(x, y);
}

} // namespace

std::string render_utf8(const Matrix& m, int margin)
{
  // Light modules are drawn as full blocks, dark as spaces: two rows per character line.
  std::string out;
  for (int y = -margin; y < m.size() + margin; y += 2) {
    for (int x = -margin; x < m.size() + margin; ++x) {
      const bool top = !dark_at(m, x, y);
      const bool bottom = y + 1 < m.size() + margin && !dark_at(m, x, y + 1);
      out += top && bottom ? "\u2588" : top ? "\u2580" : bottom ? "\u2584" : " ";
    }
    out += '\n';
  }
  return out;
}

std::string render_ansi(const Matrix& m, int margin)
{
  std::string out;
  for (int y = -margin; y < m.size() + margin; ++y) {
    for (int x = -margin; x < m.size() + margin; ++x) {
      out += dark_at(m, x, y) ? "\x1b[40m  " : "\x1b[47m  ";
    }
    out += "\x1b[0m\n";
  }
  return out;
}

std::string render_svg(const Matrix& m, int scale, int margin)
{
  const int size = (m.size() + 2 * margin) * scale;
  std::string out = fmt::format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{0}\" "
                                "viewBox=\"0 0 {0} {0}\"><rect width=\"{0}\" height=\"{0}\" fill=\"#fff\"/><path d=\"",
                                size);
  for (int y = 0; y < m.size(); ++y) {
    for (int x = 0; x < m.size(); ++x) {
      if (m.dark(x, y)) {
        out += fmt::format("M{} {}h{}v{}h-{}z", (x + margin) * scale, (y + margin) * scale, scale, scale, scale);
      }
    }
  }
  out += "\" fill=\"#000\"/></svg>\n";
  return out;
}

std::vector<uint8_t> render_png(const Matrix& m, int scale, int margin)
{
  const int size = (m.size() + 2 * margin) * scale;
  std::vector<uint8_t> out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (png == nullptr || info == nullptr || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    throw Error(Exit::failure, "cannot render the QR code as PNG");
  }
  png_set_write_fn(
      png, &out,
      [](png_structp p, png_bytep data, png_size_t len) {
        auto* v = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(p));
        v->insert(v->end(), data, data + len);
      },
      nullptr);
  png_set_IHDR(png, info, static_cast<png_uint_32>(size), static_cast<png_uint_32>(size), 1, PNG_COLOR_TYPE_GRAY,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  std::vector<uint8_t> row(static_cast<size_t>((size + 7) / 8));
  for (int y = 0; y < size; ++y) {
    std::fill(row.begin(), row.end(), 0xff);
    for (int x = 0; x < size; ++x) {
      if (dark_at(m, x / scale - margin, y / scale - margin)) {
        row[static_cast<size_t>(x / 8)] &= static_cast<uint8_t>(~(0x80 >> (x % 8)));
      }
    }
    png_write_row(png, row.data());
  }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

} // namespace fleetkey::qr
