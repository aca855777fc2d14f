#pragma once
// Private to src/fleet: the steps that master.cpp (rotate, retire, passwd), master_init.cpp (init)
// and master_hsm.cpp (the PKCS#11 paths) share: writing the key file under the registry's write
// lock, and putting master key versions into a token.

#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/crypto/keyfile.hpp>
#include <fleetkey/crypto/pkcs11.hpp>
#include <fleetkey/crypto/secret.hpp>
#include <fleetkey/fleet/fleet.hpp>
#include <fleetkey/fleet/types.hpp>
#include <fleetkey/registry/store.hpp>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace fleetkey::fleet {

registry::MasterKeyRecord record_of(const crypto::MasterKey& mk, bool test_key, std::string status);

// Called with the registry's write lock held (BEGIN IMMEDIATE), which every command that writes
// the key file takes first, so that they run one at a time. A killed writer's change is settled
// first. The key file must still be the one this command read: if another rotate or passwd has
// replaced it since, writing now would undo that change.
void check_unchanged_key_file(Fleet& fleet);

// Writes the new key file complete under a pending name, MASTER_KEY.pending-ID after the audit row
// that `tx` adds for the change, commits `tx`, then renames the file into place (beside a symbolic
// link's target, replacing the target). The commit decides: a kill before it leaves a pending file
// whose audit row never existed (removed by the next command), a kill after it one whose row exists
// (put in place by the next command, Fleet::settle_key_file). Returns the bytes written.
crypto::Secret write_and_commit(Fleet& fleet, registry::Transaction& tx,
                                const std::function<crypto::Secret(const std::string&)>& write);

// As write_and_commit, writing `ring` as a key file.
crypto::Secret write_key_file_and_commit(Fleet& fleet, registry::Transaction& tx, const crypto::Keyring& ring,
                                         const crypto::Secret* pass, crypto::KdfParams kdf);

// fsync(2) of directory `dir` (best effort), so that a rename or link in it is on disk.
void sync_directory(const std::string& dir);

// A key file's text (an HSM reference) written 0600 and atomically at `path`, which must not exist.
crypto::Secret write_text_file(const std::string& path, std::string_view text);

// The prefix of the object labels in the token: the URI's object=, else "fleetkey-" and 8 random hex
// digits, so that two homes never share a label by accident.
void choose_object(crypto::pkcs11::Uri& uri);

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
                                                const std::string& label, const crypto::MasterKey& mk);

// Every version of `ring` into the token (none if one of its labels is taken), as a reference.
crypto::pkcs11::Reference import_ring(crypto::pkcs11::Token& token, CreatedObjects& created,
                                      const crypto::pkcs11::Uri& uri, const crypto::Keyring& ring);

// The header of a key file that is a reference to a token.
crypto::KeyFileHeader hsm_header(const crypto::pkcs11::Reference& ref);

// rotate on an HSM home: MK[v+1] is made in guarded memory, its PRK imported into the token (a label a
// killed rotate left there, never recorded, is destroyed first), and the reference gains the version.
MasterKeyVersion rotate_in_hsm(Fleet& fleet);

} // namespace fleetkey::fleet
