// The master key file of the Fleet context: settling what a killed writer left beside it (a
// pending file, temporary names), and loading the key ring (from the agent, a PKCS#11 token or the
// file and its passphrase) checked against the registry. A little over 400 lines on purpose: the
// settling and the loading share the context's state and are read together (a mismatch settles, then
// loads again).
#include "fleet/convert.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/crypto/pkcs11.hpp>
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

// The key file does not match the registry: an error, unless a rotate is half-way (see keyring()).
class KeyFileMismatch : public std::runtime_error
{
public:
  using std::runtime_error::runtime_error;
};

// A PostgreSQL init --force killed between its commit and the rename of its key file
// (fleetkey-postgresql(7), REPLACING A REGISTRY) leaves the key file that the registry now names at
// MASTER_KEY.init. It is put in place when the registry holds one master key version, as init leaves
// it, whose fingerprint the file's header states: the leftover of an init that never committed names
// another key. Called under the write lock, as every writer of the key file runs.
bool adopt_committed_init(registry::Store& reg, const std::string& master_key)
{
  const std::string staged = master_key + ".init";
  if (!util::exists(staged)) {
    return false;
  }
  const auto versions = reg.master_keys();
  if (versions.size() != 1 || versions.front().status != "current") {
    return false;
  }
  std::optional<std::string> stated;
  try {
    const crypto::Secret text = crypto::read_private_file(staged, "master key file");
    if (crypto::pkcs11::is_reference(crypto::as_text(text))) {
      const auto ref = crypto::pkcs11::decode_reference(crypto::as_text(text));
      if (ref.versions.size() == 1) {
        stated = ref.versions.front().fingerprint; // init --pkcs11 --force: a reference to the token
      }
    } else {
      stated = crypto::key_file_fingerprint(crypto::as_text(text));
    }
  } catch (const Error&) {
    return false; // unreadable, not private or not a key file: left alone, the mismatch is reported
  }
  if (!stated || *stated != versions.front().fingerprint) { // fingerprints are public
    return false;
  }
  if (::rename(staged.c_str(), master_key.c_str()) != 0) {
    throw Error(Exit::failure, "cannot rename {} to {}: {}", staged, master_key, std::strerror(errno));
  }
  return true;
}

} // namespace

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
  if (wait && !changed && adopt_committed_init(reg, m_paths.master_key)) {
    changed = true;
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

std::string keyring_mismatch(const std::vector<registry::MasterKeyRecord>& records, const crypto::Keyring& ring)
{
  for (const auto& rec : records) {
    const crypto::MasterKey* mk = nullptr;
    for (const auto& k : ring.versions()) {
      if (k.version == rec.version) {
        mk = &k;
      }
    }
    if (mk == nullptr || mk->fingerprint() != rec.fingerprint) {
      return fmt::format("version {} {}", rec.version, mk == nullptr ? "is missing" : "has another fingerprint");
    }
  }
  return {};
}

namespace {

// The key ring an agent holds, if it is this registry's (another registry's is passed over with a
// warning).
std::unique_ptr<crypto::Keyring> agent_ring(const Fleet& fleet, std::optional<crypto::Keyring> held,
                                            const std::vector<registry::MasterKeyRecord>& records)
{
  if (!held) {
    return nullptr;
  }
  if (const auto why = keyring_mismatch(records, *held); !why.empty()) {
    fleet.warn(fmt::format("the agent at {} holds the master key of another registry than {} ({}): using the master "
                           "key file",
                           std::getenv("FLEETKEY_AGENT"), fleet.paths().registry, why));
    return nullptr;
  }
  return std::make_unique<crypto::Keyring>(std::move(*held));
}

// The master key is in a PKCS#11 token: the key file is a reference to it (fleet/hsm.hpp).
std::unique_ptr<crypto::Keyring> token_ring(const Paths& paths, crypto::KeyFileHeader& header, crypto::Secret& text)
{
  text = crypto::read_private_file(paths.master_key, "master key file", crypto::k_max_secret_file, true);
  auto ring = hsm::load_ring(paths, crypto::as_text(text));
  header.hsm = true;
  header.test_key = ring->is_test_key();
  header.current_version = ring->current_version();
  return ring;
}

// The registry says which version is current. The file may name a newer one that the registry never
// recorded (a rotate interrupted between writing the file and committing the registry, or a registry
// restored from a backup): that version is kept in the file but never used.
void follow_registry(const Fleet& fleet, registry::Store& reg, std::vector<registry::MasterKeyRecord>& records,
                     crypto::Keyring& ring)
{
  // The registry was read before the file: a rotate that committed and renamed its file in between
  // shows as a file ahead of the registry (a wider window on PostgreSQL). Read the registry again.
  if (std::none_of(records.begin(), records.end(), [&ring](const registry::MasterKeyRecord& rec) {
        return rec.status == "current" && rec.version == ring.current_version();
      })) {
    auto again = reg.master_keys();
    records.swap(again);
    if (!keyring_mismatch(records, ring).empty()) {
      records.swap(again); // keep the records the ring was checked against
    }
  }
  for (const auto& rec : records) {
    if (rec.status == "current" && rec.version != ring.current_version()) {
      fleet.warn(fmt::format("master key file {} makes version {} current but registry {} says version {}: using "
                             "version {} (run fleetkey master rotate to settle it)",
                             fleet.paths().master_key, ring.current_version(), fleet.paths().registry, rec.version,
                             rec.version));
      ring.make_current(rec.version);
    }
  }
}

} // namespace

const crypto::Keyring& Fleet::load_keyring()
{
  auto& reg = registry();
  crypto::KeyFileHeader header;
  // Kept once it has opened the file, so that rotate and passwd never ask for it again.
  std::optional<crypto::Secret> used;
  crypto::Secret text;
  // The key ring must be the one this registry was made with, version by version.
  auto records = reg.master_keys();
  std::unique_ptr<crypto::Keyring> ring;
  if (!m_key_file_only) {
    ring = agent_ring(*this, agent::connect_ring(m_warn), records);
  }
  if (!ring && hsm::key_file_in_hsm(m_paths.master_key)) {
    ring = token_ring(m_paths, header, text);
  }
  if (!ring) {
    ring = read_key_file_prompting(header, text, used);
  }
  if (const auto why = keyring_mismatch(records, *ring); !why.empty()) {
    if (!used && m_passphrase) {
      used = crypto::Secret::copy_of(m_passphrase->span());
    }
    m_passphrase = std::move(used); // not asked for again
    throw KeyFileMismatch(fmt::format("master key file {} does not belong to registry {} ({})", m_paths.master_key,
                                      m_paths.registry, why));
  }
  follow_registry(*this, reg, records, *ring);
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

} // namespace fleetkey::fleet
