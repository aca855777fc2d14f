#pragma once
// The JSON and text shapes of the fleet's values, shared by every command that shows them.

#include "context.hpp"

#include <fleetkey/fleet/types.hpp>

namespace fleetkey::cmd {

Json to_json(const fleet::MasterKeyVersion& r);
Json to_json(const fleet::Device& r);
Json to_json(const fleet::User& r);
Json to_json(const fleet::GrantInfo& r);

// "k=v, k2=v2", or "-" when there are none.
std::string labels_text(const fleet::Labels& labels);

} // namespace fleetkey::cmd
