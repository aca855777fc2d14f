#pragma once
// A home whose master key is in a PKCS#11 token (crypto/pkcs11.hpp): its key file is a reference to
// the token (fleetkey-formats(5), HSM REFERENCE), and the token's user PIN comes from --pin-file,
// $FLEETKEY_PKCS11_PIN_FILE, $FLEETKEY_PKCS11_PIN or the terminal, never from the command line.

#include <fleetkey/crypto/pkcs11.hpp>
#include <fleetkey/fleet/fleet.hpp>

#include <memory>
#include <string>
#include <string_view>

namespace fleetkey::fleet::hsm {

// Whether the master key file at `path` is a PKCS#11 reference (false when it cannot be read).
bool key_file_in_hsm(const std::string& path);

// Throws Error(key) saying that `command` cannot work on a home whose master key is in a token, and
// why (`why`), when the home's key file is a reference; asks for nothing.
void refuse_in_hsm(const Fleet& fleet, std::string_view command, std::string_view why);

crypto::pkcs11::PinSource pin_source(const Paths& paths);

// Opens the token the reference names (logging in) and returns the ring it holds.
std::unique_ptr<crypto::Keyring> load_ring(const Paths& paths, std::string_view reference_text);

// The token holding a ring's versions (those of an HSM home), or nullptr.
std::shared_ptr<crypto::pkcs11::Token> token_of(const crypto::Keyring& ring);

} // namespace fleetkey::fleet::hsm
