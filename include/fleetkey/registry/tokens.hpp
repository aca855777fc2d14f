#pragma once
// What token verification reads from the registry, and token revocations.

#include <fleetkey/registry/registry.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace fleetkey::registry {

std::optional<TokenRevocation> token_revocation(Registry& reg, std::string_view token_id);
void insert_token_revocation(Registry& reg, const TokenRevocation& r);

// Streams every revoked token id, for loading a verifier once per batch.
void for_each_revoked_token(Registry& reg, const std::function<void(std::string_view token_id)>& fn);

// Streams (user, device, role, epoch, status, expires) of every grant; expires is "" for none.
void for_each_grant_state(
    Registry& reg, const std::function<void(std::string_view user, std::string_view device, std::string_view role,
                                            uint64_t epoch, std::string_view status, std::string_view expires)>& fn);

// Streams every user name, for loading a verifier once per batch.
void for_each_user_name(Registry& reg, const std::function<void(std::string_view name)>& fn);

} // namespace fleetkey::registry
