#include <fleetkey/fleet/grant.hpp>
#include <fleetkey/util/error.hpp>
#include <fleetkey/util/file.hpp>

#include <sodium.h>

namespace fleetkey::fleet {

namespace {

crypto::Secret guarded_copy(std::vector<uint8_t>& bytes)
{
  crypto::Secret out(bytes.size());
  std::copy(bytes.begin(), bytes.end(), out.data());
  sodium_memzero(bytes.data(), bytes.size());
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
          auto image = render_bundle_qr(*json, *delivery.qr, delivery.colors);
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
