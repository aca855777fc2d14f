#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/fleet/fleet.hpp>
#include <fleetkey/util/error.hpp>
#include <fleetkey/util/file.hpp>
#include <fleetkey/util/text.hpp>

#include <sodium.h>

#include <cstdlib>
#include <cstring>
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
  return p;
}

Fleet::Fleet(Options options, Warn warn)
    : m_paths(resolve_paths(options))
    , m_warn(std::move(warn))
{
}

Fleet::~Fleet() = default;

registry::Registry& Fleet::registry()
{
  if (!m_registry) {
    // Like ssh with its keys: what another user could have written is not trusted.
    check_owner(m_paths.home, "home");
    check_owner(m_paths.registry, "registry");
    m_registry.emplace(registry::Registry::open(m_paths.registry, registry::OpenMode::existing));
    if (m_hold) {
      m_registry->db().hold_commits();
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

void Fleet::set_registry(registry::Registry reg)
{
  m_registry.emplace(std::move(reg));
}

void Fleet::hold_commits()
{
  m_hold = true;
  if (m_registry) {
    m_registry->db().hold_commits();
  }
}

void Fleet::commit_held()
{
  if (m_registry) {
    m_registry->db().commit_held();
  }
}

const crypto::Keyring& Fleet::keyring()
{
  if (m_keyring) {
    return *m_keyring;
  }
  auto& reg = registry();
  crypto::KeyFileHeader header;
  // Kept once it has opened the file, so that rotate and passwd never ask for it again.
  std::optional<crypto::Secret> used;
  crypto::Secret text;
  auto ring = std::make_unique<crypto::Keyring>(crypto::read_key_file(
      m_paths.master_key,
      [this, &used] {
        auto pass = passphrase(Confirm::no);
        used = crypto::Secret::copy_of(pass.span());
        return pass;
      },
      &header, &text));
  // The key file must be the one this registry was made with, version by version.
  const auto records = reg.master_keys();
  for (const auto& rec : records) {
    const crypto::MasterKey* mk = nullptr;
    for (const auto& k : ring->versions()) {
      if (k.version == rec.version) {
        mk = &k;
      }
    }
    if (mk == nullptr || crypto::fingerprint(mk->key.span()) != rec.fingerprint) {
      throw Error(Exit::key, "master key file {} does not belong to registry {} (version {} {})", m_paths.master_key,
                  m_paths.registry, rec.version, mk == nullptr ? "is missing" : "has another fingerprint");
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
  if (ring->is_test_key()) {
    warn("using a TEST master key (made with --test-seed): its keys are reproducible by anyone with the seed; never "
         "provision real devices with it");
  }
  m_header = header;
  m_keyring = std::move(ring);
  m_passphrase = std::move(used);
  m_key_file_text = std::move(text);
  return *m_keyring;
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
  if (::isatty(STDIN_FILENO) == 0) {
    throw Error(Exit::key, "a passphrase is needed and stdin is not a terminal: use --passphrase-file, "
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

void validate_name(std::string_view value, std::string_view what)
{
  if (value.empty() || value.size() > 128) {
    throw Error(Exit::usage, "{} must be 1 to 128 bytes long (got {})", what, value.size());
  }
  if (!util::is_printable_utf8(value)) {
    throw Error(Exit::usage, "{} must be printable UTF-8 without control characters", what);
  }
}

void validate_reason(std::string_view reason)
{
  if (reason.empty() || reason.size() > 1024 || !util::is_printable_utf8(reason)) {
    throw Error(Exit::usage, "--reason must be 1 to 1024 bytes of printable text");
  }
}

std::pair<std::string, std::string> parse_label(std::string_view text, std::string_view what)
{
  const auto eq = text.find('=');
  if (eq == std::string_view::npos) {
    throw Error(Exit::usage, "{} \"{}\" is not KEY=VALUE", what, text);
  }
  const auto key = text.substr(0, eq);
  const auto value = text.substr(eq + 1);
  const bool key_ok = !key.empty() && key.size() <= 64
                      && key.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
                             == std::string_view::npos;
  if (!key_ok) {
    throw Error(Exit::usage, "{} key \"{}\" must be 1 to 64 characters of A-Z a-z 0-9 _ . -", what, key);
  }
  if (value.size() > 256 || !util::is_printable_utf8(value)) {
    throw Error(Exit::usage, "{} \"{}\" value must be at most 256 bytes of printable UTF-8", what, key);
  }
  return {std::string(key), std::string(value)};
}

nlohmann::json parse_labels(const std::vector<std::string>& labels)
{
  auto out = nlohmann::json::object();
  for (const auto& l : labels) {
    auto [k, v] = parse_label(l);
    if (out.contains(k)) {
      throw Error(Exit::usage, "label \"{}\" is given twice", k);
    }
    out[k] = v;
  }
  return out;
}

} // namespace fleetkey::fleet
