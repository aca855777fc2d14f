// Master key shares in and out of the process (fleet/backup.hpp): as a QR code (its base32 text in
// error correction M, as PNG or SVG) for `master backup --qr`, from a share file or typed at the
// terminal for `master restore`.
#include <fleetkey/crypto/keyfile.hpp>
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

Share read_share_file(const std::string& path)
{
  const auto text = crypto::read_private_file(path, "share file");
  return parse_share(crypto::as_text(text), path);
}

Share prompt_share(const std::string& prompt, std::string_view name)
{
  const auto line = crypto::prompt_passphrase(prompt.c_str());
  return parse_share(crypto::as_text(line), name);
}

} // namespace fleetkey::fleet
