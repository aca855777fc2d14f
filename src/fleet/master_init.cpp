#include "fleet/convert.hpp"
#include "fleet/master_steps.hpp"

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
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fleetkey::fleet {

namespace {

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

// init of a PostgreSQL registry (fleetkey-postgresql(7)): no file to stage or rename; the registry's
// transaction is the commit. Under the write lock: the registry must hold no master key yet, the key
// file is written under its staging name and linked into place, then the transaction commits. A kill
// before the commit leaves the staged key file linked and an empty registry, which the next init
// recognises as its own and clears, as on SQLite.
registry::MasterKeyRecord init_postgresql(Fleet& fleet, const InitOptions& options, const Staging& staging,
                                          std::optional<crypto::Secret> seed, const crypto::KdfParams& kdf)
{
  const auto& paths = fleet.paths();
  if (options.force) {
    throw Error(Exit::usage, "init --force does not replace a PostgreSQL registry ({}): use a new database",
                paths.registry);
  }
  const auto key_is_staged = [&] {
    struct stat k
    {
    };
    struct stat staged
    {
    };
    return ::lstat(paths.master_key.c_str(), &k) == 0 && ::lstat(staging.key.c_str(), &staged) == 0
           && k.st_dev == staged.st_dev && k.st_ino == staged.st_ino;
  };
  if (!key_is_staged() && util::exists(paths.master_key)) {
    throw Error(Exit::conflict, "{} already exists (use --force to replace it and lose every key derived from it)",
                paths.master_key)
        .with_reason("exists");
  }
  std::optional<crypto::Secret> pass;
  if (!options.no_passphrase) {
    pass = fleet.passphrase(Confirm::yes, "New passphrase for the master key: ");
  }
  util::make_directories(paths.home, 0700);
  struct stat home
  {
  };
  if (::stat(paths.home.c_str(), &home) != 0 || !S_ISDIR(home.st_mode)) {
    throw Error(Exit::failure, "home {} is not a directory", paths.home);
  }
  auto reg = registry::Store::open(paths.registry, registry::OpenMode::create);
  registry::Transaction tx(*reg); // the write lock: one init of this registry at a time, on any machine
  if (!reg->master_keys().empty()) {
    throw Error(Exit::conflict, "registry {} already exists (it holds master key versions)", paths.registry)
        .with_reason("exists");
  }
  const bool half_made = key_is_staged();
  if (!half_made && util::exists(paths.master_key)) {
    throw Error(Exit::conflict, "{} already exists (use --force to replace it and lose every key derived from it)",
                paths.master_key)
        .with_reason("exists");
  }
  if (half_made) {
    ::unlink(paths.master_key.c_str());
  }
  ::unlink(staging.key.c_str());
  auto ring = std::make_unique<crypto::Keyring>(crypto::Keyring::create(util::unix_now(), std::move(seed)));
  const auto rec = record_of(ring->current(), ring->is_test_key(), "current");
  reg->insert_master_key(rec);
  reg->audit("init", "master:1",
             {{"fingerprint", rec.fingerprint}, {"test_key", rec.test_key}, {"encrypted", pass.has_value()}});
  crypto::Secret text;
  bool linked_key_file = false;
  try {
    text = crypto::write_key_file(staging.key, *ring, pass ? &*pass : nullptr, kdf, crypto::Replace::no);
    if (::link(staging.key.c_str(), paths.master_key.c_str()) != 0) {
      throw Error(errno == EEXIST ? Exit::conflict : Exit::failure, "cannot create {}: {}", paths.master_key,
                  std::strerror(errno));
    }
    linked_key_file = true;
    tx.commit();
  } catch (...) {
    if (linked_key_file) {
      ::unlink(paths.master_key.c_str());
    }
    ::unlink(staging.key.c_str());
    throw;
  }
  ::unlink(staging.key.c_str());
  util::Fd d(::open(util::dirname(paths.master_key).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d.valid()) {
    ::fsync(d.get());
  }
  ::chmod(paths.home.c_str(), 0700);
  crypto::KeyFileHeader header{pass.has_value(), kdf, ring->is_test_key(), 1};
  if (ring->is_test_key()) {
    fleet.warn("created a TEST master key from --test-seed: never provision real devices with it");
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
    if (options.pkcs11_uri) {
      throw Error(Exit::usage, "init --pkcs11 with a PostgreSQL registry is not supported yet: run init, then "
                               "fleetkey master import-to-hsm URI");
    }
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

} // namespace fleetkey::fleet
