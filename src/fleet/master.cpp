#include "fleet/convert.hpp"
#include "fleet/master_steps.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/fleet/hsm.hpp>
#include <fleetkey/fleet/master.hpp>
#include <fleetkey/registry/store.hpp>
#include <fleetkey/util/bytes.hpp>
#include <fleetkey/util/file.hpp>
#include <fleetkey/util/text.hpp>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <functional>
#include <unistd.h>

namespace fleetkey::fleet {

registry::MasterKeyRecord record_of(const crypto::MasterKey& mk, bool test_key, std::string status)
{
  return {mk.version,  util::format_time(mk.created), crypto::fingerprint(mk.key.span()), test_key, std::move(status),
          std::nullopt};
}

void check_unchanged_key_file(Fleet& fleet)
{
  fleet.settle_key_file(false);
  const auto& path = fleet.paths().master_key;
  auto text = crypto::read_private_file(path, "master key file", crypto::k_max_secret_file, true);
  if (!crypto::equal(text.span(), fleet.key_file_text().span())) {
    throw Error(Exit::conflict,
                "master key file {} was replaced while this command ran (another rotate or passwd?): nothing was "
                "changed; run the command again",
                path);
  }
}

crypto::Secret write_key_file_and_commit(Fleet& fleet, registry::Transaction& tx, const crypto::Keyring& ring,
                                         const crypto::Secret* pass, crypto::KdfParams kdf)
{
  return write_and_commit(fleet, tx, [&](const std::string& path) {
    return crypto::write_key_file(path, ring, pass, kdf, crypto::Replace::no);
  });
}

crypto::Secret write_text_file(const std::string& path, std::string_view text)
{
  util::AtomicFile file(path, util::Overwrite::no);
  file.write(text);
  file.commit();
  return crypto::Secret::copy_of(util::as_bytes(text));
}

crypto::Secret write_and_commit(Fleet& fleet, registry::Transaction& tx,
                                const std::function<crypto::Secret(const std::string&)>& write)
{
  const int64_t last = fleet.registry().last_audit_id();
  if (last == 0) {
    throw Error(Exit::failure, "internal error: the change has no audit row");
  }
  const std::string target = key_file_target(fleet.paths().master_key);
  const std::string pending = fmt::format("{}.pending-{}", target, last);
  ::unlink(pending.c_str()); // a row id reused after a rollback: its file was never committed
  auto text = write(pending);
  try {
    tx.commit();
  } catch (...) {
    ::unlink(pending.c_str());
    throw;
  }
  // ENOENT: another command has settled it already.
  if (::rename(pending.c_str(), target.c_str()) != 0 && errno != ENOENT) {
    fleet.warn(
        fmt::format("cannot rename {} to {}: {} (the next command retries)", pending, target, std::strerror(errno)));
  }
  sync_directory(util::dirname(target));
  return text;
}

void sync_directory(const std::string& dir)
{
  util::Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d.valid()) {
    ::fsync(d.get());
  }
}

std::vector<MasterKeyVersion> list_master_keys(Fleet& fleet)
{
  std::vector<MasterKeyVersion> out;
  for (const auto& r : fleet.registry().master_keys()) {
    out.push_back(master_key_of(r));
  }
  return out;
}

MasterKeyVersion rotate_master_key(Fleet& fleet)
{
  if (fleet.key_file_header().hsm) {
    return rotate_in_hsm(fleet);
  }
  auto& reg = fleet.registry();
  auto ring = crypto::Keyring::deserialize(fleet.keyring().serialize().span());
  auto header = fleet.key_file_header();
  // The passphrase that just opened the file: asking again would encrypt every version under
  // whatever was typed the second time, typos included.
  const crypto::Secret* pass = fleet.key_file_passphrase();
  // Numbered after every version in the file, so that a version the registry never recorded (see
  // Fleet::keyring) is kept, not reused.
  const auto& mk = ring.rotate(util::unix_now());
  const auto rec = record_of(mk, ring.is_test_key(), "current");
  registry::Transaction tx(reg);
  check_unchanged_key_file(fleet);
  reg.insert_master_key(rec);
  reg.set_current_master_key(rec.version);
  reg.audit("master.rotate", fmt::format("master:{}", rec.version), {{"fingerprint", rec.fingerprint}});
  auto text = write_key_file_and_commit(fleet, tx, ring, pass, header.kdf);
  header.current_version = rec.version;
  fleet.reset_keyring(std::make_unique<crypto::Keyring>(std::move(ring)), header,
                      pass ? std::optional(crypto::Secret::copy_of(pass->span())) : std::nullopt, std::move(text));
  return master_key_of(rec);
}

MasterKeyVersion retire_master_key(Fleet& fleet, uint32_t version)
{
  auto& reg = fleet.registry();
  registry::Transaction tx(reg);
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
  reg.raise_global_state(); // every lock learns it (fleetkey-state(5))
  tx.commit();
  return master_key_of(*reg.master_key(version));
}

void change_passphrase(Fleet& fleet, const PasswdOptions& options)
{
  if (options.no_passphrase && (options.new_passphrase_file || options.kdf_profile)) {
    throw Error(Exit::usage, "--no-passphrase cannot be combined with --new-passphrase-file or --kdf");
  }
  hsm::refuse_in_hsm(fleet, "master passwd",
                     "it has no passphrase, and the token's PIN is the token's business (change it with the token's "
                     "own tools)");
  auto& reg = fleet.registry();
  const auto& ring = fleet.keyring(); // asks for the old passphrase, once
  const auto& header = fleet.key_file_header();
  std::optional<crypto::Secret> pass;
  if (!options.no_passphrase) {
    if (options.new_passphrase_file) {
      pass = read_passphrase_file(*options.new_passphrase_file);
    } else {
      if (!crypto::have_terminal()) {
        throw Error(Exit::key, "a new passphrase is needed and there is no terminal to ask: use --new-passphrase-file");
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
  registry::Transaction tx(reg);
  check_unchanged_key_file(fleet);
  reg.audit("master.passwd", "master", {{"encrypted", pass.has_value()}});
  auto text = write_key_file_and_commit(fleet, tx, ring, pass ? &*pass : nullptr, kdf);
  auto new_header = header;
  new_header.encrypted = pass.has_value();
  new_header.kdf = kdf;
  fleet.reset_key_file(new_header, std::move(pass), std::move(text));
}

} // namespace fleetkey::fleet
