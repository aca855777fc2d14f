#pragma once
// QR codes as fleet's API names them (the labels of `pair`, the bundle of `user grant`, the shares
// of `master backup`): cmd chooses the options, fleet renders.

#include <fleetkey/qr/qr.hpp>

#include <string_view>

namespace fleetkey::fleet {

using QrEc = qr::Ec;         // error correction level
using QrColors = qr::Colors; // of a terminal rendering

// "L", "M", "Q" or "H" (either case); throws Error(usage).
QrEc parse_qr_ec(std::string_view name);

} // namespace fleetkey::fleet
