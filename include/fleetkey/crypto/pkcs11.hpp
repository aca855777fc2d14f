#pragma once
// The master key in a PKCS#11 token (an HSM): PRK[v] = HKDF-Extract("fleetkey/v1", MK[v]) is a
// sensitive, non-extractable CKK_GENERIC_SECRET object that can only sign, and every
// HKDF-Expand(PRK[v], info, L) is computed by the token as C_Sign(CKM_SHA256_HMAC) over
// T(i-1) || info || i (for one block, info || 0x01). The module is loaded with dlopen(3).
// fleetkey-formats(5), HSM REFERENCE, specifies the key file of such a home.

#include <fleetkey/crypto/keyfile.hpp>
#include <fleetkey/crypto/keysource.hpp>
#include <fleetkey/crypto/secret.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fleetkey::crypto::pkcs11 {

// An RFC 7512 PKCS#11 URI, as much of it as fleetkey uses: the path attributes token, manufacturer,
// model, serial, slot-id and object (the prefix of the objects' labels), type (secret-key only),
// and the query attribute module-path. pin-value is refused (a PIN never goes on a command line).
struct Uri
{
  std::string token;
  std::string manufacturer;
  std::string model;
  std::string serial;
  std::optional<uint64_t> slot_id;
  std::string object; // empty: none given
  std::string module_path;

  // The canonical text: the attributes above that are set, in that order, percent-encoded.
  std::string text() const;
};

Uri parse_uri(std::string_view text); // throws Error(usage)

// The object label of PRK[version]: "OBJECT/vVERSION".
std::string object_label(std::string_view object, uint32_t version);

// The check value of PRK[v] that a home records to know its objects from any other: the first 16
// bytes of HKDF-Expand(PRK[v], info("hsm-check"), 32), as hex. Computed from the PRK in memory when it
// is imported, and by the token when the object is first used.
std::string check_value(const Secret& prk);

// Called when the token needs a login; returns the user PIN.
using PinSource = std::function<Secret(std::string_view token_label)>;

class Token final : public KeySource
{
public:
  // Loads the module (module-path, else $FLEETKEY_PKCS11_MODULE), finds the one token the URI names and
  // logs in. Throws Error(key) with one line saying what failed.
  static std::shared_ptr<Token> open(const Uri& uri, const PinSource& pin);
  ~Token() override;
  Token(const Token&) = delete;
  Token& operator=(const Token&) = delete;

  const std::string& label() const;
  // Whether the token holds an object labelled `label` (secret keys only).
  bool has_object(const std::string& label) const;
  // Creates PRK as a token object labelled `label` (CKA_SENSITIVE, not CKA_EXTRACTABLE, CKA_SIGN only).
  void import_secret(const std::string& label, const Secret& prk);
  // Destroys every secret key labelled `label`; returns how many.
  size_t destroy(const std::string& label);
  // Versions served by expand(): version -> (label, expected check value, empty for none).
  void serve(uint32_t version, std::string label, std::string check_hex);

  // HKDF-Expand through C_Sign; the object of a version is looked up (and its check value compared) on
  // first use. Threads each use a session of their own when the module can lock (CKF_OS_LOCKING_OK),
  // else the calls are serialized.
  void expand(uint32_t version, std::span<const util::ByteView> infos, size_t length,
              std::span<uint8_t> out) const override;

  struct State;

private:
  Token() = default;
  std::unique_ptr<State> m_state;
};

// The key file of an HSM home (fleetkey-formats(5), HSM REFERENCE): the token's URI and, for each
// version, what the registry knows of it; no secret (a test key's seed excepted: it is public).
struct ReferenceVersion
{
  uint32_t version = 0;
  int64_t created = 0;
  std::string fingerprint; // of MK[v], taken when it was imported
  std::string check;       // check_value of PRK[v]
};

struct Reference
{
  std::string uri; // canonical
  bool test_key = false;
  uint32_t current = 0;
  std::vector<ReferenceVersion> versions;
  std::string test_seed_hex; // a test key's seed (public by definition), for rotate
};

bool is_reference(std::string_view key_file_text);
std::string encode_reference(const Reference& ref);
Reference decode_reference(std::string_view text); // throws Error(key)

// The key ring of an HSM home: each version's key is held by `token`.
Keyring reference_ring(const Reference& ref, const std::shared_ptr<Token>& token);

} // namespace fleetkey::crypto::pkcs11
