#pragma once
// Registering, listing, revoking devices and deriving their keys.

#include <fleetkey/fleet/fleet.hpp>

#include <optional>
#include <string>

namespace fleetkey::fleet {

struct DeviceSpec
{
  std::string id;
  std::optional<std::string> model;
  nlohmann::json labels = nlohmann::json::object();
};

enum class IfMissing { no, yes };

struct AddedDevice
{
  registry::DeviceRecord device;
  bool added = false; // false when --if-missing found it already registered
};

AddedDevice add_device(Fleet& fleet, const DeviceSpec& spec, IfMissing if_missing);
registry::DeviceRecord show_device(Fleet& fleet, std::string_view id); // throws Error(not_found)
void list_devices(Fleet& fleet, std::string_view status, const std::function<void(const registry::DeviceRecord&)>& fn);
registry::DeviceRecord revoke_device(Fleet& fleet, std::string_view id, std::string_view reason);

// K_dev(D) under the master key version the device was registered with.
crypto::Secret derive_device_key(Fleet& fleet, const registry::DeviceRecord& device);

struct DeviceKey
{
  registry::DeviceRecord device;
  crypto::Secret key;      // K_dev(D), or K_purpose(D, P) with a purpose
  std::string fingerprint; // of `key`
};

// For `device key`: refuses a revoked device; records the export in the audit trail.
DeviceKey export_device_key(Fleet& fleet, std::string_view id, const std::optional<std::string>& purpose);

} // namespace fleetkey::fleet
