// init: the home's first master key version and registry, on SQLite (staged files renamed into place)
// and on PostgreSQL (the transaction is the commit), with the steps the two share. About 500 lines on
// purpose: the crash-safe sequences of both backends, their staging names and what a killed init (or
// init --force) leaves are read and changed together (fleetkey(1), init; fleetkey-postgresql(7)).
#include "fleet/convert.hpp"
#include "fleet/master_steps.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/core/file_error.hpp>
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

  // The key file in place is the staged one (a hard link to it).
  bool key_is_staged() const
  {
    struct stat k
    {
    };
    struct stat staged
    {
    };
    return ::lstat(final_key.c_str(), &k) == 0 && ::lstat(key.c_str(), &staged) == 0 && k.st_dev == staged.st_dev
           && k.st_ino == staged.st_ino;
  }
  // A killed init's: the key file in place is the staged one and no registry.
  bool half_made() const { return !util::exists(final_registry) && key_is_staged(); }
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

// The refusal to replace an existing registry or key file without --force.
Error already_exists(const std::string& path)
{
  return Error(Exit::conflict, "{} already exists (use --force to replace it and lose every key derived from it)", path)
      .with_reason("exists");
}

// --test-seed's bytes; a test key also pins every time written to SOURCE_DATE_EPOCH, when set.
std::optional<crypto::Secret> test_seed(const InitOptions& options)
{
  if (!options.test_seed_hex) {
    return std::nullopt;
  }
  auto bytes = util::from_hex(*options.test_seed_hex);
  if (!bytes || bytes->empty() || bytes->size() > 64) {
    throw Error(Exit::usage, "--test-seed must be 1 to 64 bytes of hex");
  }
  pin_clock_to_source_date_epoch();
  return crypto::Secret::copy_of(*bytes);
}

