#include "fleet/convert.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/crypto/pkcs11.hpp>
#include <fleetkey/fleet/hsm.hpp>
#include <fleetkey/fleet/master.hpp>
#include <fleetkey/registry/store.hpp>
#include <fleetkey/util/bytes.hpp>
#include <fleetkey/util/file.hpp>
#include <fleetkey/util/text.hpp>

#include <sodium.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <functional>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fleetkey::fleet {

namespace {

registry::MasterKeyRecord record_of(const crypto::MasterKey& mk, bool test_key, std::string status)
{
  return {mk.version,  util::format_time(mk.created), crypto::fingerprint(mk.key.span()), test_key, std::move(status),
          std::nullopt};
}

constexpr std::array<const char*, 4> k_registry_suffixes{"", "-wal", "-shm", "-journal"};

// What `init --force` replaces is moved aside, not deleted, until the new registry and key file
// are in place; if anything fails first, it goes back, so that a failed init changes nothing. (A
// crash in between leaves the old files next to the new ones, as NAME.replaced-HEX.)
class SetAside
{
public:
  SetAside() = default;
  SetAside(const SetAside&) = delete;
  SetAside& operator=(const SetAside&) = delete;
  ~SetAside() { restore(); }

  void move(const std::string& path)
  {
    const std::string aside = fmt::format("{}.replaced-{}", path, m_tag);
    if (::rename(path.c_str(), aside.c_str()) == 0) {
      m_moved.emplace_back(path, aside);
    } else if (errno != ENOENT) {
      throw Error(Exit::failure, "cannot move {} aside: {}", path, std::strerror(errno));
    }
  }
  void restore() noexcept
  {
    for (auto it = m_moved.rbegin(); it != m_moved.rend(); ++it) {
      ::rename(it->second.c_str(), it->first.c_str());
    }
    m_moved.clear();
  }
  void drop() noexcept
  {
    for (const auto& [path, aside] : m_moved) {
      ::unlink(aside.c_str());
    }
    m_moved.clear();
  }

private:
  static std::string random_tag()
  {
    uint8_t tag[4];
    randombytes_buf(tag, sizeof tag);
    return util::to_hex(tag);
  }

  std::string m_tag = random_tag();
  std::vector<std::pair<std::string, std::string>> m_moved;
};

// Called with the registry's write lock held (BEGIN IMMEDIATE), which every command that writes
// the key file takes first, so that they run one at a time. A killed writer's change is settled
// first. The key file must still be the one this command read: if another rotate or passwd has
// replaced it since, writing now would undo that change.
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

// Writes the new key file complete under a pending name, MASTER_KEY.pending-ID after the audit row
// that `tx` adds for the change, commits `tx`, then renames the file into place (beside a symbolic
// link's target, replacing the target). The commit decides: a kill before it leaves a pending file
// whose audit row never existed (removed by the next command), a kill after it one whose row exists
// (put in place by the next command, Fleet::settle_key_file). Returns the bytes written.
crypto::Secret write_and_commit(Fleet& fleet, registry::Transaction& tx,
                                const std::function<crypto::Secret(const std::string&)>& write);

crypto::Secret write_key_file_and_commit(Fleet& fleet, registry::Transaction& tx, const crypto::Keyring& ring,
                                         const crypto::Secret* pass, crypto::KdfParams kdf)
{
  return write_and_commit(fleet, tx, [&](const std::string& path) {
    return crypto::write_key_file(path, ring, pass, kdf, crypto::Replace::no);
  });
}

// A key file's text (an HSM reference) written 0600 and atomically at `path`, which must not exist.
crypto::Secret write_text_file(const std::string& path, std::string_view text)
{
  util::AtomicFile file(path, util::Overwrite::no);
  file.write(text);
  file.commit();
  return crypto::Secret::copy_of(util::as_bytes(text));
}

// As write_key_file_and_commit, for whatever `write` writes at the path it is given.
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
  util::Fd dir(::open(util::dirname(target).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.valid()) {
    ::fsync(dir.get());
  }
  return text;
}

// init builds the registry and the key file under staging names (REGISTRY.init, MASTER_KEY.init), links
// the key file into place, then renames the registry into place: the registry appearing is the commit.
// A kill at any point leaves either a complete home or a state the next init recognises as its own
// (the key file is the staged one, same inode, and no registry) and clears. See fleetkey(1), init.
struct Staging
{
  explicit Staging(const Paths& p)
      : registry(p.registry + ".init")
      , key(p.master_key + ".init")
      , final_key(p.master_key)
      , final_registry(p.registry)
  {
  }
  std::string registry;
  std::string key;
  const std::string& final_key;
  const std::string& final_registry;

