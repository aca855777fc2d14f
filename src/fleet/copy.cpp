#include <fleetkey/fleet/copy.hpp>
#include <fleetkey/registry/store.hpp>

namespace fleetkey::fleet {

RegistryCopy copy_registry(Fleet& fleet, const std::string& to)
{
  auto s = registry::Store::copy(fleet.paths().registry, to);
  return {std::move(s.from),
          std::move(s.to),
          std::move(s.from_backend),
          std::move(s.to_backend),
          s.master_keys,
          s.devices,
          s.users,
          s.grants,
          s.revocations,
          s.audit};
}

} // namespace fleetkey::fleet
