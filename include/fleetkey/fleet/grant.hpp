#pragma once
// `user grant` end to end: the grant, its token, the bundle for the user's phone (JSON or a QR
// code), and the file it goes to, in the order that keeps a failure from changing anything.

#include <fleetkey/crypto/secret.hpp>
#include <fleetkey/fleet/tokens.hpp>
#include <fleetkey/fleet/users.hpp>

#include <optional>
#include <string>

namespace fleetkey::fleet {

struct GrantDelivery
{
  // -o FILE: the bundle (or its QR code) is written there, and the file named only once the grant
  // is committed. Without it, the caller prints the bundle and commits after its output
  // (Fleet::hold_commits, before grant_and_deliver).
  std::optional<std::string> output;
  std::optional<QrMode> qr;
  qr::Colors colors = qr::Colors::none; // for a QR code on a terminal
  // --qr utf8 on a terminal this many columns wide (0: not fitted): half blocks, error correction M
  // with a quiet zone of 2 modules if that fits, else L, else L with a quiet zone of 1; else that
  // last one with a warning that it is wider than the terminal.
  int fit_columns = 0;
};

struct DeliveredGrant
{
  GrantBundle bundle;
  crypto::Secret json;              // bundle_json(bundle)
  std::optional<crypto::Secret> qr; // the QR rendering, unless it went to the file
};

// Grants NAME ROLE on DEVICE (grant_with_token) and delivers the bundle as `delivery` says.
// Refuses an existing output file (exit 4, reason file_exists) before anything is recorded; the
// file exists unnamed, or under a temporary name, while the grant's transaction fills it, so that a
// file that cannot be created or written leaves the registry unchanged. Should naming it fail after
// the commit (the name taken meanwhile, fsync), the command fails with the grant recorded and no
// file: the key was never written anywhere, and a new `user grant` replaces it (bumping the epoch).
DeliveredGrant grant_and_deliver(Fleet& fleet, std::string_view user, std::string_view device, std::string_view role,
                                 std::optional<int64_t> ttl_seconds, KeepEpoch keep, std::optional<int64_t> now,
                                 const GrantDelivery& delivery);

} // namespace fleetkey::fleet