  // A killed init's: the key file in place is the staged one (a hard link to it) and no registry.
  bool half_made() const
  {
    struct stat k
    {
    };
    struct stat staged
    {
    };
    return !util::exists(final_registry) && ::lstat(final_key.c_str(), &k) == 0 && ::lstat(key.c_str(), &staged) == 0
           && k.st_dev == staged.st_dev && k.st_ino == staged.st_ino;
  }
  void clear_registry() const
  {
    for (const char* suffix : k_registry_suffixes) {
      ::unlink((registry + suffix).c_str());
    }
  }
};

// rename() that never replaces an existing `to`; link() and unlink() where the file system lacks
// RENAME_NOREPLACE (a kill in between leaves a second name, which the next init removes).
bool rename_no_replace(const std::string& from, const std::string& to)
{
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) {
    return true;
  }
  if (errno != EINVAL && errno != ENOSYS) {
    return false;
  }
  if (::link(from.c_str(), to.c_str()) != 0) {
    return false;
  }
  ::unlink(from.c_str());
  return true;
}

// The prefix of the object labels in the token: the URI's object=, else "fleetkey-" and 8 random hex
// digits, so that two homes never share a label by accident.
void choose_object(crypto::pkcs11::Uri& uri)
{
  if (uri.object.empty()) {
    uint8_t tag[4];
    randombytes_buf(tag, sizeof tag);
    uri.object = "fleetkey-" + util::to_hex(tag);
  }
}

// Objects created in the token by a command that then failed are destroyed again (best effort).
class CreatedObjects
{
public:
  explicit CreatedObjects(std::shared_ptr<crypto::pkcs11::Token> token)
      : m_token(std::move(token))
  {
  }
  CreatedObjects(const CreatedObjects&) = delete;
  CreatedObjects& operator=(const CreatedObjects&) = delete;
  ~CreatedObjects()
  {
    for (const auto& label : m_labels) {
      try {
        m_token->destroy(label);
      } catch (...) { // NOLINT(bugprone-empty-catch): the command's own error is the one to report
      }
    }
  }
  void add(std::string label) { m_labels.push_back(std::move(label)); }
  void keep() { m_labels.clear(); } // committed

private:
  std::shared_ptr<crypto::pkcs11::Token> m_token;
  std::vector<std::string> m_labels;
};

// PRK[v] of MK as the token holds it, and what the reference records of it.
crypto::pkcs11::ReferenceVersion import_version(crypto::pkcs11::Token& token, CreatedObjects& created,
                                                const std::string& label, const crypto::MasterKey& mk)
{
  const auto prk = crypto::hkdf_extract(util::as_bytes(crypto::k_salt), mk.key.span());
  token.import_secret(label, prk);
  created.add(label);
  return {mk.version, mk.created, crypto::fingerprint(mk.key.span()), crypto::pkcs11::check_value(prk)};
}

