#pragma once
// What a device state document (fleetkey-state(5)) reads from the registry, and its sequence
// numbers: seq(D) = max(devices.state_seq, state.global_seq), both set from one counter that only
// goes up (schema/0004_device_state.sql).

#include <fleetkey/registry/registry.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace fleetkey::registry {

// A read transaction: every query until it ends sees one snapshot of the registry, so that a
// document's seq and its contents agree although other processes write meanwhile (WAL readers do
// not block writers).
class ReadSnapshot
{
public:
  explicit ReadSnapshot(Db& db);
  ReadSnapshot(const ReadSnapshot&) = delete;
  ReadSnapshot& operator=(const ReadSnapshot&) = delete;
  ~ReadSnapshot();

private:
  Db& m_db;
};

// Raises the state sequence number of `device`; call inside the transaction of the change the
// device's lock must learn (a grant added, replaced or revoked, the device revoked, a token for it
// revoked, its pairing counter raised).
void raise_device_state(Registry& reg, std::string_view device);
// Raises every device's state sequence number at once (a master version retired, a token revoked
// with no known device): one row is written, whatever the number of devices.
void raise_global_state(Registry& reg);

// seq(D) for a registered device (>= 1).
uint64_t device_state_seq(Registry& reg, std::string_view device);

// The ids of revoked tokens for `device`, or revoked with no known device, whose exp is unknown or
// later than `at` (Unix seconds); in no particular order.
void for_each_live_revoked_token(Registry& reg, std::string_view device, int64_t at,
                                 const std::function<void(std::string_view token_id)>& fn);

} // namespace fleetkey::registry
