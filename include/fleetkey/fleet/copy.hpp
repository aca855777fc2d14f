#pragma once
// fleetkey registry copy: the registry, audit trail included, into a new registry on either backend.

#include <fleetkey/fleet/fleet.hpp>

#include <cstdint>
#include <string>

namespace fleetkey::fleet {

// What a copy copied: locations as given (a location with a password is refused), backends
// ("sqlite" or "postgresql") and row counts (audit: not counting the registry.copy row appended).
struct RegistryCopy
{
  std::string from;
  std::string to;
  std::string from_backend;
  std::string to_backend;
  uint64_t master_keys = 0;
  uint64_t devices = 0;
  uint64_t users = 0;
  uint64_t grants = 0;
  uint64_t revocations = 0;
  uint64_t audit = 0;
};

// Copies the fleet's registry to `to`, all or nothing (fleetkey-postgresql(7), MOVING A REGISTRY).
RegistryCopy copy_registry(Fleet& fleet, const std::string& to);

} // namespace fleetkey::fleet
