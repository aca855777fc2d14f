#pragma once
// Private to src/fleet: a list of device ids, one a line, as `keys export --from` and a production
// run's `pair --from` read it: every id registered and active, none twice.

#include <fleetkey/core/error.hpp>
#include <fleetkey/registry/store.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace fleetkey::fleet {

// What the commands that read a list differ in.
struct DeviceListRules
{
  bool dash_is_stdin = false;           // "-" reads stdin, named "stdin" in messages
  Exit missing_file = Exit::failure;    // the exit code when the file does not exist
  std::string_view revoked_why;         // appended to `device "ID" is revoked`
  const char* revoked_reason = nullptr; // Error::reason of a revoked device (nullptr: none)
};

// The registered devices `path` lists, in its order. Blank lines are skipped and a final CR is
// dropped; a line over 128 bytes (the longest device id), an id listed twice, an unregistered or a
// revoked device is an error naming FILE:LINE. Each line is read bounded by the longest id.
std::vector<registry::DeviceRecord> read_listed_devices(registry::Store& reg, const std::string& path,
                                                        const DeviceListRules& rules);

} // namespace fleetkey::fleet
