// `device import`: the two passes put together (rows validated and spilled, then derived and
// inserted in one transaction) and the format helpers. The pieces: import_rows.cpp (pass 1's
// reading and validation), import_spill.cpp (the sorted spill between the passes),
// import_derive.cpp (pass 2's derivation worker and keys-out lines).
#include "import_derive.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/fleet/import.hpp>
#include <fleetkey/registry/store.hpp>
#include <fleetkey/util/bytes.hpp>
#include <fleetkey/util/csv.hpp>
#include <fleetkey/util/file.hpp>
#include <fleetkey/util/json_escape.hpp>
#include <fleetkey/util/text.hpp>
#include <fleetkey/util/thread_pool.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sodium.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <fcntl.h>
#include <memory>
#include <mutex>
#include <optional>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <unordered_set>
#include <utility>
#include <vector>

namespace fleetkey::fleet {

namespace {

using Clock = std::chrono::steady_clock;

constexpr uint64_t k_progress_rows = 1 << 16; // validation reports progress this often

double since(Clock::time_point t)
{
  return std::chrono::duration<double>(Clock::now() - t).count();
}

bool ends_with(std::string_view s, std::string_view suffix)
{
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Pass 1: reads, validates and spills every row; returns the reader of the rows in id order.
util::InputBuffer& validate_input(util::InputBuffer& in, ImportFormat format, const Source& src, Spill& spill,
                                  uint64_t input_size, const ProgressFn& progress)
{
  RowParser parser(in, format, src);
  const auto start = Clock::now();
  Row row;
  while (parser.next(row)) {
    spill.write(row);
    if (spill.rows() % k_progress_rows == 0 && progress) {
      progress({ImportProgress::Phase::validating, in.bytes_read(), input_size, since(start)});
    }
  }
  if (progress) {
    progress({ImportProgress::Phase::validating, in.bytes_read(), input_size, since(start)});
  }
  return spill.finish();
}

// The kind of keys file --keys-out names (--keys-out-format, else by its extension); refuses an existing
// regular file.
KeysOut keys_out_of(const ImportOptions& options)
{
  KeysOut keys_out = KeysOut::none;
  if (options.keys_out) {
    const auto f = options.keys_out_format.value_or(ends_with(*options.keys_out, ".csv") ? KeysOutFormat::csv
                                                                                         : KeysOutFormat::jsonl);
    keys_out = f == KeysOutFormat::csv ? KeysOut::csv : f == KeysOutFormat::nvs ? KeysOut::nvs : KeysOut::jsonl;
    KeysSink::check(*options.keys_out);
  } else if (options.keys_out_format) {
    throw Error(Exit::usage, "--keys-out-format needs --keys-out");
  }
  return keys_out;
}

// The keys file (or stream) opened with its header; nothing is delivered before the commit.
void open_keys_out(const ImportOptions& options, KeysOut keys_out, std::optional<KeysSink>& out)
{
  if (options.keys_out) {
    out.emplace(*options.keys_out);
    if (keys_out == KeysOut::csv) {
      out->write(std::string_view("id,key,key_version,fingerprint\n"));
    } else if (keys_out == KeysOut::nvs) {
      out->write(fmt::format("key,type,encoding,value\n{},namespace,,\n", k_nvs_namespace));
    }
  }
}

// The input's descriptor: stdin, or the file opened into `file`, whose size (a regular file's) goes
// to `input_size` for the progress report.
int open_source(const ImportOptions& options, util::Fd& file, uint64_t& input_size)
{
  int fd = STDIN_FILENO;
  if (options.source != "-") {
    file = util::Fd(::open(options.source.c_str(), O_RDONLY | O_CLOEXEC));
    if (!file.valid()) {
      throw Error(errno == ENOENT ? Exit::not_found : Exit::failure, "cannot read {}: {}", options.source,
                  std::strerror(errno));
    }
    fd = file.get();
    struct stat st
    {
    };
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
      input_size = static_cast<uint64_t>(st.st_size);
    }
  }
  return fd;
}

// Inserts a batch's new devices; with `probe` (the registry held devices), a registered one is
// refused or, with --skip-existing, skipped, and `no_key` marks the skipped rows whose key line
// stays out of the keys file. `digest`, if given, takes the inserted ids. Returns the rows skipped.
uint64_t insert_batch(const Batch& b, registry::DeviceBulkInsert& insert, bool probe, SkipExisting skip_existing,
                      const Source& src, crypto_hash_sha256_state* digest, std::vector<bool>& no_key)
{
  uint64_t skipped = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    const auto& o = b.offsets[i];
    const std::string_view id = b.id(i);
    const std::string_view fingerprint(b.fingerprints.data() + i * 32, 32);
    if (const auto existing = probe ? insert.registered(id) : std::nullopt) {
      if (skip_existing == SkipExisting::no) {
        src.fail(Exit::conflict, o.line,
                 fmt::format("device \"{}\" is already registered (use --skip-existing to skip it)", id));
      }
      no_key[i] = !existing->active || existing->fingerprint != fingerprint;
      ++skipped;
      continue;
    }
    registry::BulkDevice d;
    d.id = id;
    if (o.has_model) {
      d.model = std::string_view(b.arena.data() + o.model, o.model_len);
    }
    d.labels = o.labels_len == 0 ? std::string_view("{}") : std::string_view(b.arena.data() + o.labels, o.labels_len);
    d.fingerprint = fingerprint;
    insert.add(d);
    if (digest != nullptr) {
      hash_id(*digest, id);
    }
  }
  return skipped;
}

// The batch's keys file lines in input order, but for the rows `no_key` marks.
void write_kept_lines(KeysSink& out, const Batch& b, const std::vector<bool>& no_key)
{
  // Runs of kept rows' lines, in input order.
  const auto* text = reinterpret_cast<const char*>(b.text.data());
  size_t begin = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    if (no_key[i]) {
      const size_t line_begin = i == 0 ? 0 : b.line_ends[i - 1];
      out.write(std::string_view(text + begin, line_begin - begin));
      begin = b.line_ends[i];
    }
  }
  const size_t end = b.size() == 0 ? 0 : b.line_ends.back();
  out.write(std::string_view(text + begin, end - begin));
}

