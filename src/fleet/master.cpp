#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/fleet/master.hpp>
#include <fleetkey/util/error.hpp>
#include <fleetkey/util/file.hpp>
#include <fleetkey/util/text.hpp>

#include <sys/stat.h>
#include <unistd.h>

namespace fleetkey::fleet {

namespace {

registry::MasterKeyRecord record_of(const crypto::MasterKey& mk, bool test_key, std::string status)
{
  return {mk.version,  util::format_time(mk.created), crypto::fingerprint(mk.key.span()), test_key, std::move(status),
          std::nullopt};
}

void remove_registry_files(const std::string& path)
{
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
    ::unlink((path + suffix).c_str());
  }
}

} // namespace

registry::MasterKeyRecord init(Fleet& fleet, const InitOptions& options)
{
  const auto& paths = fleet.paths();
  std::optional<crypto::Secret> seed;
  if (options.test_seed_hex) {
    auto bytes = util::from_hex(*options.test_seed_hex);
    if (!bytes || bytes->empty() || bytes->size() > 64) {
      throw Error(Exit::usage, "--test-seed must be 1 to 64 bytes of hex");
    }
    seed = crypto::Secret::copy_of(*bytes);
  }
  const auto kdf = crypto::kdf_profile(options.kdf_profile);
  if (!options.force) {
    for (const auto* p : {&paths.master_key, &paths.registry}) {
      if (util::exists(*p)) {
        throw Error(Exit::conflict, "{} already exists (use --force to replace it and lose every key derived from it)",
                    *p);
      }
    }
  }
  // Ask for the passphrase before anything is created, so that a refusal changes nothing.
  std::optional<crypto::Secret> pass;
  if (!options.no_passphrase) {
    pass = fleet.passphrase(Confirm::yes, "New passphrase for the master key: ");
  }
  util::make_directories(paths.home, 0700);
  ::chmod(paths.home.c_str(), 0700);

  const int64_t now = util::unix_now();
  auto ring = std::make_unique<crypto::Keyring>(crypto::Keyring::create(now, std::move(seed)));
  if (options.force) {
    remove_registry_files(paths.registry);
  }
  auto reg = registry::Registry::open(paths.registry, registry::OpenMode::create);
  const auto rec = record_of(ring->current(), ring->is_test_key(), "current");
  try {
    registry::Transaction tx(reg.db());
    reg.insert_master_key(rec);
    reg.audit("init", "master:1",
              {{"fingerprint", rec.fingerprint}, {"test_key", rec.test_key}, {"encrypted", pass.has_value()}});
    crypto::write_key_file(paths.master_key, *ring, pass ? &*pass : nullptr, kdf,
                           options.force ? crypto::Replace::yes : crypto::Replace::no);
    tx.commit();
  } catch (...) {
    remove_registry_files(paths.registry); // a failed init leaves nothing behind
    throw;
  }
  crypto::KeyFileHeader header{pass.has_value(), kdf, ring->is_test_key(), 1};
  if (ring->is_test_key()) {
    fleet.warn("created a TEST master key from --test-seed: never provision real devices with it");
  }
  fleet.reset_keyring(std::move(ring), header, std::move(pass));
  fleet.set_registry(std::move(reg));
  return rec;
}

std::vector<registry::MasterKeyRecord> list_master_keys(Fleet& fleet)
{
  return fleet.registry().master_keys();
}

