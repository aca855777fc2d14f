#include <fleetkey/registry/pairing.hpp>
#include <fleetkey/registry/state.hpp>
#include <fleetkey/util/error.hpp>

namespace fleetkey::registry {

int64_t bump_pairing_counter(Registry& reg, std::string_view device_id)
{
  Stmt up = reg.db().prepare("UPDATE devices SET pairing_counter = pairing_counter + 1 WHERE id = ?");
  up.bind(1, device_id);
  up.run();
  if (reg.db().changes() != 1) {
    throw Error(Exit::not_found, "device \"{}\" is not registered", device_id);
  }
  raise_device_state(reg, device_id); // the lock learns the new counter (fleetkey-state(5))
  Stmt st = reg.db().prepare("SELECT pairing_counter FROM devices WHERE id = ?");
  st.bind(1, device_id);
  if (!st.step()) {
    throw Error(Exit::not_found, "device \"{}\" is not registered", device_id);
  }
  return st.integer(0);
}

} // namespace fleetkey::registry
