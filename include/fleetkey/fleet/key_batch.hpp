#pragma once
// `device key --from FILE`: the keys of many registered devices at once, at import speed: one unlock,
// derivation in batches (one agent request a batch), one transaction for the audit trail.

#include <fleetkey/crypto/secret.hpp>
#include <fleetkey/fleet/fleet.hpp>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fleetkey::fleet {

// Reads device ids, one a line (as `pair --from`: LF or CRLF line ends, blank lines skipped), from
// `path` or "-" (stdin), and looks each up. Every id is checked before anything is derived; the first
// bad line throws, naming it ("FILE:LINE: ..."): longer than 128 bytes or listed twice (usage), not
// registered (not_found), revoked (conflict, device_revoked).
std::vector<Device> read_device_list(Fleet& fleet, const std::string& path);

// Derives K_dev (or K_purpose with a purpose) of each device, in order, under the master key version
// each was registered with, checking each against its registered fingerprint, in batches; calls `fn`
// with each device, its key and the key's fingerprint. Records one device.keys.export audit event for the
// batch (subject `source`: the list's name, or "stdin"; details count, ids_sha256 as device import's,
// purpose), committed before it returns.
using DeviceKeyFn =
    std::function<void(const Device& device, const crypto::Secret& key, const std::string& fingerprint)>;
void export_device_keys(Fleet& fleet, std::string_view source, const std::vector<Device>& devices,
                        const std::optional<std::string>& purpose, const DeviceKeyFn& fn);

} // namespace fleetkey::fleet