registry::MasterKeyRecord rotate_master_key(Fleet& fleet)
{
  auto& reg = fleet.registry();
  auto ring = crypto::Keyring::deserialize(fleet.keyring().serialize().span());
  auto header = fleet.key_file_header();
  // The passphrase that just opened the file: asking again would encrypt every version under
  // whatever was typed the second time, typos included.
  const crypto::Secret* pass = fleet.key_file_passphrase();
  const auto old_text = crypto::read_private_file(fleet.paths().master_key, "master key file");
  // Numbered after every version in the file, so that a version the registry never recorded (see
  // Fleet::keyring) is kept, not reused.
  const auto& mk = ring.rotate(util::unix_now());
  const auto rec = record_of(mk, ring.is_test_key(), "current");
  registry::Transaction tx(reg.db());
  reg.insert_master_key(rec);
  reg.set_current_master_key(rec.version);
  reg.audit("master.rotate", fmt::format("master:{}", rec.version), {{"fingerprint", rec.fingerprint}});
  // A crash between this write and the commit leaves a file whose current version the registry
  // does not know; Fleet::keyring then keeps using the registry's current version.
  crypto::write_key_file(fleet.paths().master_key, ring, pass, header.kdf, crypto::Replace::yes);
  try {
    tx.commit();
  } catch (...) {
    // Put the previous key file back so that file and registry still agree.
    util::AtomicFile restore(fleet.paths().master_key, util::Overwrite::yes);
    restore.write(old_text.span());
    restore.commit();
    throw;
  }
  header.current_version = rec.version;
  fleet.reset_keyring(std::make_unique<crypto::Keyring>(std::move(ring)), header,
                      pass ? std::optional(crypto::Secret::copy_of(pass->span())) : std::nullopt);
  return rec;
}

registry::MasterKeyRecord retire_master_key(Fleet& fleet, uint32_t version)
{
  auto& reg = fleet.registry();
  registry::Transaction tx(reg.db());
  auto rec = reg.master_key(version);
  if (!rec) {
    throw Error(Exit::not_found, "master key version {} does not exist", version);
  }
  if (rec->status == "current") {
    throw Error(Exit::conflict, "master key version {} is current: rotate first", version);
  }
  if (rec->status == "retired") {
    throw Error(Exit::conflict, "master key version {} is already retired", version);
  }
  const auto now = util::format_time(util::unix_now());
  reg.retire_master_key(version, now);
  reg.audit("master.retire", fmt::format("master:{}", version));
  tx.commit();
  return *reg.master_key(version);
}

void change_passphrase(Fleet& fleet, const PasswdOptions& options)
{
  if (options.no_passphrase && (options.new_passphrase_file || options.kdf_profile)) {
    throw Error(Exit::usage, "--no-passphrase cannot be combined with --new-passphrase-file or --kdf");
  }
  auto& reg = fleet.registry();
  const auto& ring = fleet.keyring(); // asks for the old passphrase, once
  const auto& header = fleet.key_file_header();
  std::optional<crypto::Secret> pass;
  if (!options.no_passphrase) {
    if (options.new_passphrase_file) {
      pass = read_passphrase_file(*options.new_passphrase_file);
    } else {
      if (::isatty(STDIN_FILENO) == 0) {
        throw Error(Exit::key, "a new passphrase is needed and stdin is not a terminal: use --new-passphrase-file");
      }
      pass = crypto::prompt_passphrase("New passphrase: ");
      auto again = crypto::prompt_passphrase("Repeat new passphrase: ");
      if (pass->empty() || !crypto::equal(pass->span(), again.span())) {
        throw Error(Exit::key, pass->empty() ? "empty passphrase refused" : "the passphrases do not match");
      }
    }
  }
  const auto kdf = options.kdf_profile ? crypto::kdf_profile(*options.kdf_profile)
                   : header.encrypted  ? header.kdf
                                       : crypto::kdf_profile("moderate");
  registry::Transaction tx(reg.db());
  reg.audit("master.passwd", "master", {{"encrypted", pass.has_value()}});
  crypto::write_key_file(fleet.paths().master_key, ring, pass ? &*pass : nullptr, kdf, crypto::Replace::yes);
  tx.commit();
  auto new_header = header;
  new_header.encrypted = pass.has_value();
  new_header.kdf = kdf;
  fleet.reset_key_file(new_header, std::move(pass));
}

} // namespace fleetkey::fleet
