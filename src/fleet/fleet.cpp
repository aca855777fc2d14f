// The Fleet context every command runs in: the home and its paths, the registry opened on first
// use, the master key file (settling a half-written one, the passphrase, the key ring) and held
// commits. A little over 400 lines: the key file's settling and the key ring's loading share the
// context's state and are read together.
#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/fleet/agent.hpp>
#include <fleetkey/fleet/fleet.hpp>
#include <fleetkey/fleet/hsm.hpp>
#include <fleetkey/util/file.hpp>
#include <fleetkey/util/text.hpp>

#include <sodium.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <memory>
#include <sys/stat.h>
#include <unistd.h>

namespace fleetkey::fleet {

namespace {

std::optional<std::string> env(const char* name)
{
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    return std::nullopt;
  }
  return std::string(v);
}

// The key file does not match the registry: an error, unless a rotate is half-way (see keyring()).
class KeyFileMismatch : public std::runtime_error
{
public:
  using std::runtime_error::runtime_error;
};

} // namespace

void check_owner(const std::string& path, std::string_view what)
{
  struct stat st
  {
  };
  if (::stat(path.c_str(), &st) != 0) {
    return; // a missing file is reported by whoever needs it
  }
  if (auto message = util::foreign_owner(st, what, path)) {
    throw Error(Exit::registry, "{}", *message);
  }
}

Paths resolve_paths(const Options& options)
{
  for (const auto& [value, name] : {std::pair{&options.home, "--home"}, std::pair{&options.registry, "--registry"},
                                    std::pair{&options.master_key, "--master-key"}}) {
    if (*value && (*value)->empty()) {
      throw Error(Exit::usage, "{} must not be empty", name);
    }
  }
  Paths p;
  if (options.home) {
    p.home = *options.home;
  } else if (auto h = env("FLEETKEY_HOME")) {
    p.home = *h;
  } else if (auto xdg = env("XDG_DATA_HOME"); xdg && xdg->front() == '/') {
    // A relative XDG_DATA_HOME is to be ignored (XDG Base Directory Specification).
    p.home = *xdg + "/fleetkey";
  } else if (auto home = env("HOME")) {
    p.home = *home + "/.local/share/fleetkey";
  } else {
    throw Error(Exit::usage, "cannot find a home for fleetkey: set --home, FLEETKEY_HOME or HOME");
  }
  p.registry = options.registry.value_or(env("FLEETKEY_REGISTRY").value_or(p.home + "/registry.db"));
  p.master_key = options.master_key.value_or(env("FLEETKEY_MASTER_KEY").value_or(p.home + "/master.key"));
  p.passphrase_file = options.passphrase_file ? options.passphrase_file : env("FLEETKEY_PASSPHRASE_FILE");
  p.pin_file = options.pin_file ? options.pin_file : env("FLEETKEY_PKCS11_PIN_FILE");
  return p;
}

Fleet::Fleet(Options options, Warn warn)
    : m_paths(resolve_paths(options))
    , m_warn(std::move(warn))
{
}

Fleet::~Fleet() = default;

registry::Store& Fleet::registry()
{
  if (!m_registry) {
    // Like ssh with its keys: what another user could have written is not trusted.
    check_owner(m_paths.home, "home");
    check_owner(m_paths.registry, "registry");
    m_registry = registry::Store::open(m_paths.registry, registry::OpenMode::existing);
    // A registry of test keys only: SOURCE_DATE_EPOCH, when set, is every time written (fixtures).
    if (const char* sde = std::getenv("SOURCE_DATE_EPOCH"); sde != nullptr && *sde != '\0') {
      const auto keys = m_registry->master_keys();
      if (!keys.empty() && std::all_of(keys.begin(), keys.end(), [](const auto& k) { return k.test_key; })) {
        pin_clock_to_source_date_epoch();
      }
    }
    if (m_hold) {
      m_registry->hold_commits();
    }
    // An init killed after its commit leaves a second name for the key file (MASTER_KEY.init, see
    // fleet::init); it is ours to remove once the registry is in place.
    const std::string staged = m_paths.master_key + ".init";
    struct stat key
    {
    };
    struct stat link
    {
    };
    if (::lstat(staged.c_str(), &link) == 0 && ::lstat(m_paths.master_key.c_str(), &key) == 0
        && key.st_ino == link.st_ino && key.st_dev == link.st_dev) {
      ::unlink(staged.c_str());
    }
  }
  return *m_registry;
}

void Fleet::set_registry(std::unique_ptr<registry::Store> reg)
{
  m_registry = std::move(reg);
}

void Fleet::hold_commits()
{
  m_hold = true;
  if (m_registry) {
    m_registry->hold_commits();
  }
}

