#pragma once
// Creating the fleet and managing master key versions.

#include <fleetkey/fleet/fleet.hpp>
#include <fleetkey/fleet/types.hpp>

#include <optional>
#include <string>

namespace fleetkey::fleet {

struct InitOptions
{
  bool no_passphrase = false;
  std::optional<std::string> test_seed_hex; // reproducible fixtures only
  std::string kdf_profile = "moderate";
  bool force = false; // replace an existing registry and key file
  // An RFC 7512 URI: the master key goes into this PKCS#11 token (fleet/hsm.hpp) and the key file
  // becomes a reference to it.
  std::optional<std::string> pkcs11_uri;
};

// Creates the home (0700), the registry and master key version 1.
// Whether the home is initialised: its master key file exists, and so does the registry (an SQLite
// file; on PostgreSQL, a fleetkey registry holding master key versions). init --if-missing.
bool initialised(Fleet& fleet);

MasterKeyVersion init(Fleet& fleet, const InitOptions& options);

std::vector<MasterKeyVersion> list_master_keys(Fleet& fleet);

// Adds version v+1 to the key file and the registry and makes it current.
MasterKeyVersion rotate_master_key(Fleet& fleet);

// Marks a non-current version retired: its devices' keys and its tokens stop being served.
MasterKeyVersion retire_master_key(Fleet& fleet, uint32_t version);

struct PasswdOptions
{
  bool no_passphrase = false;                     // write the key file unencrypted
  std::optional<std::string> new_passphrase_file; // else the terminal, asked twice
  std::optional<std::string> kdf_profile;         // else keep the current parameters
};

// Re-encrypts the key file under a new passphrase (new salt and nonce).
void change_passphrase(Fleet& fleet, const PasswdOptions& options);

struct HsmImport
{
  std::string uri; // canonical, with the object label prefix chosen
  std::string token;
  std::vector<uint32_t> versions;
};

// Imports PRK[v] of every version in the key file into the PKCS#11 token `uri` names, then replaces the
// key file by a reference to the token (audit action master.import_to_hsm).
HsmImport import_to_hsm(Fleet& fleet, const std::string& uri);

} // namespace fleetkey::fleet
