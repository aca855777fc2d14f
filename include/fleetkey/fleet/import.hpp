#pragma once
// Factory-scale registration: `device import`. Input and key-file formats in fleetkey-import(5).
//
// Two passes. The first reads the whole input, validates every row (syntax, id, model, labels)
// and spills the parsed rows to unlinked temporary files in ascending id order (an external
// merge sort when the input is not sorted already), where repeated ids sit side by side. The
// second runs in one transaction: a worker thread derives the keys and fingerprints while this
// thread inserts in id order, so the registry gets the whole batch or none of it, and one audit
// event records it. Memory stays bounded whatever the input size.

#include <fleetkey/fleet/fleet.hpp>
#include <fleetkey/fleet/keys.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace fleetkey::fleet {

enum class ImportFormat { csv, jsonl };
enum class SkipExisting { no, yes };
// --keys-out-format: JSON Lines, CSV, or the ESP-IDF NVS partition generator's CSV (fleetkey-import(5)).
enum class KeysOutFormat { jsonl, csv, nvs };
KeysOutFormat parse_keys_out_format(std::string_view name); // throws Error(usage)

struct ImportOptions
{
  std::string source;                           // a file, or "-" for stdin
  std::optional<ImportFormat> format;           // required for stdin; else from the extension
  std::optional<std::string> keys_out;          // a new file, "-" (stdout), or a FIFO or /dev/fd/N (KeysSink)
  std::optional<KeysOutFormat> keys_out_format; // default: CSV when the name ends in .csv, else JSON Lines
  KeyEncoding key_encoding = KeyEncoding::base64;
  SkipExisting skip_existing = SkipExisting::no;
  // Unsorted input is sorted in memory runs of this size, then merged from a temporary file.
  size_t sort_run_bytes = size_t{16} << 20;
};

struct ImportProgress
{
  enum class Phase { validating, importing };
  Phase phase = Phase::validating;
  uint64_t done = 0;  // validating: bytes read; importing: rows written
  uint64_t total = 0; // validating: input size (0 if unknown, e.g. a pipe); importing: rows
  double seconds = 0; // since the phase began
};
using ProgressFn = std::function<void(const ImportProgress&)>;

struct ImportSummary
{
  uint64_t rows = 0; // rows in the input
  uint64_t imported = 0;
  uint64_t skipped = 0; // already registered, with --skip-existing
  uint32_t key_version = 0;
  std::string ids_sha256; // hex SHA-256 of the imported ids, each followed by "\n", in byte order
  std::optional<std::string> keys_out;
  bool keys_to_stdout = false; // --keys-out - (or /dev/stdout): stdout holds the keys
  double seconds = 0;
  // Where the time went: reading and validating; deriving and inserting; the commit (with its
  // WAL checkpoint) and the keys file.
  double validate_seconds = 0;
  double insert_seconds = 0;
  double commit_seconds = 0;
};

// "csv", "jsonl" or "ndjson"; throws Error(usage) otherwise.
ImportFormat parse_import_format(std::string_view name);
// --format if given, else from the file name; reading stdin requires --format.
ImportFormat import_format_for(std::string_view source, const std::optional<ImportFormat>& format);

// The first pass alone, over text in memory and without a registry (for the fuzzer and tests):
// calls `fn` with each valid row's line, id, model and labels as stored (a JSON object), and
// throws the Error(usage) that import_devices would for the first bad row.
using ImportRowFn = std::function<void(uint64_t line, std::string_view id, std::optional<std::string_view> model,
                                       std::string_view labels)>;
void read_import_rows(std::string_view text, ImportFormat format, const ImportRowFn& fn);

// Throws Error(usage) naming the line of the first bad row, Error(conflict) for an id already
// registered (without --skip-existing); the registry is unchanged unless the import succeeds.
ImportSummary import_devices(Fleet& fleet, const ImportOptions& options, const ProgressFn& progress = {});

} // namespace fleetkey::fleet
