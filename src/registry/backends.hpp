#pragma once
// The backends behind Store::open (store.cpp). open_postgresql is defined in pg_stub.cpp while
// fleetkey is built without PostgreSQL, and by the PostgreSQL backend otherwise.

#include <fleetkey/registry/store.hpp>

#include <memory>
#include <string>

namespace fleetkey::registry {

std::unique_ptr<Store> open_postgresql(const std::string& location, OpenMode mode);

} // namespace fleetkey::registry