// Pass 2's rows, batch by batch from the derivation workers into `insert`; the rows' ids go into
// `digest`. Into an empty registry (no probe for existing ids) the workers write the key lines to `out`
// themselves; otherwise the lines of the rows kept are written here. Returns how many rows were skipped.
uint64_t insert_rows(util::InputBuffer& sorted, const crypto::MasterKey& mk, const KeysOut& keys_out,
                     const ImportOptions& options, KeysSink* out, registry::DeviceBulkInsert& insert,
                     crypto_hash_sha256_state& digest, const Source& src, uint64_t rows, const ProgressFn& progress)
{
  const bool probe = !insert.registry_was_empty();
  const auto import_start = Clock::now();
  std::optional<Deriver::Direct> direct;
  if (!probe) {
    direct = Deriver::Direct{&digest, out};
  }
  Deriver deriver(sorted, mk, keys_out, options.key_encoding, direct);
  // Rows whose key line stays out of the keys file: skipped devices whose registered key is not the
  // one derived here (another master version) or that are revoked. A skipped active device under this
  // version keeps its line, so that a re-run after a kill between commit and keys file completes it.
  std::vector<bool> no_key;
  uint64_t skipped = 0;
  for (bool last = false; !last;) {
    auto b = deriver.pop();
    last = b->last;
    no_key.assign(b->size(), false);
    skipped += insert_batch(*b, insert, probe, options.skip_existing, src, probe ? &digest : nullptr, no_key);
    insert.flush();
    if (out != nullptr && probe) {
      write_kept_lines(*out, *b, no_key);
    }
    deriver.recycle(std::move(b));
    if (progress) {
      progress({ImportProgress::Phase::importing, insert.inserted() + skipped, rows, since(import_start)});
    }
  }
  return skipped;
}

// The import's audit row, in its transaction.
void audit_import(registry::Store& reg, const Source& src, const ImportSummary& summary, ImportFormat format)
{
  reg.audit("device.import", src.name,
            {{"count", summary.imported},
             {"skipped", summary.skipped},
             {"key_version", summary.key_version},
             {"ids_sha256", summary.ids_sha256},
             {"format", format == ImportFormat::csv ? "csv" : "jsonl"}});
}

} // namespace

