#pragma once
// Registering, listing, revoking devices and deriving their keys.

#include <fleetkey/fleet/fleet.hpp>
#include <fleetkey/fleet/types.hpp>

#include <optional>
#include <string>
#include <vector>

namespace fleetkey::fleet {

struct DeviceSpec
{
  std::string id;
  std::optional<std::string> model;
  Labels labels;
};

enum class IfMissing { no, yes };

struct AddedDevice
{
  Device device;
  bool added = false; // false when --if-missing found it already registered
};

AddedDevice add_device(Fleet& fleet, const DeviceSpec& spec, IfMissing if_missing);
Device show_device(Fleet& fleet, std::string_view id); // throws Error(not_found)
void list_devices(Fleet& fleet, std::string_view status, const std::function<void(const Device&)>& fn);
Device revoke_device(Fleet& fleet, std::string_view id, std::string_view reason);

// `device show`: the device, every grant on it (who can open it, and who could, in user order),
// and its state sequence number (fleetkey-state(5)), read in one snapshot.
struct DeviceDetails
{
  Device device;
  std::vector<GrantInfo> grants;
  uint64_t state_seq = 0;
};
DeviceDetails device_details(Fleet& fleet, std::string_view id); // throws Error(not_found)

struct DeviceKey
{
  Device device;
  crypto::Secret key;      // K_dev(D), or K_purpose(D, P) with a purpose
  std::string fingerprint; // of `key`
};

// For `device key`: refuses a revoked device; records the export in the audit trail.
DeviceKey export_device_key(Fleet& fleet, std::string_view id, const std::optional<std::string>& purpose);

} // namespace fleetkey::fleet