// The home, made 0700 where missing; what is there must be a directory.
void make_home(const std::string& home)
{
  util::make_directories(home, 0700);
  struct stat st
  {
  };
  if (::stat(home.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw Error(Exit::failure, "home {} is not a directory", home);
  }
}

// One init at a time in a registry's directory (the staging names are fixed): its flock, held while
// the returned descriptor is open.
util::Fd lock_registry_directory(const std::string& registry)
{
  util::Fd lock(::open(util::dirname(registry).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!lock.valid()) {
    throw Error(Exit::failure, "cannot create {}: {}", registry, std::strerror(errno));
  }
  if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
    throw Error(Exit::conflict, "another fleetkey init is running in {}", util::dirname(registry));
  }
  return lock;
}

// Under the lock: a killed init's leftovers go, and its key file with them if it was never committed.
void clear_killed_init(const Staging& staging, bool force)
{
  const bool half_made = staging.half_made();
  if (!force && !half_made && (util::exists(staging.final_key) || util::exists(staging.final_registry))) {
    throw already_exists(util::exists(staging.final_key) ? staging.final_key : staging.final_registry);
  }
  if (half_made) {
    ::unlink(staging.final_key.c_str());
  }
  ::unlink(staging.key.c_str());
  staging.clear_registry();
}

// init --force: the registry (with its WAL and journal) and the key file are moved aside, and a
// killed rotate's or passwd's leftovers of the replaced key file removed.
void set_aside_home(SetAside& replaced, const Paths& paths)
{
  for (const char* suffix : k_registry_suffixes) {
    replaced.move(paths.registry + suffix);
  }
  replaced.move(paths.master_key);
  remove_key_file_leftovers(paths.master_key);
}

// The new registry under its staging name: master key version 1 and init's audit row (with a token,
// also master.import_to_hsm's, as if imported at once: the trail says where the key went), checkpointed
// into the database file so that it can move without its WAL.
void stage_registry(const Staging& staging, const registry::MasterKeyRecord& rec, bool encrypted,
                    const crypto::pkcs11::Uri* uri, const crypto::pkcs11::Token* token)
{
  {
    auto reg = registry::Store::open(staging.registry, registry::OpenMode::create);
    registry::Transaction tx(*reg);
    reg->insert_master_key(rec);
    reg->audit("init", "master:1",
               {{"fingerprint", rec.fingerprint}, {"test_key", rec.test_key}, {"encrypted", encrypted}});
    if (token != nullptr) {
      reg->audit("master.import_to_hsm", "master",
                 {{"pkcs11", uri->text()}, {"token", token->label()}, {"versions", std::vector<uint32_t>{1}}});
    }
    tx.commit();
    reg->checkpoint();
  }
  ::unlink((staging.registry + "-wal").c_str());
  ::unlink((staging.registry + "-shm").c_str());
}

// The new key file under its staging name: `ring` encrypted under `pass`, or with a token the reference
// to the versions imported into it (returned in `ref`). Its errors name the file the user asked for, not
// the staging name.
crypto::Secret stage_key_file(const Staging& staging, const crypto::Keyring& ring, const crypto::Secret* pass,
                              const crypto::KdfParams& kdf, crypto::pkcs11::Token* token,
                              const crypto::pkcs11::Uri* uri, CreatedObjects& created,
                              std::optional<crypto::pkcs11::Reference>& ref)
{
  try {
    try {
      if (token != nullptr) {
        ref = import_ring(*token, created, *uri, ring);
        return write_text_file(staging.key, crypto::pkcs11::encode_reference(*ref));
      }
      return crypto::write_key_file(staging.key, ring, pass, kdf, crypto::Replace::no);
    } catch (const util::FileError& e) {
      throw file_error(e); // as main would report it, with the staging name replaced below
    }
  } catch (const Error& e) {
    std::string message = e.message();
    for (size_t at = 0; (at = message.find(staging.key, at)) != std::string::npos; at += staging.final_key.size()) {
      message.replace(at, staging.key.size(), staging.final_key);
    }
    throw Error(e.code(), message);
  }
}

// The commit: the staged key file linked into place, then the staged registry renamed into place (it
// appearing is the commit). `linked` tells the caller's clean-up whether the link was made.
void put_in_place(const Staging& staging, bool& linked)
{
  if (::link(staging.key.c_str(), staging.final_key.c_str()) != 0) {
    throw Error(errno == EEXIST ? Exit::conflict : Exit::failure, "cannot create {}: {}", staging.final_key,
                std::strerror(errno));
  }
  linked = true;
  if (!rename_no_replace(staging.registry, staging.final_registry)) {
    throw Error(errno == EEXIST ? Exit::conflict : Exit::failure, "cannot create {}: {}", staging.final_registry,
                std::strerror(errno));
  }
}

// The token that --pkcs11 names, its object chosen; nullopt without --pkcs11.
std::optional<crypto::pkcs11::Uri> pkcs11_uri(const InitOptions& options)
{
  std::optional<crypto::pkcs11::Uri> uri;
  if (options.pkcs11_uri) {
    uri = crypto::pkcs11::parse_uri(*options.pkcs11_uri);
    choose_object(*uri);
  }
  return uri;
}

// After the commit: the new key ring becomes the fleet's (with a token, the ring of references to it:
// the plaintext goes), with the header of the key file just written.
void adopt_ring(Fleet& fleet, std::unique_ptr<crypto::Keyring> ring,
                const std::optional<crypto::pkcs11::Reference>& ref,
                const std::shared_ptr<crypto::pkcs11::Token>& token, std::optional<crypto::Secret> pass,
                const crypto::KdfParams& kdf, crypto::Secret text)
{
  crypto::KeyFileHeader header{pass.has_value(), kdf, ring->is_test_key(), 1};
  if (ring->is_test_key()) {
    fleet.warn("created a TEST master key from --test-seed: never provision real devices with it");
  }
  if (ref) {
    ring = std::make_unique<crypto::Keyring>(crypto::pkcs11::reference_ring(*ref, token)); // the plaintext goes
    header = hsm_header(*ref);
  }
  fleet.reset_keyring(std::move(ring), header, std::move(pass), std::move(text));
}

// After a PostgreSQL init's commit: the staged key file replaces the old one (`replace`, init --force
// over a key file of its own) or its second name goes; then the directory is synced and the home made
// private.
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
  sync_directory(util::dirname(paths.master_key));
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
  if (!options.force && !staging.key_is_staged() && util::exists(paths.master_key)) {
    throw already_exists(paths.master_key);
  }
  auto uri = pkcs11_uri(options);
  std::optional<crypto::Secret> pass;
  if (!options.no_passphrase && !uri) {
    pass = fleet.passphrase(Confirm::yes, "New passphrase for the master key: ");
  }
  make_home(paths.home);
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
  const bool half_made = staging.key_is_staged();
  if (!options.force && !half_made && util::exists(paths.master_key)) {
    throw already_exists(paths.master_key);
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
    text =
        stage_key_file(staging, *ring, pass ? &*pass : nullptr, kdf, token.get(), uri ? &*uri : nullptr, created, ref);
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
  adopt_ring(fleet, std::move(ring), ref, token, std::move(pass), kdf, std::move(text));
  fleet.set_registry(std::move(reg));
  return rec;
}

// init of an SQLite registry: the registry and the key file built under their staging names, then the
// key file linked and the registry renamed into place (see Staging).
registry::MasterKeyRecord init_sqlite(Fleet& fleet, const InitOptions& options, const Staging& staging,
                                      std::optional<crypto::Secret> seed, const crypto::KdfParams& kdf)
{
  const auto& paths = fleet.paths();
  if (!options.force && !staging.half_made()) {
    for (const auto* p : {&paths.master_key, &paths.registry}) {
      if (util::exists(*p)) {
        throw already_exists(*p);
      }
    }
  }
  auto uri = pkcs11_uri(options);
  // Ask for the passphrase before anything is created, so that a refusal changes nothing.
  std::optional<crypto::Secret> pass;
  if (!options.no_passphrase && !uri) {
    pass = fleet.passphrase(Confirm::yes, "New passphrase for the master key: ");
  }
  make_home(paths.home);
  const util::Fd lock = lock_registry_directory(paths.registry);
  clear_killed_init(staging, options.force);

  auto ring = std::make_unique<crypto::Keyring>(crypto::Keyring::create(util::unix_now(), std::move(seed)));
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
    set_aside_home(replaced, paths);
  }
  bool linked_key_file = false;
  crypto::Secret text;
  try {
    stage_registry(staging, rec, pass.has_value(), uri ? &*uri : nullptr, token.get());
    text =
        stage_key_file(staging, *ring, pass ? &*pass : nullptr, kdf, token.get(), uri ? &*uri : nullptr, created, ref);
    put_in_place(staging, linked_key_file);
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
  sync_directory(util::dirname(paths.registry));
  sync_directory(util::dirname(paths.master_key));
  replaced.drop();
  created.keep();
  ::chmod(paths.home.c_str(), 0700); // an existing home too: it holds the key file
  adopt_ring(fleet, std::move(ring), ref, token, std::move(pass), kdf, std::move(text));
  fleet.set_registry(registry::Store::open(paths.registry, registry::OpenMode::existing));
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
  auto seed = test_seed(options);
  const auto kdf = crypto::kdf_profile(options.kdf_profile);
  check_owner(paths.home, "home");
  if (registry::Store::is_postgresql(paths.registry)) {
    return master_key_of(init_postgresql(fleet, options, staging, std::move(seed), kdf));
  }
  return master_key_of(init_sqlite(fleet, options, staging, std::move(seed), kdf));
}

} // namespace fleetkey::fleet
