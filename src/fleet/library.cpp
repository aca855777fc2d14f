// The library's start-up (fleet/fleet.hpp), and fleet's names for the options of the layers below
// it (fleet/qr.hpp), so that cmd needs nothing but fleet/.
#include <fleetkey/crypto/secret.hpp>
#include <fleetkey/fleet/fleet.hpp>
#include <fleetkey/fleet/qr.hpp>

namespace fleetkey::fleet {

void init_library()
{
  crypto::init();
}

QrEc parse_qr_ec(std::string_view name)
{
  return qr::parse_ec(name);
}

} // namespace fleetkey::fleet
