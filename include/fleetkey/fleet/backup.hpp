#pragma once
// The paper backup of the master key file's secret: Shamir shares of the key ring (every version),
// their text and QR forms, and the restore that writes a new key file from enough of them. The
// share format is specified in fleetkey-formats(5), MASTER KEY SHARES.

#include <fleetkey/fleet/fleet.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fleetkey::fleet {

struct Share
{
  std::array<uint8_t, 8> backup_id{};
  unsigned threshold = 0; // K: how many shares restore the key ring
  unsigned shares = 0;    // N: how many shares the backup made
  unsigned index = 0;     // x: 1..N
  crypto::Secret y;       // as long as the key ring
};

std::string backup_id_hex(const Share& share);

// The share as bytes (format 1 with its checksum), as base32 (RFC 4648, upper case, no padding:
// the QR code's text), and as the text file `master backup` prints: a comment line, then the
// base32 in groups of 4 characters, 8 groups a line.
crypto::Secret share_bytes(const Share& share);
crypto::Secret share_base32(const Share& share);
crypto::Secret share_text(const Share& share);
// The base32 as a QR code (error correction M) for `master backup --qr`: the image file's bytes.
enum class ShareQr { png, svg };
crypto::Secret share_qr(const Share& share, ShareQr format);

// Reads a share from text in any of those forms: lines starting with '#' are skipped, spaces,
// tabs, '-' and line ends ignored, letters of either case. `name` names it in errors (a file
// name, "share 2"). Throws Error(key) for a share that does not decode or whose checksum fails.
Share parse_share(std::string_view text, std::string_view name);
// A share file as `master backup -o` wrote it, read as a private file (Error(key) when group or
// others can read it), named by its path in errors.
Share read_share_file(const std::string& path);
// A share typed at the terminal after `prompt`, not echoed; `name` names it in errors.
Share prompt_share(const std::string& prompt, std::string_view name);

struct Backup
{
  std::vector<Share> shares;
  size_t versions = 0; // master key versions in the key ring
};

// Splits the key ring (asking for the passphrase as every command does) into `shares` shares,
// any `threshold` of which restore it. Writes the master.backup audit event; `write` runs inside
// its transaction, before the commit, so that a failure to write the shares records nothing.
Backup backup_master_key(Fleet& fleet, unsigned shares, unsigned threshold,
                         const std::function<void(const Backup&)>& write);

struct RestoreOptions
{
  bool no_passphrase = false;
  std::string kdf_profile = "moderate";
};

struct Restored
{
  std::string backup_id; // hex
  size_t versions = 0;
  uint32_t current_version = 0;
  std::string fingerprint; // of the current version
  bool test_key = false;
  bool registry_checked = false; // a registry exists and the ring belongs to it
};

// Rebuilds the key ring from `shares` (each with the name used in errors) and writes it as a new
// key file at the fleet's master key path, encrypted under a new passphrase (asked twice) unless
// options.no_passphrase. Refuses an existing key file, too few shares, shares from different
// backups, a share given twice. When the registry exists, the ring must belong to it and the
// master.restore event is written.
Restored restore_master_key(Fleet& fleet, const std::vector<std::pair<std::string, Share>>& shares,
                            const RestoreOptions& options);

} // namespace fleetkey::fleet