void Fleet::commit_held()
{
  if (m_registry) {
    m_registry->commit_held();
  }
}

std::string key_file_target(const std::string& path)
{
  struct stat st
  {
  };
  if (::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
    std::unique_ptr<char, decltype(&std::free)> real(::realpath(path.c_str(), nullptr), &std::free);
    if (real) {
      return real.get();
    }
  }
  return path;
}

namespace {

// What a killed writer of the key file `target` can leave beside it: TARGET.pending-ID (complete, named
// after the audit row of its change) and temporary names (TARGET.tmp.HEX, a pending file's own).
struct Leftovers
{
  std::vector<std::pair<int64_t, std::string>> pending;
  std::vector<std::string> temporary;
  bool empty() const { return pending.empty() && temporary.empty(); }
};

Leftovers find_leftovers(const std::string& target)
{
  Leftovers out;
  const auto slash = target.find_last_of('/');
  const std::string dir = util::dirname(target);
  const std::string base = slash == std::string::npos ? target : target.substr(slash + 1);
  const std::string prefix = dir == "/" ? "/" : dir + "/";
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), &::closedir);
  if (!d) {
    return out;
  }
  while (const dirent* e = ::readdir(d.get())) {
    const std::string_view name = e->d_name;
    if (name.size() <= base.size() || name.substr(0, base.size()) != base) {
      continue;
    }
    const std::string_view rest = name.substr(base.size());
    if (rest.starts_with(".pending-")) {
      const auto digits = rest.substr(9);
      int64_t id = 0;
      const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), id);
      if (ec == std::errc() && end == digits.data() + digits.size() && !digits.empty()) {
        out.pending.emplace_back(id, prefix + std::string(name));
      } else {
        out.temporary.push_back(prefix + std::string(name));
      }
    } else if (rest.starts_with(".tmp.")) {
      out.temporary.push_back(prefix + std::string(name));
    }
  }
  std::sort(out.pending.begin(), out.pending.end());
  return out;
}

} // namespace

void remove_key_file_leftovers(const std::string& path)
{
  const auto found = find_leftovers(key_file_target(path));
  for (const auto& [id, name] : found.pending) {
    ::unlink(name.c_str());
  }
  for (const auto& name : found.temporary) {
    ::unlink(name.c_str());
  }
}

