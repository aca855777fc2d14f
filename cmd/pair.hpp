#pragma once
// What `pair` (cmd/pair.cpp) and `pair decode` (cmd/pair_decode.cpp) share.

#include "commands.hpp"

#include <fleetkey/fleet/pairing.hpp>

namespace fleetkey::cmd {

// A Matter payload's fields: as JSON members (the passcode as 8 digits), and as the text lines of
// `pair` and `pair decode`.
Json matter_json(const fleet::MatterPayload& p);
void print_matter(Context& ctx, const fleet::MatterPayload& p);

// The `decode` subcommand of `pair`.
CLI::App* add_pair_decode(CLI::App& pair, Context& ctx);

} // namespace fleetkey::cmd
