// open_postgresql for a fleetkey built without PostgreSQL support: every postgresql:// URI or
// libpq service is refused as a usage error. The PostgreSQL backend replaces this file.

#include "registry/backends.hpp"

#include <fleetkey/util/error.hpp>

namespace fleetkey::registry {

std::unique_ptr<Store> open_postgresql(const std::string& /*location*/, OpenMode /*mode*/)
{
  throw Error(Exit::usage, "this fleetkey was built without PostgreSQL support");
}

} // namespace fleetkey::registry