bool Fleet::settle_key_file(bool wait)
{
  const auto target = key_file_target(m_paths.master_key);
  if (!wait && find_leftovers(target).empty()) {
    return false;
  }
  auto& reg = registry();
  // Under the registry's write lock (taken here, or already held by the caller), every writer of the
  // key file has either committed its change or died before: a pending file whose audit row exists is
  // the committed key file, any other leftover is the debris of a change that never happened.
  std::optional<registry::Transaction> tx;
  if (!reg.in_transaction()) {
    tx.emplace(reg);
  }
  const auto found = find_leftovers(target);
  bool changed = false;
  for (const auto& [id, name] : found.pending) {
    const auto action = reg.audit_action(id);
    const bool committed =
        action && (*action == "master.passwd" || *action == "master.rotate" || *action == "master.import_to_hsm");
    if (committed) {
      if (::rename(name.c_str(), target.c_str()) != 0 && errno != ENOENT) {
        throw Error(Exit::failure, "cannot replace {}: {}", target, std::strerror(errno));
      }
      changed = true;
    } else {
      ::unlink(name.c_str());
    }
  }
  for (const auto& name : found.temporary) {
    ::unlink(name.c_str());
  }
  if (changed) {
    util::Fd dir(::open(util::dirname(target).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.valid()) {
      ::fsync(dir.get());
    }
  }
  return changed;
}

const crypto::Keyring& Fleet::keyring()
{
  if (m_keyring) {
    return *m_keyring;
  }
  settle_key_file(false);
  // A rotate or passwd commits the registry, then renames its key file into place: a command that read
  // the old file and the new registry in between waits for the lock, settles the rename and reads again.
  for (int attempt = 1;; ++attempt) {
    try {
      return load_keyring();
    } catch (const KeyFileMismatch& e) {
      if (attempt == 2) {
        throw Error(Exit::key, "{}", e.what());
      }
      try {
        settle_key_file(true); // waits for a writer that has committed to finish, or renames for it
      } catch (const Error&) {
        throw Error(Exit::key, "{}", e.what()); // a registry this user cannot lock: the mismatch is the news
      } catch (const util::FileError&) {
        throw Error(Exit::key, "{}", e.what()); // a rename that failed: the mismatch is still the news
      }
    }
  }
}

// The key file decrypted with the passphrase of --passphrase-file, the environment or the prompt. A
// passphrase typed at the prompt gets k_prompt_attempts tries, as ssh gives; one from a file or the
// environment gets one. `used` keeps the passphrase that opened it.
std::unique_ptr<crypto::Keyring> Fleet::read_key_file_prompting(crypto::KeyFileHeader& header, crypto::Secret& text,
                                                                std::optional<crypto::Secret>& used)
{
  constexpr int k_prompt_attempts = 3;
  std::unique_ptr<crypto::Keyring> ring;
  for (int attempt = 1; !ring; ++attempt) {
    bool prompted = false;
    try {
      ring = std::make_unique<crypto::Keyring>(crypto::read_key_file(
          m_paths.master_key,
          [this, &used, &prompted] {
            const char* env = std::getenv("FLEETKEY_PASSPHRASE");
            prompted = !m_passphrase && !m_paths.passphrase_file && (env == nullptr || *env == '\0');
            auto pass = m_passphrase ? crypto::Secret::copy_of(m_passphrase->span()) : passphrase(Confirm::no);
            used = crypto::Secret::copy_of(pass.span());
            return pass;
          },
          &header, &text));
    } catch (const Error& e) {
      // After the passphrase was asked for, the only key error is a failed decryption.
      if (!prompted || !used || e.code() != Exit::key || attempt == k_prompt_attempts) {
        throw;
      }
      used.reset();
      warn(fmt::format("wrong passphrase, try again ({} of {})", attempt + 1, k_prompt_attempts));
    }
  }
  return ring;
}

const crypto::Keyring& Fleet::load_keyring()
{
  auto& reg = registry();
  crypto::KeyFileHeader header;
  // Kept once it has opened the file, so that rotate and passwd never ask for it again.
  std::optional<crypto::Secret> used;
  crypto::Secret text;
  // The key ring must be the one this registry was made with, version by version: empty if so.
  auto records = reg.master_keys();
  const auto mismatch = [&records](const crypto::Keyring& r) -> std::string {
    for (const auto& rec : records) {
      const crypto::MasterKey* mk = nullptr;
      for (const auto& k : r.versions()) {
        if (k.version == rec.version) {
          mk = &k;
        }
      }
      if (mk == nullptr || mk->fingerprint() != rec.fingerprint) {
        return fmt::format("version {} {}", rec.version, mk == nullptr ? "is missing" : "has another fingerprint");
      }
    }
    return {};
  };
  std::unique_ptr<crypto::Keyring> ring;
  if (!m_key_file_only) {
    if (auto held = agent::connect_ring(m_warn)) {
      if (const auto why = mismatch(*held); why.empty()) {
        ring = std::make_unique<crypto::Keyring>(std::move(*held));
      } else {
        warn(fmt::format("the agent at {} holds the master key of another registry than {} ({}): using the master "
                         "key file",
                         std::getenv("FLEETKEY_AGENT"), m_paths.registry, why));
      }
    }
  }
  if (!ring && hsm::key_file_in_hsm(m_paths.master_key)) {
    // The master key is in a PKCS#11 token: the key file is a reference to it (fleet/hsm.hpp).
    text = crypto::read_private_file(m_paths.master_key, "master key file", crypto::k_max_secret_file, true);
    ring = hsm::load_ring(m_paths, crypto::as_text(text));
    header.hsm = true;
    header.test_key = ring->is_test_key();
    header.current_version = ring->current_version();
  }
  if (!ring) {
    ring = read_key_file_prompting(header, text, used);
  }
  if (const auto why = mismatch(*ring); !why.empty()) {
    if (!used && m_passphrase) {
      used = crypto::Secret::copy_of(m_passphrase->span());
    }
    m_passphrase = std::move(used); // not asked for again
    throw KeyFileMismatch(fmt::format("master key file {} does not belong to registry {} ({})", m_paths.master_key,
                                      m_paths.registry, why));
  }
  // The registry was read before the file: a rotate that committed and renamed its file in between
  // shows as a file ahead of the registry (a wider window on PostgreSQL). Read the registry again.
  if (std::none_of(records.begin(), records.end(), [&ring](const registry::MasterKeyRecord& rec) {
        return rec.status == "current" && rec.version == ring->current_version();
      })) {
    auto again = reg.master_keys();
    records.swap(again);
    if (!mismatch(*ring).empty()) {
      records.swap(again); // keep the records the ring was checked against
    }
  }
  // The registry says which version is current. The file may name a newer one that the registry
  // never recorded (a rotate interrupted between writing the file and committing the registry, or
  // a registry restored from a backup): that version is kept in the file but never used.
  for (const auto& rec : records) {
    if (rec.status == "current" && rec.version != ring->current_version()) {
      warn(fmt::format("master key file {} makes version {} current but registry {} says version {}: using version "
                       "{} (run fleetkey master rotate to settle it)",
                       m_paths.master_key, ring->current_version(), m_paths.registry, rec.version, rec.version));
      ring->make_current(rec.version);
    }
  }
  if (ring->is_test_key() && !std::exchange(m_warned_test_key, true)) {
    warn("using a TEST master key (made with --test-seed): its keys are reproducible by anyone with the seed; never "
         "provision real devices with it");
  }
  m_header = header;
  m_keyring = std::move(ring);
  m_passphrase = std::move(used);
  m_key_file_text = std::move(text);
  return *m_keyring;
}

const crypto::MasterKey& Fleet::current_master_key()
{
  const auto& ring = keyring();
  for (const auto& rec : registry().master_keys()) {
    if (rec.status == "current" && rec.version != ring.current_version()) {
      // Rotated since the key file was read: read it again (under the caller's lock, settling the rotate).
      m_keyring.reset();
      return keyring().get(rec.version);
    }
  }
  return ring.current();
}

const crypto::Secret* Fleet::key_file_passphrase()
{
  keyring();
  if (m_header.encrypted != m_passphrase.has_value()) {
    throw Error(Exit::failure, "internal error: the passphrase of {} is not known", m_paths.master_key);
  }
  return m_passphrase ? &*m_passphrase : nullptr;
}

const crypto::KeyFileHeader& Fleet::key_file_header()
{
  keyring();
  return m_header;
}

const crypto::MasterKey& Fleet::master_key(uint32_t version)
{
  const auto rec = registry().master_key(version);
  if (!rec) {
    throw Error(Exit::not_found, "master key version {} is not in the registry", version);
  }
  if (rec->status == "retired") {
    throw Error(Exit::key, "master key version {} is retired", version);
  }
  return keyring().get(version);
}

void Fleet::reset_keyring(std::unique_ptr<crypto::Keyring> ring, crypto::KeyFileHeader header,
                          std::optional<crypto::Secret> passphrase, crypto::Secret text)
{
  m_keyring = std::move(ring);
  reset_key_file(header, std::move(passphrase), std::move(text));
}

void Fleet::reset_key_file(crypto::KeyFileHeader header, std::optional<crypto::Secret> passphrase, crypto::Secret text)
{
  m_header = header;
  m_passphrase = std::move(passphrase);
  m_key_file_text = std::move(text);
}

const crypto::Secret& Fleet::key_file_text()
{
  keyring();
  return m_key_file_text;
}

void pin_clock_to_source_date_epoch()
{
  const char* env = std::getenv("SOURCE_DATE_EPOCH");
  if (env == nullptr || *env == '\0') {
    return;
  }
  const std::string_view v(env);
  int64_t t = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), t);
  if (ec != std::errc() || end != v.data() + v.size() || t < util::k_min_time || t > util::k_max_time) {
    throw Error(Exit::usage, "SOURCE_DATE_EPOCH must be a number of seconds since 1970-01-01T00:00:00Z (got \"{}\")",
                v);
  }
  util::pin_clock(t);
}

