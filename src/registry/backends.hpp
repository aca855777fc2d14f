#pragma once
// The backends behind Store::open (store.cpp), and what both backends share. open_postgresql is the
// PostgreSQL backend's (pg_store.cpp).

#include <fleetkey/registry/store.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace fleetkey::registry {

std::unique_ptr<Store> open_postgresql(const std::string& location, OpenMode mode);

// A bulk import's check, inside its write transaction, that `key_version` is still the registry's
// current master key version (a rotation may have finished meanwhile): exit 5 if not.
void require_current_master_key(Store& store, uint32_t key_version);

} // namespace fleetkey::registry
