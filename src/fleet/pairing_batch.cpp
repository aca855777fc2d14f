// A production run (`pair --all | --from FILE -o DIR`): every device's label written by worker
// threads, then the manifest (and Matter's verifier files) committed with the audit row; a failed
// run leaves nothing behind, and --resume completes a cut-off one.
#include "fleet/device_list.hpp"
#include "pairing_checks.hpp"
#include "pairing_files.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/fleet/devices.hpp>
#include <fleetkey/fleet/pairing.hpp>
#include <fleetkey/pairing/pin.hpp>
#include <fleetkey/registry/store.hpp>
#include <fleetkey/util/file.hpp>
#include <fleetkey/util/text.hpp>
#include <fleetkey/util/thread_pool.hpp>

#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <exception>
#include <fcntl.h>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace fleetkey::fleet {

namespace {

std::vector<registry::DeviceRecord> batch_devices(Fleet& fleet, const BatchOptions& o)
{
  std::vector<registry::DeviceRecord> devices;
  auto& reg = fleet.registry();
  if (!o.from) {
    reg.for_each_device("active", [&](const registry::DeviceRecord& d) { devices.push_back(d); });
    return devices;
  }
  return read_listed_devices(reg, *o.from, DeviceListRules{});
}

// What a production run refuses before it reads the registry.
void check_batch_options(const BatchOptions& o)
{
  check_options(o.pair);
  check_label(o.label, true);
  if (o.pair.matter.passcode) {
    throw Error(Exit::usage, "--passcode-file gives one passcode: a production run derives one per device");
  }
  if (o.out_dir.empty()) {
    throw Error(Exit::usage, "a production run needs -o DIR");
  }
  if (o.jobs < 0 || o.jobs > 256) {
    throw Error(Exit::usage, "--jobs {} is out of range (0-256)", o.jobs);
  }
}

// Refuses an -o DIR that is not a directory, that is not empty (without --force or --resume), or
// where a label's name is something else than a regular file with one name; returns whether DIR
// exists.
bool check_out_dir(const BatchOptions& o, const std::vector<registry::DeviceRecord>& devices)
{
  struct stat st
  {
  };
  const bool dir_exists = ::stat(o.out_dir.c_str(), &st) == 0;
  if (dir_exists) {
    if (!S_ISDIR(st.st_mode)) {
      throw Error(Exit::conflict, "{} exists and is not a directory", o.out_dir);
    }
    if (o.overwrite == util::Overwrite::no && !o.resume && !directory_empty(o.out_dir)) {
      throw Error(Exit::conflict, "output directory {} is not empty (use --force to write into it)", o.out_dir)
          .with_reason("file_exists");
    }
    // Refuse before any label is replaced; write_whole checks again as it opens each file.
    for (const auto& d : devices) {
      const auto path = o.out_dir + "/" + label_file_name(d.id, o.label.format);
      if (::lstat(path.c_str(), &st) == 0 && (!S_ISREG(st.st_mode) || st.st_nlink > 1)) {
        throw Error(Exit::conflict, "{} is not a regular file with one name: a label is never written into it", path);
      }
    }
  }
  return dir_exists;
}

// K_dev of `d` into `key`, under its master key version (one deriver a version in `derivers`), checked
// against the device's registered fingerprint.
void derive_checked(std::map<uint32_t, crypto::MasterDeriver>& derivers,
                    const std::map<uint32_t, const crypto::MasterKey*>& masters, const registry::DeviceRecord& d,
                    crypto::Secret& key)
{
  auto it = derivers.find(d.key_version);
  if (it == derivers.end()) {
    it = derivers.emplace(d.key_version, crypto::MasterDeriver(*masters.at(d.key_version))).first;
  }
  it->second.device_key(d.id, std::span<uint8_t, crypto::k_key_len>(key.data(), crypto::k_key_len));
  uint8_t fp[16];
  crypto::fingerprint(key.span(), fp);
  if (util::to_hex(fp) != d.fingerprint) {
    throw Error(Exit::key, "device \"{}\": derived key does not match its registered fingerprint", d.id);
  }
}

// Writes every device's label, by default on a thread per core (the caller's included), filling
// `rows` and, for Matter, `verifiers`; returns the first error, after which the workers stop.
std::exception_ptr write_labels(const BatchOptions& o, const std::vector<registry::DeviceRecord>& devices,
                                const std::map<uint32_t, const crypto::MasterKey*>& masters,
                                std::vector<LabelRow>& rows, crypto::Secret& verifiers)
{
  const bool matter = o.pair.scheme == PairScheme::matter;
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  const auto work = [&] {
    try {
      std::map<uint32_t, crypto::MasterDeriver> derivers; // one per thread: an Expander is not shared
      crypto::Secret key(crypto::k_key_len);
      pairing::StreamDeriver streams; // rekeyed per device: no allocation per key
      std::optional<pairing::Spake2p> spake2p;
      if (matter) {
        spake2p.emplace();
      }
      // Small blocks of devices per fetch keep both cores busy to the end.
      constexpr size_t k_block = 16;
      while (!failed) {
        const size_t begin = next.fetch_add(k_block);
        if (begin >= devices.size()) {
          break;
        }
        for (size_t i = begin; i < std::min(begin + k_block, devices.size()); ++i) {
          const auto& d = devices[i];
          derive_checked(derivers, masters, d, key);
          streams.rekey(key.span());
          const auto code = make_pairing_code(streams, d, o.pair, spake2p ? &*spake2p : nullptr);
          LabelRow& row = rows[i];
          row.file = label_file_name(d.id, o.label.format);
          const auto path = o.out_dir + "/" + row.file;
          const auto label = render_label(code.payload, o.label);
          row.kept = o.resume && holds(path, label);
          if (!row.kept) {
            write_whole(path, label, o.resume ? util::Overwrite::yes : o.overwrite);
          }
          row.code = code.code;
          row.manual = code.manual_code;
          if (code.matter) {
            row.discriminator = code.matter->discriminator;
            row.salt = code.salt;
            std::copy(code.verifier.span().begin(), code.verifier.span().end(),
                      verifiers.data() + i * pairing::k_spake2p_verifier_len);
          }
          row.payload = code.payload;
        }
      }
    } catch (...) {
      std::lock_guard lock(error_mutex);
      if (!error) {
        error = std::current_exception();
      }
      failed = true;
    }
  };
  const size_t cores = std::max(1u, std::thread::hardware_concurrency());
  // By default a thread per core, but none for fewer than 64 devices (4 with Matter's verifiers,
  // whose PBKDF2 is the run's work); --jobs N as asked.
  const size_t per_thread = matter ? 4 : 64;
  const size_t jobs = o.jobs > 0 ? std::min(static_cast<size_t>(o.jobs), std::max<size_t>(devices.size(), 1))
                                 : std::min(cores, devices.size() / per_thread + 1);
  {
    util::ThreadPool pool(jobs - 1);
    for (size_t t = 1; t < jobs; ++t) {
      pool.enqueue(work);
    }
    work();
  } // joins
  return error;
}

// The audit row, then the Matter files and the manifest, which appear once the registry has
// committed; on a failure `remove_run` removes the labels.
void commit_run(Fleet& fleet, const BatchOptions& o, BatchResult& result,
                const std::vector<std::pair<std::string, crypto::SecretText>>& extra, const crypto::SecretText& csv,
                const std::function<void()>& remove_run)
{
  const bool matter = o.pair.scheme == PairScheme::matter;
  auto& reg = fleet.registry();
  std::vector<std::unique_ptr<util::AtomicFile>> files; // the Matter files, then the manifest
  try {
    registry::Transaction tx(reg);
    nlohmann::json details = {
        {"count", result.count}, {"scheme", scheme_name(o.pair.scheme)}, {"manifest", result.manifest}};
    if (matter) {
      details["iterations"] = iterations_of(o.pair);
    }
    reg.audit("device.pair.batch", o.out_dir, details);
    for (const auto& [path, text] : extra) {
      files.push_back(std::make_unique<util::AtomicFile>(path, o.resume ? util::Overwrite::yes : o.overwrite));
      files.back()->write(text.view());
      result.matter_files.push_back(path);
    }
    files.push_back(std::make_unique<util::AtomicFile>(result.manifest, o.resume ? util::Overwrite::yes : o.overwrite));
    files.back()->write(csv.view());
    tx.commit();
  } catch (...) {
    files.clear(); // their temporary files, before DIR is removed
    remove_run();
    throw;
  }
  for (auto& f : files) {
    f->commit();
  }
}

} // namespace

