// The Fleet context every command runs in: the home and its paths, the registry opened on first
// use, held commits, and the passphrase sources. The master key file and the key ring it holds are
// in fleet_keyring.cpp.
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
