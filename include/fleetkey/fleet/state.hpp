#pragma once
// Device state documents (fleetkey-state(5)): what a lock that holds only K_dev(D) must know of
// the registry's decisions (the device's status, each user's minimum key epoch, revoked token ids,
// retired master versions, the pairing counter), under a sequence number the lock ratchets and an
// expiry, in COSE_Mac0 under K_rev(D).

#include <fleetkey/fleet/fleet.hpp>
#include <fleetkey/util/bytes.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace fleetkey::fleet {

inline constexpr uint64_t k_state_format_version = 1;
inline constexpr int64_t k_default_state_max_age = 72LL * 3600;
inline constexpr int64_t k_max_state_max_age = 366LL * 24 * 3600;
inline constexpr size_t k_state_uid_size = 8;

struct StateUser
{
  std::string user;
  std::array<uint8_t, k_state_uid_size> uid{}; // uid(D, U) = HKDF-Expand(PRK_dev(D), info("state-user", U), 8)
  uint64_t min_epoch = 0;
};

struct StateDocument
{
  std::string device;
  std::string kid; // "vN/D", N the device's master key version
  uint32_t key_version = 0;
  uint64_t seq = 0;
  int64_t iat = 0;
  int64_t exp = 0;
  bool revoked = false;                 // the device's status
  std::vector<StateUser> users;         // in uid order, one per grant row on the device
  std::vector<util::Bytes> revoked_ids; // cti bytes, sorted, distinct
  std::vector<uint32_t> retired;        // ascending
  uint64_t pairing = 0;
  bool test_key = false;
  util::Bytes encoded; // the COSE_Mac0
};

// Checks --max-age: 1 second to 366 days; throws Error(usage).
void check_state_max_age(int64_t seconds);

// The state document of one registered device as of `now` (Unix seconds), valid for `max_age`.
// Issuing changes nothing in the registry. A device whose master version is retired still gets
// one (MACed with the retired version's keys): it is what tells the lock.
StateDocument make_state(Fleet& fleet, std::string_view device, int64_t now, int64_t max_age);

// One document per registered device, in id order, streaming.
void for_each_state(Fleet& fleet, int64_t now, int64_t max_age, const std::function<void(const StateDocument&)>& fn);

// The file name `device state --all` gives device D's document: D with every byte outside
// A-Z a-z 0-9 _ - . and a leading "." written %XX (upper-case hex), then `suffix`.
std::string state_file_name(std::string_view device, std::string_view suffix);

// `--format c`: a C array named fleetkey_state_document, with a comment naming what it holds.
std::string state_c_array(const StateDocument& doc);

} // namespace fleetkey::fleet
