#pragma once
// The fleet's values as the commands see them: devices, users, grants, master key versions and
// audit events, whatever registry backend holds them (the registry's own row types stay behind
// fleet's API). No secret: keys appear only as fingerprints.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace fleetkey::fleet {

// KEY=VALUE labels of a device or user, sorted by key (as stored and printed).
using Labels = std::map<std::string, std::string>;

struct Device
{
  std::string id;
  std::optional<std::string> model;
  Labels labels;
  uint32_t key_version = 0;
  std::string fingerprint;
  std::string status = "active"; // active or revoked
  int64_t pairing_counter = 0;
  std::string created;
  std::optional<std::string> revoked;
  std::optional<std::string> revoke_reason;
};

struct User
{
  std::string name;
  Labels labels;
  std::string created;
};

// A user's grant of a role on a device, as recorded (its status as stored: active or revoked; see
// grant_status for "expired").
struct GrantInfo
{
  std::string user;
  std::string device;
  std::string role;
  uint64_t epoch = 1;
  std::string status = "active";
  std::string created;
  std::optional<std::string> expires;
  std::optional<std::string> revoked;
  std::optional<std::string> revoke_reason;
};

struct MasterKeyVersion
{
  uint32_t version = 0;
  std::string created;
  std::string fingerprint;
  bool test_key = false;
  std::string status; // current, active or retired
  std::optional<std::string> retired;
};

struct AuditEvent
{
  int64_t id = 0;
  std::string at;
  std::string actor;
  std::string action;
  std::string subject;
  nlohmann::json details; // the event's own JSON object (fleetkey-formats(5), AUDIT)
};

} // namespace fleetkey::fleet
