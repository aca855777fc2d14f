#include <fleetkey/core/error.hpp>
#include <fleetkey/fleet/grant.hpp>
#include <fleetkey/qr/qr.hpp>
#include <fleetkey/util/file.hpp>

#include <fmt/format.h>
#include <sodium.h>

#include <optional>
#include <string>
#include <string_view>

namespace fleetkey::fleet {

namespace {

crypto::Secret guarded_copy(std::vector<uint8_t>& bytes)
{
  crypto::Secret out(bytes.size());
  std::copy(bytes.begin(), bytes.end(), out.data());
  sodium_memzero(bytes.data(), bytes.size());
  return out;
}

// The bundle as a terminal QR code fitted to `columns` (GrantDelivery::fit_columns).
std::vector<uint8_t> fitted_utf8_qr(const Fleet& fleet, const crypto::Secret& bundle, qr::Colors colors, int columns)
{
  const std::string_view payload(reinterpret_cast<const char*>(bundle.data()), bundle.size());
  struct Fit
  {
    qr::Ec ec;
    int margin;
  };
  std::optional<qr::Matrix> m;
  std::optional<qr::Ec> encoded;
  int margin = 2;
  for (const Fit fit : {Fit{qr::Ec::M, 2}, Fit{qr::Ec::L, 2}, Fit{qr::Ec::L, 1}}) {
    if (encoded != fit.ec) {
      m = qr::encode(payload, fit.ec);
      encoded = fit.ec;
    }
    margin = fit.margin;
    if (m->size() + 2 * margin <= columns) {
      break;
    }
  }
  const int width = m->size() + 2 * margin;
  if (width > columns) {
    fleet.warn(fmt::format("the QR code is {} columns wide and the terminal {}: it wraps and cannot be scanned (widen "
                           "the terminal, or use --qr png -o FILE)",
                           width, columns));
  }
  std::string text = qr::render_utf8(*m, margin, colors);
  std::vector<uint8_t> out(text.begin(), text.end());
  sodium_memzero(text.data(), text.size());
  return out;
}

} // namespace

DeliveredGrant grant_and_deliver(Fleet& fleet, std::string_view user, std::string_view device, std::string_view role,
                                 std::optional<int64_t> ttl_seconds, KeepEpoch keep, std::optional<int64_t> now,
                                 const GrantDelivery& delivery)
{
  if (delivery.output && util::exists(*delivery.output)) {
    throw Error(Exit::conflict, "{} already exists", *delivery.output).with_reason("file_exists");
  }
  std::optional<util::AtomicFile> file;
  if (delivery.output) {
    file.emplace(*delivery.output, util::Overwrite::no);
  }
  std::optional<crypto::Secret> json;
  std::optional<crypto::Secret> qr;
  auto bundle = grant_with_token(
      fleet, user, device, role, ttl_seconds,
      [&](const GrantBundle& made) {
        json = bundle_json(made);
        if (delivery.qr) {
          auto image = *delivery.qr == QrMode::utf8 && delivery.fit_columns > 0
                           ? fitted_utf8_qr(fleet, *json, delivery.colors, delivery.fit_columns)
                           : render_bundle_qr(*json, *delivery.qr, delivery.colors);
          qr = guarded_copy(image);
        }
        if (file) {
          if (qr) {
            file->write(qr->span());
          } else {
            file->write(json->span());
            file->write(std::string_view("\n"));
          }
        }
      },
      keep, now);
  if (file) {
    file->commit();
    qr.reset(); // delivered: the file holds it
  }
  return {std::move(bundle), std::move(*json), std::move(qr)};
}

} // namespace fleetkey::fleet
