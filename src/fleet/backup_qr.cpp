// A master key share as a QR code (fleet/backup.hpp): its base32 text in error correction M, as PNG
// or SVG, for `master backup --qr`.
#include <fleetkey/fleet/backup.hpp>
#include <fleetkey/qr/qr.hpp>

#include <sodium.h>

#include <string>
#include <vector>

namespace fleetkey::fleet {

crypto::Secret share_qr(const Share& share, ShareQr format)
{
  const auto b32 = share_base32(share);
  const auto m = qr::encode(crypto::as_text(b32), qr::Ec::M);
  if (format == ShareQr::png) {
    auto png = qr::render_png(m);
    auto out = crypto::Secret::copy_of(png);
    sodium_memzero(png.data(), png.size());
    return out;
  }
  std::string svg = qr::render_svg(m);
  auto out = crypto::Secret::copy_of(std::span(reinterpret_cast<const uint8_t*>(svg.data()), svg.size()));
  sodium_memzero(svg.data(), svg.size());
  return out;
}

} // namespace fleetkey::fleet
