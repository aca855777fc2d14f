#pragma once
// The mint's steps that the verifier, exported token keys and the grant bundle share; defined in
// tokens.cpp.

#include <fleetkey/fleet/tokens.hpp>
#include <fleetkey/registry/store.hpp>

#include <cstdint>
#include <optional>
#include <string_view>

namespace fleetkey::fleet {

// `now` if given (checked by check_now), else the clock.
int64_t now_or_clock(const std::optional<int64_t>& now);

// The MAC key of `kid` for format `f`: a fleet token key, or a device's.
crypto::Secret key_for(Fleet& fleet, const token::Kid& kid, token::Format f);

// A registered, active device whose key the caller may use; throws otherwise.
registry::DeviceRecord usable_device(Fleet& fleet, std::string_view id);

// Throws Error(usage) unless 1 second <= ttl <= 10 years.
void check_ttl(const std::optional<int64_t>& ttl);

// Builds and MACs a token; writes nothing (record_mint does, inside the caller's transaction).
MintedToken make_token(Fleet& fleet, const MintRequest& req);

// The token.mint audit row.
void record_mint(registry::Store& reg, const MintRequest& req, const MintedToken& t);

} // namespace fleetkey::fleet
