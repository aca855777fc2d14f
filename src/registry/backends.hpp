#pragma once
// The backends behind Store::open (store.cpp). open_postgresql is the PostgreSQL backend's
// (pg_store.cpp).

#include <fleetkey/registry/store.hpp>

#include <memory>
#include <string>

namespace fleetkey::registry {

std::unique_ptr<Store> open_postgresql(const std::string& location, OpenMode mode);

} // namespace fleetkey::registry
