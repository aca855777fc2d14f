#pragma once
// Pairing codes for one device or a production run: PIN or Matter passcode, QR payload and
// label. Formats in fleetkey-pairing(5).

#include <fleetkey/crypto/secret.hpp>
#include <fleetkey/fleet/fleet.hpp>
#include <fleetkey/fleet/qr.hpp>
#include <fleetkey/fleet/types.hpp>
#include <fleetkey/pairing/matter.hpp>
#include <fleetkey/pairing/spake2p.hpp>
#include <fleetkey/pairing/stream.hpp>
#include <fleetkey/qr/qr.hpp>
#include <fleetkey/util/file.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace fleetkey::fleet {

using MatterPayload = pairing::MatterPayload;

// PBKDF2 iterations of a Matter SPAKE2+ verifier (--iterations).
inline constexpr uint32_t k_matter_min_iterations = pairing::k_spake2p_min_iterations;
inline constexpr uint32_t k_matter_max_iterations = pairing::k_spake2p_max_iterations;
inline constexpr uint32_t k_matter_default_iterations = pairing::k_spake2p_default_iterations;

enum class PairScheme { fleetkey, matter };
PairScheme parse_pair_scheme(std::string_view name); // throws Error(usage)

enum class QrFormat { utf8, ansi, png, svg, none };
QrFormat parse_qr_format(std::string_view name); // throws Error(usage)

// Matter fields as typed (decimal, or hexadecimal with 0x). Vendor and product id fall back to
// the device's labels vendor_id and product_id, the discriminator to its label discriminator,
// then to the value derived from the device key; the passcode is derived unless given.
struct MatterSettings
{
  std::optional<std::string> vendor_id;
  std::optional<std::string> product_id;
  std::optional<std::string> discriminator;
  // The passcode as typed (--passcode-file's first line), kept in guarded memory: a pairing secret.
  std::shared_ptr<const crypto::Secret> passcode;
  int flow = 0;
  int discovery = pairing::k_discovery_ble;
  // PBKDF2 iterations of the SPAKE2+ verifier (1000-100000); unset: the default.
  std::optional<long long> iterations;
};

struct PairOptions
{
  PairScheme scheme = PairScheme::fleetkey;
  int pin_digits = 8;
  MatterSettings matter;
};

struct LabelOptions
{
  QrFormat format = QrFormat::utf8;
  qr::Ec ec = qr::Ec::M;
  int scale = 8;
  int margin = -1;                      // -1: 4 modules for png and svg, 2 for terminals
  qr::Colors colors = qr::Colors::none; // utf8 only: black_on_white when it goes to a terminal
};

struct PairingCode
{
  std::string device;
  uint64_t counter = 0;
  PairScheme scheme = PairScheme::fleetkey;
  std::string code;        // fleetkey: PIN and check digit; matter: the passcode, 8 digits
  std::string grouped;     // fleetkey: "4821-0937-4"; matter: the manual code "3497-011-2332"
  std::string manual_code; // fleetkey: same as code; matter: 11 or 21 digits
  std::string payload;     // the QR code's text
  std::optional<pairing::MatterPayload> matter;
  // Matter: the SPAKE2+ verifier w0 || L (97 bytes) from the passcode, the derived salt and the
  // iteration count.
  uint32_t iterations = 0;
  util::Bytes salt;
  crypto::Secret verifier;
};

// A Matter passcode is a pairing secret, so it comes from a private file, never from argv: the
// first line of `path`, without its line ending, kept in guarded memory (check_options validates
// it). Throws Error(key) for a file others can read, Error(usage) for an empty first line.
std::shared_ptr<const crypto::Secret> read_passcode_file(const std::string& path);

// The code of `device` at its pairing counter, from the streams keyed with its key K_dev(D):
// no registry access. `spake2p` computes Matter's verifier (required for Matter, else unused).
PairingCode make_pairing_code(const pairing::StreamDeriver& streams, const Device& device, const PairOptions& options,
                              const pairing::Spake2p* spake2p);

// A Matter code's verifier in base64 (RFC 4648, with padding), in guarded memory.
crypto::SecretText verifier_base64(const PairingCode& code);

// The label: terminal text, SVG text or PNG bytes.
std::string render_label(std::string_view payload, const LabelOptions& label);

enum class Rotate { no, yes };

struct PairResult
{
  PairingCode code;
  std::string rendering; // empty with QrFormat::none or when written to `file`
  std::optional<std::string> file;
};

// One device. With Rotate::yes the pairing counter goes up by one (and the code with it) in the
// same transaction as the audit event; `out` receives the rendering when given.
PairResult pair_device(Fleet& fleet, std::string_view id, const PairOptions& options, const LabelOptions& label,
                       const std::optional<std::string>& out, Rotate rotate, util::Overwrite overwrite);

struct BatchOptions
{
  PairOptions pair;
  LabelOptions label;              // png (default) or svg
  std::string out_dir;             // created if missing; must be empty unless Overwrite::yes
  std::optional<std::string> from; // one device id a line; else every active device
  int jobs = 0;                    // 0: one per core
  util::Overwrite overwrite = util::Overwrite::no;
  // --resume: complete a run into DIR that was cut off. DIR may hold files; a label that holds what
  // this run writes is kept untouched, any other (missing, cut short) is written; the manifest is
  // written anew.
  bool resume = false;
};

struct BatchResult
{
  size_t count = 0;
  std::string dir;
  std::string manifest;
  std::vector<std::string> matter_files; // Matter: spake2p.csv, esp-matter-config.csv, esp-matter-master.csv
  uint32_t iterations = 0;               // Matter: the verifiers' PBKDF2 iterations
};

// A production run: one label file per device and DIR/manifest.csv with the columns
// device,pin|passcode,manual_code,payload,file (Matter adds discriminator,iterations,salt,verifier,
// and writes the factory tools' CSV files). Keys are derived once per batch, on every core.
BatchResult pair_batch(Fleet& fleet, const BatchOptions& options);

// The label's file name: the device id with bytes outside [A-Za-z0-9_.-] (and a leading '.')
// written as %XX, so that distinct ids never share a file and none escapes the directory. Names
// longer than 240 bytes become their first 200 bytes, "~" and 16 hex digits of SHA-256(id).
std::string label_file_name(std::string_view device_id, QrFormat format);

} // namespace fleetkey::fleet