// Every version of `ring` into the token (none if one of its labels is taken), as a reference.
crypto::pkcs11::Reference import_ring(crypto::pkcs11::Token& token, CreatedObjects& created,
                                      const crypto::pkcs11::Uri& uri, const crypto::Keyring& ring)
{
  for (const auto& mk : ring.versions()) {
    const auto label = crypto::pkcs11::object_label(uri.object, mk.version);
    if (token.has_object(label)) {
      throw Error(Exit::conflict,
                  "PKCS#11 token \"{}\" holds an object labelled \"{}\" already: name another prefix with object= "
                  "in the URI",
                  token.label(), label)
          .with_reason("exists");
    }
  }
  crypto::pkcs11::Reference ref;
  ref.uri = uri.text();
  ref.test_key = ring.is_test_key();
  ref.current = ring.current_version();
  if (ring.is_test_key()) {
    ref.test_seed_hex = util::to_hex(ring.test_seed().span());
  }
  for (const auto& mk : ring.versions()) {
    ref.versions.push_back(import_version(token, created, crypto::pkcs11::object_label(uri.object, mk.version), mk));
  }
  return ref;
}

crypto::KeyFileHeader hsm_header(const crypto::pkcs11::Reference& ref)
{
  crypto::KeyFileHeader h;
  h.hsm = true;
  h.test_key = ref.test_key;
  h.current_version = ref.current;
  return h;
}

} // namespace

