#pragma once
// The JSON and text shapes of registry records, shared by every command that shows them.

#include "context.hpp"

#include <fleetkey/registry/store.hpp>

namespace fleetkey::cmd {

Json to_json(const registry::MasterKeyRecord& r);
Json to_json(const registry::DeviceRecord& r);
Json to_json(const registry::UserRecord& r);
Json to_json(const registry::GrantRecord& r);

// "k=v, k2=v2", or "-" when there are none.
std::string labels_text(const nlohmann::json& labels);

} // namespace fleetkey::cmd
