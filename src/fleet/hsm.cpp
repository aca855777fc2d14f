#include <fleetkey/core/error.hpp>
#include <fleetkey/fleet/hsm.hpp>
#include <fleetkey/util/file.hpp>

#include <fmt/format.h>

#include <cstdlib>
#include <fcntl.h>
#include <unistd.h>

namespace fleetkey::fleet::hsm {

bool key_file_in_hsm(const std::string& path)
{
  util::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd.valid()) {
    return false;
  }
  char head[128];
  const ssize_t n = ::read(fd.get(), head, sizeof head);
  return n > 0 && crypto::pkcs11::is_reference(std::string_view(head, static_cast<size_t>(n)));
}

void refuse_in_hsm(const Fleet& fleet, std::string_view command, std::string_view why)
{
  if (key_file_in_hsm(fleet.paths().master_key)) {
    throw Error(Exit::key, "{}: the master key of {} is in a PKCS#11 token; {}", command, fleet.paths().home, why);
  }
}

crypto::pkcs11::PinSource pin_source(const Paths& paths)
{
  return [pin_file = paths.pin_file](std::string_view label) {
    if (pin_file) {
      auto pin = crypto::read_private_line(*pin_file, "PIN file");
      if (pin.empty()) {
        throw Error(Exit::key, "PIN file {} is empty", *pin_file);
      }
      return pin;
    }
    if (const char* v = std::getenv("FLEETKEY_PKCS11_PIN"); v != nullptr && *v != '\0') {
      return crypto::Secret::copy_of(util::as_bytes(v));
    }
    if (::isatty(STDIN_FILENO) == 0) {
      throw Error(Exit::key,
                  "PKCS#11 token \"{}\" needs its PIN and stdin is not a terminal: use --pin-file, "
                  "FLEETKEY_PKCS11_PIN_FILE or FLEETKEY_PKCS11_PIN",
                  label);
    }
    const auto prompt = fmt::format("PIN for PKCS#11 token \"{}\": ", label);
    return crypto::prompt_passphrase(prompt.c_str());
  };
}

std::unique_ptr<crypto::Keyring> load_ring(const Paths& paths, std::string_view reference_text)
{
  const auto ref = crypto::pkcs11::decode_reference(reference_text);
  const auto token = crypto::pkcs11::Token::open(crypto::pkcs11::parse_uri(ref.uri), pin_source(paths));
  return std::make_unique<crypto::Keyring>(crypto::pkcs11::reference_ring(ref, token));
}

std::shared_ptr<crypto::pkcs11::Token> token_of(const crypto::Keyring& ring)
{
  const auto& source = ring.current().source;
  return std::const_pointer_cast<crypto::pkcs11::Token>(std::dynamic_pointer_cast<const crypto::pkcs11::Token>(source));
}

} // namespace fleetkey::fleet::hsm
