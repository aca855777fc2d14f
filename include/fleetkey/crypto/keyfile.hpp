#pragma once
// The master key ring and its file: every master key version, encrypted at rest with a key from
// Argon2id (crypto_pwhash) and XChaCha20-Poly1305. Layout in fleetkey-formats(5).

#include <fleetkey/crypto/keysource.hpp>
#include <fleetkey/crypto/secret.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace fleetkey::crypto {

struct MasterKey
{
  uint32_t version = 0;
  int64_t created = 0; // Unix seconds
  Secret key;          // 32 bytes; empty when the key is held elsewhere (`source`)
  // Set when another process holds the key (the agent): derivations go to it, and the key's
  // fingerprint is the one it reported.
  std::shared_ptr<const KeySource> source;
  std::string source_fingerprint;

  std::string fingerprint() const; // crypto::fingerprint of the key, wherever it lives
};

class Keyring
{
public:
  // A new ring holding version 1: random, or derived from `test_seed` for reproducible fixtures.
  static Keyring create(int64_t now, std::optional<Secret> test_seed = std::nullopt);

  // Adds version last+1 and makes it current; returns it.
  const MasterKey& rotate(int64_t now);
  // Makes a version the ring holds current (the registry's, when the file says otherwise).
  void make_current(uint32_t version); // throws Error(not_found)

  const MasterKey& get(uint32_t version) const; // throws Error(not_found)
  const MasterKey& current() const { return get(m_current); }
  uint32_t current_version() const { return m_current; }
  const std::vector<MasterKey>& versions() const { return m_versions; }
  bool is_test_key() const { return !m_test_seed.empty() || m_remote_test; }
  const Secret& test_seed() const { return m_test_seed; } // empty unless a test key held here

  Secret serialize() const; // throws Error(key) for a ring whose keys are held elsewhere
  static Keyring deserialize(std::span<const uint8_t> plaintext); // throws Error(key)
  // A ring whose keys another process holds: each version's `source` is set, its `key` empty.
  static Keyring held_elsewhere(std::vector<MasterKey> versions, uint32_t current, bool test_key);

private:
  Keyring() = default;
  MasterKey make_version(uint32_t version, int64_t now) const;

  std::vector<MasterKey> m_versions;
  uint32_t m_current = 0;
  Secret m_test_seed;         // empty unless this is a test key
  bool m_remote_test = false; // a test key held elsewhere (no seed here)
};

struct KdfParams
{
  uint64_t opslimit = 0;
  uint64_t memlimit = 0;
};

// crypto_pwhash's named Argon2id cost levels: "interactive", "moderate" (the default), "sensitive".
KdfParams kdf_profile(std::string_view name); // throws Error(usage)

// Returns the passphrase, or throws when none can be had; called only for an encrypted file.
using PassphraseSource = std::function<Secret()>;

struct KeyFileHeader
{
  bool encrypted = false;
  KdfParams kdf;
  bool test_key = false;
  uint32_t current_version = 0;
  bool hsm = false; // the file is a PKCS#11 reference: the keys are in a token (crypto/pkcs11.hpp)
};

// The whole file's text, in guarded memory: an unencrypted file holds the key ring in base64.
Secret encode_key_file(const Keyring& ring, const Secret* passphrase, KdfParams kdf);
Keyring decode_key_file(std::string_view text, const PassphraseSource& passphrase, KeyFileHeader* header = nullptr);

// The fingerprint of the current master key that a key file's header states, read without the
// passphrase; nullopt for text that is not a fleetkey master key file (a PKCS#11 reference among them).
// Only a hint: the header is authenticated when the file is decoded, not here.
std::optional<std::string> key_file_fingerprint(std::string_view text);

// Reading opens the file once (following a symbolic link, as read_private_file), refuses a file
// that group or others can access and one over 64 KiB; `text`, if given, receives the file's bytes.
// Writing is atomic and 0600 throughout, refuses to write a file over 64 KiB, and returns the bytes
// written.
Keyring read_key_file(const std::string& path, const PassphraseSource& passphrase, KeyFileHeader* header = nullptr,
                      Secret* text = nullptr);
enum class Replace { no, yes };
Secret write_key_file(const std::string& path, const Keyring& ring, const Secret* passphrase, KdfParams kdf,
                      Replace replace);

// Reads a passphrase from the controlling terminal (/dev/tty, as ssh and age do: stdin may be a
// pipe) with echo off.
Secret prompt_passphrase(const char* prompt); // throws Error(key)
// Whether the process has a controlling terminal to prompt on (/dev/tty opens).
bool have_terminal();

} // namespace fleetkey::crypto
