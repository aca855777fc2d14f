#pragma once
// The files of a production run (pairing_files.cpp): labels written whole and 0600, the manifest and
// Matter's verifier files.

#include <fleetkey/crypto/secret.hpp>
#include <fleetkey/fleet/pairing.hpp>
#include <fleetkey/registry/store.hpp>
#include <fleetkey/util/bytes.hpp>
#include <fleetkey/util/file.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fleetkey::fleet {

// One device's label and its manifest row, filled by a worker.
struct LabelRow
{
  std::string code;
  std::string manual;
  std::string payload;
  std::string file;
  uint16_t discriminator = 0; // Matter
  util::Bytes salt;           // Matter
  bool kept = false;          // --resume: the label was there already
};

// A CSV field: quoted when it holds a comma, a quote, a line break or edge spaces.
std::string csv_field(std::string_view s);

// Whether `path` is a regular file with one name that holds exactly `data` (pair --resume).
bool holds(const std::string& path, std::string_view data);

// Labels carry PINs: a label is written only into a regular file of its own that ends up 0600.
// O_NOFOLLOW refuses a symbolic link, O_NONBLOCK a FIFO without a reader; an existing file is
// truncated only once it is known to be a regular file with no other name. On failure the file is
// removed if this call created or truncated it, so that a full disk leaves no partial label.
void write_whole(const std::string& path, std::string_view data, util::Overwrite overwrite);

bool directory_empty(const std::string& path);

// DIR/manifest.csv: one row a device (fleetkey-formats(5)).
crypto::SecretText manifest_text(const BatchOptions& o, const std::vector<registry::DeviceRecord>& devices,
                                 const std::vector<LabelRow>& rows, const crypto::Secret& verifiers, size_t room);

// Matter: the same verifiers in the layouts of connectedhomeip's `spake2p gen-verifier` and of
// esp-matter-mfg-tool's --csv (the keys) and --mcsv (one row a device), in the manifest's order.
std::vector<std::pair<std::string, crypto::SecretText>>
matter_files(const BatchOptions& o, const std::vector<LabelRow>& rows, const crypto::Secret& verifiers, size_t room);

} // namespace fleetkey::fleet
