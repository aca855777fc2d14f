#pragma once
// The agent: a process that holds the master key ring, unlocked once, and computes derivations
// for the commands of the same user over a UNIX socket (fleetkey-formats(5), AGENT PROTOCOL).
// Commands find it through $FLEETKEY_AGENT.

#include <fleetkey/fleet/fleet.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace fleetkey::fleet::agent {

// The key ring the agent at $FLEETKEY_AGENT holds, its keys left there; std::nullopt when the
// variable is unset or empty, or (with a warning) when no agent answers at that path.
std::optional<crypto::Keyring> connect_ring(const Fleet::Warn& warn);

struct Started
{
  std::string socket;
  int pid = 0;
  std::optional<int64_t> expires; // Unix seconds
};

// Reads the key file (asking for its passphrase), makes a private directory with the socket,
// and forks the agent, which serves until `lifetime` seconds have passed, SIGTERM (or SIGINT,
// SIGHUP), `agent stop`, or a change of the key file.
Started start(Fleet& fleet, std::optional<int64_t> lifetime);

struct Status
{
  std::string socket;
  int pid = 0;
  std::vector<uint32_t> versions;
  uint32_t current = 0;
  bool test_key = false;
  std::optional<int64_t> expires;
};

Status status(); // throws Error(key) when there is no agent
Status stop();   // the agent's status, then it exits

// How a shell sets and clears the variable (sh syntax, for eval).
std::string shell_export(const Started& s);

} // namespace fleetkey::fleet::agent