BatchResult pair_batch(Fleet& fleet, const BatchOptions& o)
{
  check_batch_options(o);
  auto devices = batch_devices(fleet, o);
  if (o.pair.scheme == PairScheme::matter) {
    for (const auto& d : devices) {
      // Refuse a missing vendor or product id before any file is written.
      matter_field(o.pair.matter.vendor_id, d, "vendor_id", 0xffff, "--vendor-id");
      matter_field(o.pair.matter.product_id, d, "product_id", 0xffff, "--product-id");
    }
  }
  const bool dir_exists = check_out_dir(o, devices);
  // Every master key version the devices need, loaded once before the workers start.
  std::map<uint32_t, const crypto::MasterKey*> masters;
  for (const auto& d : devices) {
    if (!masters.count(d.key_version)) {
      masters[d.key_version] = &fleet.master_key(d.key_version);
    }
  }
  if (!dir_exists) {
    util::make_directories(o.out_dir, 0700);
  }

  const bool matter = o.pair.scheme == PairScheme::matter;
  std::vector<LabelRow> rows(devices.size());
  // Matter: the verifiers, 97 bytes a device, in guarded memory.
  crypto::Secret verifiers(matter ? devices.size() * pairing::k_spake2p_verifier_len : 0);
  const std::exception_ptr error = write_labels(o, devices, masters, rows, verifiers);
  // Leaves no partial run behind: removes the labels this run wrote (a label that failed removed
  // itself) and DIR if this run created it.
  const auto remove_run = [&] {
    for (const auto& row : rows) {
      if (!row.payload.empty() && !row.kept) {
        ::unlink((o.out_dir + "/" + row.file).c_str());
      }
    }
    if (!dir_exists) {
      ::rmdir(o.out_dir.c_str());
    }
  };
  if (error) {
    remove_run();
    std::rethrow_exception(error);
  }

  BatchResult result;
  result.count = devices.size();
  result.dir = o.out_dir;
  result.manifest = o.out_dir + "/manifest.csv";
  result.iterations = matter ? iterations_of(o.pair) : 0;
  // The files hold passcodes and verifiers: their text is built in guarded memory. Bounds: the
  // quoted fields' lengths plus at most 256 bytes for the rest of a line.
  size_t room = 512;
  for (size_t i = 0; i < devices.size(); ++i) {
    room += csv_field(devices[i].id).size() + csv_field(rows[i].payload).size() + csv_field(rows[i].file).size() + 256;
  }
  const crypto::SecretText csv = manifest_text(o, devices, rows, verifiers, room);
  std::vector<std::pair<std::string, crypto::SecretText>> extra;
  if (matter) {
    extra = matter_files(o, rows, verifiers, room);
  }
  commit_run(fleet, o, result, extra, csv, remove_run);
  return result;
}

} // namespace fleetkey::fleet
