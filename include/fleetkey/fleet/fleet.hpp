#pragma once
// The fleet: where the home, registry and master key live, and the lazily opened handles to
// them that every command shares. Commands call the functions in fleet/*.hpp with a Fleet.

#include <fleetkey/crypto/keyfile.hpp>
#include <fleetkey/registry/store.hpp>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace fleetkey::fleet {

// Once at start-up, before any secret exists: initialises the crypto library (libsodium).
void init_library();

// What the global options say; unset ones fall back to the environment, then to defaults.
struct Options
{
  std::optional<std::string> home;
  std::optional<std::string> registry;
  std::optional<std::string> master_key;
  std::optional<std::string> passphrase_file;
  std::optional<std::string> pin_file; // a PKCS#11 token's PIN (fleet/hsm.hpp)
};

struct Paths
{
  std::string home;
  std::string registry;
  std::string master_key;
  std::optional<std::string> passphrase_file;
  std::optional<std::string> pin_file; // --pin-file, else $FLEETKEY_PKCS11_PIN_FILE
};

// --home, then $FLEETKEY_HOME, then $XDG_DATA_HOME/fleetkey, then ~/.local/share/fleetkey;
// --registry and --master-key (or their variables) override the files inside it.
Paths resolve_paths(const Options& options);

enum class Confirm { no, yes };

class Fleet
{
public:
  using Warn = std::function<void(std::string_view)>;

  Fleet(Options options, Warn warn);
  ~Fleet();

  const Paths& paths() const { return m_paths; }
  registry::Store& registry(); // opens the existing registry on first use
  // Reads and checks the key file on first use, or asks the agent at $FLEETKEY_AGENT (fleet/agent.hpp)
  // for its ring, whose keys stay in the agent.
  const crypto::Keyring& keyring();
  // For commands that rewrite or copy the key ring (rotate, passwd, backup, agent start): the key
  // file itself, never the agent. Call before keyring().
  void use_key_file() { m_key_file_only = true; }
  // The registry's current master key, for a command that registers something under it: call inside
  // the write transaction, so that a rotate or retire cannot come in between. Reads the key file again
  // if a rotate has finished since it was read.
  const crypto::MasterKey& current_master_key();
  // Finishes or clears what a killed rotate or passwd left beside the key file (MASTER_KEY.pending-ID,
  // committed when its audit row ID exists, else removed; temporary names, removed), holding the
  // registry's write lock (taken here unless the caller holds it). Without `wait`, returns at once when
  // there is nothing to settle. True when it put a pending file in place.
  bool settle_key_file(bool wait);
  // The master key a record names; throws when the version is retired or unknown.
  const crypto::MasterKey& master_key(uint32_t version);
  // Whether the key file is encrypted, with which KDF parameters (valid after keyring()).
  const crypto::KeyFileHeader& key_file_header();
  // The passphrase that opened the key file, to write it again without asking twice; nullptr when
  // the file is unencrypted.
  const crypto::Secret* key_file_passphrase();
  // The key file's bytes as read (or last written), to tell whether another process has replaced
  // the file since.
  const crypto::Secret& key_file_text();

  // The passphrase from --passphrase-file, $FLEETKEY_PASSPHRASE_FILE, $FLEETKEY_PASSPHRASE or
  // the terminal (asked twice with Confirm::yes); an error when none of those is available.
  crypto::Secret passphrase(Confirm confirm, const char* prompt = "Passphrase: ");

  void warn(std::string_view message) const { m_warn(message); }
  // -q: no "using a TEST master key" warning (init still warns when it creates one).
  void hush_test_key() { m_warned_test_key = true; }

  // Replaces the cached handles after init, rotate and passwd; `text` is the file written.
  void reset_keyring(std::unique_ptr<crypto::Keyring> ring, crypto::KeyFileHeader header,
                     std::optional<crypto::Secret> passphrase, crypto::Secret text);
  // After passwd: the same key ring, in a file encrypted differently (or not at all).
  void reset_key_file(crypto::KeyFileHeader header, std::optional<crypto::Secret> passphrase, crypto::Secret text);
  void set_registry(std::unique_ptr<registry::Store> reg);
  // The command's registry changes are committed only by commit_held(), once its output is delivered
  // (registry::Store::hold_commits); nothing is committed if the command fails before.
  void hold_commits();
  void commit_held();

private:
  std::unique_ptr<crypto::Keyring> read_key_file_prompting(crypto::KeyFileHeader& header, crypto::Secret& text,
                                                           std::optional<crypto::Secret>& used);
  const crypto::Keyring& load_keyring();

  Paths m_paths;
  Warn m_warn;
  std::unique_ptr<registry::Store> m_registry;
  bool m_hold = false;
  std::unique_ptr<crypto::Keyring> m_keyring;
  crypto::KeyFileHeader m_header;
  std::optional<crypto::Secret> m_passphrase; // the key file's, zeroed when the Fleet goes
  bool m_warned_test_key = false;
  crypto::Secret m_key_file_text;
  bool m_key_file_only = false;
};

// The file a key file path names: for a symbolic link, its target (realpath), so that a rotate or passwd
// replaces the target, beside it, and never the link.
std::string key_file_target(const std::string& path);
// Removes every leftover of a killed rotate or passwd beside the key file `path` (init --force).
void remove_key_file_leftovers(const std::string& path);

// Throws Error(registry) naming the chown that fixes it when `path` exists and is owned by neither the
// caller nor root (util::foreign_owner); `what` names it ("home", "registry").
void check_owner(const std::string& path, std::string_view what);

// $SOURCE_DATE_EPOCH (reproducible-builds.org), for a test key only (fleetkey(1), SCRIPTING): when set
// and not empty, every time fleetkey writes from now on is that time (util::pin_clock). Throws
// Error(usage) when it is not a decimal number of seconds in k_min_time to k_max_time.
void pin_clock_to_source_date_epoch();

// Reads a passphrase file (as crypto::read_private_file) and keeps its first line; refuses an
// empty passphrase.
crypto::Secret read_passphrase_file(const std::string& path);

// Names: 1-128 bytes of printable UTF-8 (no control characters).
void validate_name(std::string_view value, std::string_view what);
// Revocation reasons: 1-1024 bytes of printable UTF-8.
void validate_reason(std::string_view reason);
// Labels: KEY=VALUE with KEY of 1-64 characters [A-Za-z0-9_.-] and VALUE of 0-256 bytes printable UTF-8.
// `what` names the argument in errors: "label", or "--claim" for a token's extra claims.
std::pair<std::string, std::string> parse_label(std::string_view text, std::string_view what = "label");
// Labels given as KEY=VALUE arguments (parse_label each); a key given twice is refused.
std::map<std::string, std::string> parse_labels(const std::vector<std::string>& labels);

} // namespace fleetkey::fleet
