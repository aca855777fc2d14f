#include <fleetkey/core/error.hpp>
#include <fleetkey/qr/qr.hpp>

#include <fmt/format.h>
#include <png.h>
#include <qrencode.h>

#include <cerrno>
#include <csetjmp>
#include <cstring>
#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <memory>
#include <string>
#include <zlib.h>

namespace fleetkey::qr {

namespace {

// libqrencode's two entry points, and where it leaves errno. Debian ships libqrencode only as a
// shared library, and every command pays at start-up for each library it links, while only the QR
// commands use it. So the release build (FLEETKEY_STATIC_DEPS, a static PIE) loads it the first time
// a code is drawn.
//
// In a static fleetkey the library brings its own copy of the shared libc, as glibc's dlopen from
// a static program does: that copy has its own malloc (libqrencode frees what it allocates, with
// QRcode_free) and its own errno, read through its __errno_location. glibc supports this only when
// the shared libc is the version fleetkey was linked with, which is checked before first use. It
// also works only for libraries without dynamic TLS, which libqrencode is (libnss_systemd, for one,
// is not: registry/store.cpp keeps NSS out of the static build).
struct Qrencode
{
  decltype(&QRcode_encodeString) encode_string = nullptr;
  decltype(&QRcode_free) free = nullptr;
  int* (*errno_location)() = nullptr;
};

#ifdef FLEETKEY_QRENCODE_SONAME
template<typename F>
F symbol(void* lib, const char* name)
{
  void* p = ::dlsym(lib, name);
  if (p == nullptr) {
    throw Error(Exit::failure, "{} lacks {}", FLEETKEY_QRENCODE_SONAME, name);
  }
  return reinterpret_cast<F>(p);
}

const Qrencode& qrencode()
{
  static const Qrencode api = [] {
    void* lib = ::dlopen(FLEETKEY_QRENCODE_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      throw Error(Exit::failure, "cannot load {} (install the libqrencode4 package): {}", FLEETKEY_QRENCODE_SONAME,
                  ::dlerror());
    }
    // In a dynamically linked fleetkey both are the one libc's, and always agree.
    const std::string_view loaded = symbol<const char* (*)()>(lib, "gnu_get_libc_version")();
    if (loaded != ::gnu_get_libc_version()) {
      throw Error(Exit::failure,
                  "cannot use {}: fleetkey was linked statically with glibc {} and this system has glibc {} "
                  "(rebuild fleetkey here)",
                  FLEETKEY_QRENCODE_SONAME, ::gnu_get_libc_version(), loaded);
    }
    Qrencode q;
    q.encode_string = symbol<decltype(&QRcode_encodeString)>(lib, "QRcode_encodeString");
    q.free = symbol<decltype(&QRcode_free)>(lib, "QRcode_free");
    q.errno_location = symbol<int* (*)()>(lib, "__errno_location");
    return q; // the library stays loaded until exit
  }();
  return api;
}
#else
const Qrencode& qrencode()
{
  static const Qrencode api{&QRcode_encodeString, &QRcode_free, &::__errno_location};
  return api;
}
#endif

struct QrFree
{
  void operator()(QRcode* q) const noexcept { qrencode().free(q); }
};

QRecLevel level(Ec ec)
{
  switch (ec) {
  case Ec::L:
    return QR_ECLEVEL_L;
  case Ec::M:
    return QR_ECLEVEL_M;
  case Ec::Q:
    return QR_ECLEVEL_Q;
  case Ec::H:
    return QR_ECLEVEL_H;
  }
  return QR_ECLEVEL_M;
}

void check_margin(int margin, int scale)
{
  if (margin < 0 || margin > 64) {
    throw Error(Exit::usage, "QR margin {} is out of range (0-64 modules)", margin);
  }
  if (scale < 1 || scale > 64) {
    throw Error(Exit::usage, "QR scale {} is out of range (1-64 pixels a module)", scale);
  }
}

// Outside the matrix is quiet zone (light).
bool dark_at(const Matrix& m, int margin, int x, int y)
{
  x -= margin;
  y -= margin;
  return x >= 0 && y >= 0 && x < m.size() && y < m.size() && m.dark(x, y);
}

struct PngSink
{
  std::vector<uint8_t>* out;
};

void png_write(png_structp png, png_bytep data, png_size_t length)
{
  auto* sink = static_cast<PngSink*>(png_get_io_ptr(png));
  sink->out->insert(sink->out->end(), data, data + length);
}

void png_flush(png_structp) {}

// libpng reports errors by longjmp; this function owns no object with a destructor between
// setjmp and the end of the write, so jumping back is safe.
bool write_png(const Matrix& m, int scale, int margin, const std::vector<uint8_t>& rows, std::vector<uint8_t>& out)
{
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  if (png == nullptr) {
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (info == nullptr || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  PngSink sink{&out};
  const auto side = static_cast<png_uint_32>((m.size() + 2 * margin) * scale);
  const size_t stride = (side + 7) / 8;
  png_set_write_fn(png, &sink, png_write, png_flush);
  // Labels are printed by the thousand. The Up filter turns each of a module row's `scale`
  // repeated pixel rows after the first into zeros, and run-length coding (Z_RLE) packs those
  // runs: fast, and small. Small zlib tables also stay below malloc's mmap threshold.
  png_set_compression_level(png, 1);
  png_set_compression_strategy(png, Z_RLE);
  png_set_compression_mem_level(png, 5);
  png_set_compression_window_bits(png, 13);
  png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTER_UP);
  png_set_IHDR(png, info, side, side, 1, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (png_uint_32 y = 0; y < side; ++y) {
    const size_t module_row = y / static_cast<png_uint_32>(scale);
    png_write_row(png, rows.data() + module_row * stride);
  }
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  return true;
}

} // namespace

Matrix encode(std::string_view payload, Ec ec)
{
  if (payload.empty()) {
    throw Error(Exit::usage, "cannot encode an empty QR payload");
  }
  if (payload.find('\0') != std::string_view::npos) {
    throw Error(Exit::usage, "cannot encode a QR payload with a NUL byte");
  }
  const std::string text(payload);
  // Case-sensitive, mode chosen per segment (numeric, alphanumeric, 8-bit): the smallest version.
  const Qrencode& lib = qrencode();
  int& lib_errno = *lib.errno_location();
  lib_errno = 0;
  std::unique_ptr<QRcode, QrFree> code(lib.encode_string(text.c_str(), 0, level(ec), QR_MODE_8, 1));
  if (!code) {
    const int err = lib_errno;
    if (err == ERANGE) {
      throw Error(Exit::usage, "QR payload of {} bytes is too long for a QR code", payload.size());
    }
    throw Error(Exit::failure, "cannot encode QR code: {}", std::strerror(err));
  }
  const int size = code->width;
  std::vector<bool> modules(static_cast<size_t>(size * size));
  for (size_t i = 0; i < modules.size(); ++i) {
    modules[i] = (code->data[i] & 1) != 0;
  }
  return Matrix(size, std::move(modules), code->version);
}

std::string render_utf8(const Matrix& m, int margin, Colors colors)
{
  check_margin(margin, 1);
  // Light modules are ink and dark modules are blank: on a dark terminal the code is black on
  // white as printed; one character holds two rows (upper and lower half block).
  // Indexed by (upper light) | (lower light) << 1.
  static constexpr std::string_view k_glyph[4] = {" ", "\u2580", "\u2584", "\u2588"};
  const int side = m.size() + 2 * margin;
  std::string out;
  out.reserve(static_cast<size_t>((side + 1) / 2 * (side * 3 + 1)));
  // With explicit colours the ink is black, so the glyphs draw the dark modules instead.
  const bool ink_is_dark = colors == Colors::black_on_white;
  for (int y = 0; y < side; y += 2) {
    if (ink_is_dark) {
      out += "\x1b[30;107m";
    }
    for (int x = 0; x < side; ++x) {
      const bool upper = dark_at(m, margin, x, y) == ink_is_dark;
      // Past the last row (odd height) nothing is drawn.
      const bool lower = y + 1 < side && dark_at(m, margin, x, y + 1) == ink_is_dark;
      out += k_glyph[(upper ? 1 : 0) | (lower ? 2 : 0)];
    }
    out += ink_is_dark ? "\x1b[0m\n" : "\n";
  }
  return out;
}

std::string render_ansi(const Matrix& m, int margin)
{
  check_margin(margin, 1);
  // Upper half block with explicit colours: foreground = upper module, background = lower
  // module, so the code is black on white whatever the terminal's own colours are.
  const int side = m.size() + 2 * margin;
  std::string out;
  for (int y = 0; y < side; y += 2) {
    int fg = -1;
    int bg = -1;
    for (int x = 0; x < side; ++x) {
      const int want_fg = dark_at(m, margin, x, y) ? 30 : 97;
      const int want_bg = y + 1 < side ? (dark_at(m, margin, x, y + 1) ? 40 : 107) : 49;
      if (want_fg != fg || want_bg != bg) {
        out += fmt::format("\x1b[{};{}m", want_fg, want_bg);
        fg = want_fg;
        bg = want_bg;
      }
      out += "\u2580";
    }
    out += "\x1b[0m\n";
  }
  return out;
}

std::string render_svg(const Matrix& m, int scale, int margin)
{
  check_margin(margin, scale);
  const int side = m.size() + 2 * margin;
  // Coordinates are in modules (viewBox); one horizontal run of dark modules is one subpath.
  std::string path;
  for (int y = 0; y < m.size(); ++y) {
    for (int x = 0; x < m.size();) {
      if (!m.dark(x, y)) {
        ++x;
        continue;
      }
      int run = 1;
      while (x + run < m.size() && m.dark(x + run, y)) {
        ++run;
      }
      path += fmt::format("M{} {}h{}v1h-{}z", x + margin, y + margin, run, run);
      x += run;
    }
  }
  const int px = side * scale;
  return fmt::format("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                     "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{0}\" viewBox=\"0 0 {1} {1}\" "
                     "shape-rendering=\"crispEdges\">\n"
                     "<rect width=\"{1}\" height=\"{1}\" fill=\"#fff\"/>\n"
                     "<path fill=\"#000\" d=\"{2}\"/>\n"
                     "</svg>\n",
                     px, side, path);
}

std::vector<uint8_t> render_png(const Matrix& m, int scale, int margin)
{
  check_margin(margin, scale);
  // One packed 1-bit row per module row (0 = black, as PNG greyscale says), repeated `scale` times.
  const int side_px = (m.size() + 2 * margin) * scale;
  const size_t stride = static_cast<size_t>(side_px + 7) / 8;
  const int side = m.size() + 2 * margin;
  std::vector<uint8_t> rows(stride * static_cast<size_t>(side), 0xff);
  for (int y = 0; y < m.size(); ++y) {
    uint8_t* row = rows.data() + static_cast<size_t>(y + margin) * stride;
    for (int x = 0; x < m.size(); ++x) {
      if (!m.dark(x, y)) {
        continue;
      }
      const int x0 = (x + margin) * scale;
      for (int p = x0; p < x0 + scale; ++p) {
        row[p / 8] = static_cast<uint8_t>(row[p / 8] & ~(0x80u >> (p % 8)));
      }
    }
  }
  std::vector<uint8_t> out;
  out.reserve(256 + stride * static_cast<size_t>(side_px) / 8);
  if (!write_png(m, scale, margin, rows, out)) {
    throw Error(Exit::failure, "cannot write PNG: libpng failed");
  }
  return out;
}

Ec parse_ec(std::string_view name)
{
  if (name == "L" || name == "l")
    return Ec::L;
  if (name == "M" || name == "m")
    return Ec::M;
  if (name == "Q" || name == "q")
    return Ec::Q;
  if (name == "H" || name == "h")
    return Ec::H;
  throw Error(Exit::usage, "unknown QR error correction level \"{}\" (L, M, Q or H)", name);
}

} // namespace fleetkey::qr