namespace {

// The key file in place is init's staged one (a hard link to MASTER_KEY.init).
bool key_is_staged(const Staging& staging)
{
  struct stat k
  {
  };
  struct stat staged
  {
  };
  return ::lstat(staging.final_key.c_str(), &k) == 0 && ::lstat(staging.key.c_str(), &staged) == 0
         && k.st_dev == staged.st_dev && k.st_ino == staged.st_ino;
}

// The new key file (or, with `ref`, the reference to the token) at its staging name; an error names the
// file the user asked for, not the staging name.
crypto::Secret write_staged_key_file(const Staging& staging, const std::optional<crypto::pkcs11::Reference>& ref,
                                     const crypto::Keyring& ring, const std::optional<crypto::Secret>& pass,
                                     const crypto::KdfParams& kdf)
{
  try {
    if (ref) {
      return write_text_file(staging.key, crypto::pkcs11::encode_reference(*ref));
    }
    return crypto::write_key_file(staging.key, ring, pass ? &*pass : nullptr, kdf, crypto::Replace::no);
  } catch (const Error& e) {
    std::string message = e.message();
    for (size_t at = 0; (at = message.find(staging.key, at)) != std::string::npos; at += staging.final_key.size()) {
      message.replace(at, staging.key.size(), staging.final_key);
    }
    throw Error(e.code(), message);
  }
}

// After the commit: the staged key file replaces the old one (`replace`), or its second name goes; then
// the directory is synced and the home made private.
void place_committed_key_file(const Paths& paths, const Staging& staging, bool replace)
{
  if (replace) {
    remove_key_file_leftovers(paths.master_key); // a killed rotate's or passwd's, for the replaced file
    if (::rename(staging.key.c_str(), paths.master_key.c_str()) != 0) {
      throw Error(Exit::failure, "registry {} was replaced, but {} cannot be renamed to {}: {} (rename it by hand)",
                  paths.registry, staging.key, paths.master_key, std::strerror(errno));
    }
  } else {
    ::unlink(staging.key.c_str());
  }
  util::Fd d(::open(util::dirname(paths.master_key).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d.valid()) {
    ::fsync(d.get());
  }
  ::chmod(paths.home.c_str(), 0700);
}

// init of a PostgreSQL registry (fleetkey-postgresql(7)): no file to stage or rename; the registry's
// transaction is the commit. Under the write lock: the registry must hold no master key yet (with
// --force, Store::reset empties it in the same transaction), the key file is written under its
// staging name and linked into place, then the transaction commits. A kill before the commit leaves
// the staged key file linked and an empty registry, which the next init recognises as its own and
// clears, as on SQLite. With --force and a key file in place, the old key file stays until the
// commit and the staged one is renamed over it after: a kill before the commit leaves the old home
// whole (and MASTER_KEY.init, which the next init removes), one between the commit and the rename
// the new key file as MASTER_KEY.init, to be renamed by hand (fleetkey-postgresql(7)). With
// --pkcs11, the token gets PRK[1] before the commit, as on SQLite, and its objects are destroyed
// again if the commit does not happen.
registry::MasterKeyRecord init_postgresql(Fleet& fleet, const InitOptions& options, const Staging& staging,
                                          std::optional<crypto::Secret> seed, const crypto::KdfParams& kdf)
{
  const auto& paths = fleet.paths();
  if (!options.force && !key_is_staged(staging) && util::exists(paths.master_key)) {
    throw Error(Exit::conflict, "{} already exists (use --force to replace it and lose every key derived from it)",
                paths.master_key)
        .with_reason("exists");
  }
  std::optional<crypto::pkcs11::Uri> uri;
  if (options.pkcs11_uri) {
    uri = crypto::pkcs11::parse_uri(*options.pkcs11_uri);
    choose_object(*uri);
  }
  std::optional<crypto::Secret> pass;
  if (!options.no_passphrase && !uri) {
    pass = fleet.passphrase(Confirm::yes, "New passphrase for the master key: ");
  }
  util::make_directories(paths.home, 0700);
  struct stat home
  {
  };
  if (::stat(paths.home.c_str(), &home) != 0 || !S_ISDIR(home.st_mode)) {
    throw Error(Exit::failure, "home {} is not a directory", paths.home);
  }
  // Logged in before the registry is created or locked: a wrong PIN changes nothing.
  std::shared_ptr<crypto::pkcs11::Token> token;
  std::optional<crypto::pkcs11::Reference> ref;
  if (uri) {
    token = crypto::pkcs11::Token::open(*uri, hsm::pin_source(paths));
  }
  CreatedObjects created(token);
  auto reg = registry::Store::open(paths.registry, registry::OpenMode::create);
  registry::Transaction tx(*reg); // the write lock: one init of this registry at a time, on any machine
  if (!options.force && !reg->master_keys().empty()) {
    throw Error(Exit::conflict, "registry {} already exists (it holds master key versions)", paths.registry)
        .with_reason("exists");
  }
  const bool half_made = key_is_staged(staging);
  if (!options.force && !half_made && util::exists(paths.master_key)) {
    throw Error(Exit::conflict, "{} already exists (use --force to replace it and lose every key derived from it)",
                paths.master_key)
        .with_reason("exists");
  }
  if (options.force) {
    reg->reset();
  }
  if (half_made) {
    ::unlink(paths.master_key.c_str());
  }
  ::unlink(staging.key.c_str());
  // Replaced after the commit rather than linked before it: a key file that is not init's own.
  const bool replace_key_file = options.force && util::exists(paths.master_key);
  auto ring = std::make_unique<crypto::Keyring>(crypto::Keyring::create(util::unix_now(), std::move(seed)));
  const auto rec = record_of(ring->current(), ring->is_test_key(), "current");
  reg->insert_master_key(rec);
  reg->audit("init", "master:1",
             {{"fingerprint", rec.fingerprint}, {"test_key", rec.test_key}, {"encrypted", pass.has_value()}});
  if (uri) {
    reg->audit("master.import_to_hsm", "master",
               {{"pkcs11", uri->text()}, {"token", token->label()}, {"versions", std::vector<uint32_t>{1}}});
  }
  crypto::Secret text;
  bool linked_key_file = false;
  try {
    if (token) {
      ref = import_ring(*token, created, *uri, *ring);
    }
    text = write_staged_key_file(staging, ref, *ring, pass, kdf);
    if (!replace_key_file) {
      if (::link(staging.key.c_str(), paths.master_key.c_str()) != 0) {
        throw Error(errno == EEXIST ? Exit::conflict : Exit::failure, "cannot create {}: {}", paths.master_key,
                    std::strerror(errno));
      }
      linked_key_file = true;
    }
    tx.commit();
  } catch (...) {
    if (linked_key_file) {
      ::unlink(paths.master_key.c_str());
    }
    ::unlink(staging.key.c_str());
    throw;
  }
  created.keep();
  place_committed_key_file(paths, staging, replace_key_file);
  crypto::KeyFileHeader header{pass.has_value(), kdf, ring->is_test_key(), 1};
  if (ring->is_test_key()) {
    fleet.warn("created a TEST master key from --test-seed: never provision real devices with it");
  }
  if (ref) {
    ring = std::make_unique<crypto::Keyring>(crypto::pkcs11::reference_ring(*ref, token)); // the plaintext goes
    header = hsm_header(*ref);
  }
  fleet.reset_keyring(std::move(ring), header, std::move(pass), std::move(text));
  fleet.set_registry(std::move(reg));
  return rec;
}

} // namespace

bool initialised(Fleet& fleet)
{
  const auto& paths = fleet.paths();
  if (!util::exists(paths.master_key)) {
    return false;
  }
  if (!registry::Store::is_postgresql(paths.registry)) {
    return util::exists(paths.registry);
  }
  return !fleet.registry().master_keys().empty();
}

MasterKeyVersion init(Fleet& fleet, const InitOptions& options)
{
  const auto& paths = fleet.paths();
  const Staging staging(paths);
  std::optional<crypto::Secret> seed;
  if (options.test_seed_hex) {
    auto bytes = util::from_hex(*options.test_seed_hex);
    if (!bytes || bytes->empty() || bytes->size() > 64) {
      throw Error(Exit::usage, "--test-seed must be 1 to 64 bytes of hex");
    }
    seed = crypto::Secret::copy_of(*bytes);
    pin_clock_to_source_date_epoch(); // a test key: SOURCE_DATE_EPOCH, when set, is every time written
  }
  const auto kdf = crypto::kdf_profile(options.kdf_profile);
  check_owner(paths.home, "home");
  if (registry::Store::is_postgresql(paths.registry)) {
    return master_key_of(init_postgresql(fleet, options, staging, std::move(seed), kdf));
  }
  if (!options.force && !staging.half_made()) {
    for (const auto* p : {&paths.master_key, &paths.registry}) {
      if (util::exists(*p)) {
        throw Error(Exit::conflict, "{} already exists (use --force to replace it and lose every key derived from it)",
                    *p)
            .with_reason("exists");
      }
    }
  }
  std::optional<crypto::pkcs11::Uri> uri;
  if (options.pkcs11_uri) {
    uri = crypto::pkcs11::parse_uri(*options.pkcs11_uri);
    choose_object(*uri);
  }
  // Ask for the passphrase before anything is created, so that a refusal changes nothing.
  std::optional<crypto::Secret> pass;
  if (!options.no_passphrase && !uri) {
    pass = fleet.passphrase(Confirm::yes, "New passphrase for the master key: ");
  }
  util::make_directories(paths.home, 0700);
  struct stat home
  {
  };
  if (::stat(paths.home.c_str(), &home) != 0 || !S_ISDIR(home.st_mode)) {
    throw Error(Exit::failure, "home {} is not a directory", paths.home);
  }
  // One init at a time in a registry's directory: the staging names are fixed.
  util::Fd lock(::open(util::dirname(paths.registry).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!lock.valid()) {
    throw Error(Exit::failure, "cannot create {}: {}", paths.registry, std::strerror(errno));
  }
  if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
    throw Error(Exit::conflict, "another fleetkey init is running in {}", util::dirname(paths.registry));
  }
  // Under the lock: a killed init's leftovers go, and its key file with them if it was never committed.
  const bool half_made = staging.half_made();
  if (!options.force && !half_made && (util::exists(paths.master_key) || util::exists(paths.registry))) {
    throw Error(Exit::conflict, "{} already exists (use --force to replace it and lose every key derived from it)",
                util::exists(paths.master_key) ? paths.master_key : paths.registry)
        .with_reason("exists");
  }
  if (half_made) {
    ::unlink(paths.master_key.c_str());
  }
  ::unlink(staging.key.c_str());
  staging.clear_registry();

  const int64_t now = util::unix_now();
  auto ring = std::make_unique<crypto::Keyring>(crypto::Keyring::create(now, std::move(seed)));
  const auto rec = record_of(ring->current(), ring->is_test_key(), "current");
  // With --pkcs11, the token (logged in now, before anything changes) gets PRK[1]; the plaintext key
  // exists only in `ring`, in guarded memory, until init returns.
  std::shared_ptr<crypto::pkcs11::Token> token;
  std::optional<crypto::pkcs11::Reference> ref;
  if (uri) {
    token = crypto::pkcs11::Token::open(*uri, hsm::pin_source(paths));
  }
  CreatedObjects created(token);
  SetAside replaced;
  if (options.force) {
    for (const char* suffix : k_registry_suffixes) {
      replaced.move(paths.registry + suffix);
    }
    replaced.move(paths.master_key);
    remove_key_file_leftovers(paths.master_key); // a killed rotate's or passwd's, for the replaced file
  }
  bool linked_key_file = false;
  crypto::Secret text;
  try {
    {
      auto reg = registry::Store::open(staging.registry, registry::OpenMode::create);
      registry::Transaction tx(*reg);
      reg->insert_master_key(rec);
      reg->audit("init", "master:1",
                 {{"fingerprint", rec.fingerprint}, {"test_key", rec.test_key}, {"encrypted", pass.has_value()}});
      if (uri) {
        // As if imported at once (master import-to-hsm): the trail says where the key went.
        reg->audit("master.import_to_hsm", "master",
                   {{"pkcs11", uri->text()}, {"token", token->label()}, {"versions", std::vector<uint32_t>{1}}});
      }
      tx.commit();
      // Everything into the database file, so that it can move without its WAL.
      reg->checkpoint();
    }
    ::unlink((staging.registry + "-wal").c_str());
    ::unlink((staging.registry + "-shm").c_str());
    try {
      if (token) {
        ref = import_ring(*token, created, *uri, *ring);
        text = write_text_file(staging.key, crypto::pkcs11::encode_reference(*ref));
      } else {
        text = crypto::write_key_file(staging.key, *ring, pass ? &*pass : nullptr, kdf, crypto::Replace::no);
      }
    } catch (const Error& e) {
      // Name the file the user asked for, not the staging name.
      std::string message = e.message();
      for (size_t at = 0; (at = message.find(staging.key, at)) != std::string::npos; at += paths.master_key.size()) {
        message.replace(at, staging.key.size(), paths.master_key);
      }
      throw Error(e.code(), message);
    }
    if (::link(staging.key.c_str(), paths.master_key.c_str()) != 0) {
      throw Error(errno == EEXIST ? Exit::conflict : Exit::failure, "cannot create {}: {}", paths.master_key,
                  std::strerror(errno));
    }
    linked_key_file = true;
    if (!rename_no_replace(staging.registry, paths.registry)) {
      throw Error(errno == EEXIST ? Exit::conflict : Exit::failure, "cannot create {}: {}", paths.registry,
                  std::strerror(errno));
    }
  } catch (...) {
    if (linked_key_file) {
      ::unlink(paths.master_key.c_str());
    }
    ::unlink(staging.key.c_str());
    staging.clear_registry();
    replaced.restore();
    throw;
  }
  // Committed: the registry is in place. The staging name of the key file goes (a kill before this
  // leaves a second link to the key file, which the next command removes).
  ::unlink(staging.key.c_str());
  for (const auto& dir : {util::dirname(paths.registry), util::dirname(paths.master_key)}) {
    util::Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (d.valid()) {
      ::fsync(d.get());
    }
  }
  replaced.drop();
  created.keep();
  ::chmod(paths.home.c_str(), 0700); // an existing home too: it holds the key file
  crypto::KeyFileHeader header{pass.has_value(), kdf, ring->is_test_key(), 1};
  if (ring->is_test_key()) {
    fleet.warn("created a TEST master key from --test-seed: never provision real devices with it");
  }
  if (ref) {
    ring = std::make_unique<crypto::Keyring>(crypto::pkcs11::reference_ring(*ref, token)); // the plaintext goes
    header = hsm_header(*ref);
  }
  fleet.reset_keyring(std::move(ring), header, std::move(pass), std::move(text));
  fleet.set_registry(registry::Store::open(paths.registry, registry::OpenMode::existing));
  return master_key_of(rec);
}

std::vector<MasterKeyVersion> list_master_keys(Fleet& fleet)
{
  std::vector<MasterKeyVersion> out;
  for (const auto& r : fleet.registry().master_keys()) {
    out.push_back(master_key_of(r));
  }
  return out;
}

namespace {

// rotate on an HSM home: MK[v+1] is made in guarded memory, its PRK imported into the token (a label a
// killed rotate left there, never recorded, is destroyed first), and the reference gains the version.
MasterKeyVersion rotate_in_hsm(Fleet& fleet)
{
  auto& reg = fleet.registry();
  const auto& ring = fleet.keyring();
  const auto token = hsm::token_of(ring);
  auto ref = crypto::pkcs11::decode_reference(crypto::as_text(fleet.key_file_text()));
  const auto uri = crypto::pkcs11::parse_uri(ref.uri);
  const uint32_t next = ref.versions.back().version + 1;
  const int64_t now = util::unix_now();
  crypto::MasterKey mk;
  if (ref.test_key) {
    // MK[v] of a test key comes from its seed, as in a key file (fleetkey-formats(5), TEST KEYS).
    const auto seed = util::from_hex(ref.test_seed_hex);
    auto seeded = crypto::Keyring::create(now, crypto::Secret::copy_of(*seed));
    while (seeded.current_version() < next) {
      seeded.rotate(now);
    }
    mk.key = crypto::Secret::copy_of(seeded.current().key.span());
  } else {
    mk.key = crypto::Secret::random(crypto::k_key_len);
  }
  mk.version = next;
  mk.created = now;
  const auto rec = record_of(mk, ref.test_key, "current");
  const auto label = crypto::pkcs11::object_label(uri.object, next);
  registry::Transaction tx(reg);
  check_unchanged_key_file(fleet);
  token->destroy(label);
  CreatedObjects created(token);
  ref.versions.push_back(import_version(*token, created, label, mk));
  ref.current = next;
  reg.insert_master_key(rec);
  reg.set_current_master_key(rec.version);
  reg.audit("master.rotate", fmt::format("master:{}", rec.version), {{"fingerprint", rec.fingerprint}});
  auto text = write_and_commit(fleet, tx,
                               [&](const std::string& path) { return write_text_file(path, encode_reference(ref)); });
  created.keep();
  fleet.reset_keyring(std::make_unique<crypto::Keyring>(crypto::pkcs11::reference_ring(ref, token)), hsm_header(ref),
                      std::nullopt, std::move(text));
  return master_key_of(rec);
}

} // namespace

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

HsmImport import_to_hsm(Fleet& fleet, const std::string& uri_text)
{
  auto uri = crypto::pkcs11::parse_uri(uri_text);
  choose_object(uri);
  if (hsm::key_file_in_hsm(fleet.paths().master_key)) {
    throw Error(Exit::conflict, "the master key of {} is in a PKCS#11 token already", fleet.paths().home);
  }
  auto& reg = fleet.registry();
  const auto& ring = fleet.keyring(); // asks for the passphrase
  const auto token = crypto::pkcs11::Token::open(uri, hsm::pin_source(fleet.paths()));
  CreatedObjects created(token);
  registry::Transaction tx(reg);
  check_unchanged_key_file(fleet);
  auto ref = import_ring(*token, created, uri, ring);
  HsmImport out{ref.uri, token->label(), {}};
  for (const auto& v : ref.versions) {
    out.versions.push_back(v.version);
  }
  reg.audit("master.import_to_hsm", "master", {{"pkcs11", ref.uri}, {"token", out.token}, {"versions", out.versions}});
  auto text = write_and_commit(
      fleet, tx, [&](const std::string& path) { return write_text_file(path, crypto::pkcs11::encode_reference(ref)); });
  created.keep();
  fleet.reset_keyring(std::make_unique<crypto::Keyring>(crypto::pkcs11::reference_ring(ref, token)), hsm_header(ref),
                      std::nullopt, std::move(text));
  return out;
}

} // namespace fleetkey::fleet