crypto::Secret read_passphrase_file(const std::string& path)
{
  auto secret = crypto::read_private_line(path, "passphrase file");
  if (secret.empty()) {
    throw Error(Exit::key, "passphrase file {} holds an empty passphrase", path);
  }
  return secret;
}

crypto::Secret Fleet::passphrase(Confirm confirm, const char* prompt)
{
  if (m_paths.passphrase_file) {
    return read_passphrase_file(*m_paths.passphrase_file);
  }
  if (const char* v = std::getenv("FLEETKEY_PASSPHRASE"); v != nullptr && *v != '\0') {
    return crypto::Secret::copy_of(util::as_bytes(v));
  }
  // Asked on the controlling terminal, as ssh and age do, so that stdin can be a pipe.
  if (!crypto::have_terminal()) {
    throw Error(Exit::key, "a passphrase is needed and there is no terminal to ask: use --passphrase-file, "
                           "FLEETKEY_PASSPHRASE_FILE or FLEETKEY_PASSPHRASE");
  }
  auto first = crypto::prompt_passphrase(prompt);
  if (first.empty()) {
    throw Error(Exit::key, "empty passphrase refused");
  }
  if (confirm == Confirm::yes) {
    auto second = crypto::prompt_passphrase("Repeat passphrase: ");
    if (!crypto::equal(first.span(), second.span())) {
      throw Error(Exit::key, "the passphrases do not match");
    }
  }
  return first;
}

} // namespace fleetkey::fleet