KeysOutFormat parse_keys_out_format(std::string_view name)
{
  if (name == "jsonl") {
    return KeysOutFormat::jsonl;
  }
  if (name == "csv") {
    return KeysOutFormat::csv;
  }
  if (name == "nvs") {
    return KeysOutFormat::nvs;
  }
  throw Error(Exit::usage, "unknown keys file format \"{}\" (jsonl, csv or nvs)", name);
}

ImportFormat parse_import_format(std::string_view name)
{
  if (name == "csv") {
    return ImportFormat::csv;
  }
  if (name == "jsonl" || name == "ndjson") {
    return ImportFormat::jsonl;
  }
  throw Error(Exit::usage, "unknown import format \"{}\" (csv or jsonl)", name);
}

ImportFormat import_format_for(std::string_view source, const std::optional<ImportFormat>& format)
{
  if (format) {
    return *format;
  }
  if (source == "-") {
    throw Error(Exit::usage, "reading stdin needs --format csv or --format jsonl");
  }
  if (ends_with(source, ".csv")) {
    return ImportFormat::csv;
  }
  if (ends_with(source, ".jsonl") || ends_with(source, ".ndjson")) {
    return ImportFormat::jsonl;
  }
  throw Error(Exit::usage, "cannot tell the format of {} from its name (.csv, .jsonl, .ndjson): use --format", source);
}

void read_import_rows(std::string_view text, ImportFormat format, const ImportRowFn& fn)
{
  util::InputBuffer in(text);
  RowParser parser(in, format, Source{"input"});
  Row row;
  while (parser.next(row)) {
    fn(row.line, row.id, row.model, row.labels.empty() ? std::string_view("{}") : row.labels);
  }
}

ImportSummary import_devices(Fleet& fleet, const ImportOptions& options, const ProgressFn& progress)
{
  const auto start = Clock::now();
  const ImportFormat format = import_format_for(options.source, options.format);
  const Source src{options.source == "-" ? std::string("stdin") : options.source};

  const KeysOut keys_out = keys_out_of(options);

  // Open everything that can fail for reasons other than the input first: the registry, the
  // key (which may ask for a passphrase) and the keys file.
  auto& reg = fleet.registry();
  fleet.keyring();

  util::Fd file;
  uint64_t input_size = 0;
  const int fd = open_source(options, file, input_size);
  std::optional<KeysSink> out;
  open_keys_out(options, keys_out, out);

  // Pass 1: everything is validated before the registry is touched.
  Spill spill(src, std::max<size_t>(options.sort_run_bytes, 4096));
  util::InputBuffer* sorted = nullptr;
  {
    util::InputBuffer in(fd);
    sorted = &validate_input(in, format, src, spill, input_size, progress);
  }
  const uint64_t rows = spill.rows();
  file.close();
  const double validated_at = since(start);

  ImportSummary summary;
  summary.rows = rows;
  summary.keys_out = options.keys_out;
  summary.keys_to_stdout = out && out->stdout_stream();

  // Pass 2: one transaction. BEGIN IMMEDIATE waits for other stations' imports to finish.
  registry::Transaction tx(reg);
  // Inside the transaction: a rotate or retire that finished meanwhile is seen, not refused.
  const crypto::MasterKey& mk = fleet.current_master_key();
  summary.key_version = mk.version;
  const auto inserter = reg.bulk_insert(mk.version, util::format_time(util::unix_now()));
  registry::DeviceBulkInsert& insert = *inserter;
  crypto_hash_sha256_state digest;
  crypto_hash_sha256_init(&digest);
  summary.skipped =
      insert_rows(*sorted, mk, keys_out, options, out ? &*out : nullptr, insert, digest, src, rows, progress);
  insert.finish();
  const double inserted_at = since(start);
  summary.imported = insert.inserted();
  uint8_t hash[32];
  crypto_hash_sha256_final(&digest, hash);
  summary.ids_sha256 = util::to_hex(hash);
  if (summary.imported > 0) {
    audit_import(reg, src, summary, format);
  }
  tx.commit();
  // The keys file appears only once the registry holds every device it names.
  if (out) {
    out->commit();
  }
  summary.seconds = since(start);
  summary.validate_seconds = validated_at;
  summary.insert_seconds = inserted_at - validated_at;
  summary.commit_seconds = summary.seconds - inserted_at;
  return summary;
}

} // namespace fleetkey::fleet
