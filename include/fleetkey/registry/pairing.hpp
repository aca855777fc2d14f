#pragma once
// The pairing counter n of PIN(D, n): the registry stores the counter, never a PIN.

#include <fleetkey/registry/registry.hpp>

#include <cstdint>
#include <string_view>

namespace fleetkey::registry {

// Adds one to the device's pairing counter and returns the new value; call inside the
// transaction that also writes the audit event. Throws Error(not_found) for an unknown device.
int64_t bump_pairing_counter(Registry& reg, std::string_view device_id);

} // namespace fleetkey::registry
