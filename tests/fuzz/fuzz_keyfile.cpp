// Fuzzes the master key file reader: any text either decodes or fails with fleetkey::Error (no
// other exception, no crash), and a key ring that decodes is written back and read again to the
// same versions and keys. The passphrase source refuses, so that Argon2id never runs on fuzzed
// parameters; the decrypted key ring's own reader is fuzzed directly on the raw bytes.
#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/keyfile.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string_view>

using namespace fleetkey;

namespace {

void check(bool ok)
{
  if (!ok) {
    std::abort();
  }
}

bool same(const crypto::Keyring& a, const crypto::Keyring& b)
{
  if (a.versions().size() != b.versions().size() || a.current_version() != b.current_version()
      || a.is_test_key() != b.is_test_key()) {
    return false;
  }
  for (size_t i = 0; i < a.versions().size(); ++i) {
    const auto& x = a.versions()[i];
    const auto& y = b.versions()[i];
    if (x.version != y.version || x.created != y.created || x.key.size() != y.key.size()
        || std::memcmp(x.key.data(), y.key.data(), x.key.size()) != 0) {
      return false;
    }
  }
  return true;
}

void round_trip(const crypto::Keyring& ring)
{
  const crypto::Secret text = crypto::encode_key_file(ring, nullptr, {});
  const std::string_view view(reinterpret_cast<const char*>(text.data()), text.size());
  const auto again = crypto::decode_key_file(view, []() -> crypto::Secret { std::abort(); });
  check(same(ring, again));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    crypto::KeyFileHeader header;
    const auto ring = crypto::decode_key_file(
        text, []() -> crypto::Secret { throw Error(Exit::key, "no passphrase in the fuzzer"); }, &header);
    check(!header.encrypted && ring.current_version() == header.current_version);
    round_trip(ring);
  } catch (const Error&) {
  }
  try {
    const auto ring = crypto::Keyring::deserialize(std::span<const uint8_t>(data, size));
    round_trip(ring);
  } catch (const Error&) {
  }
  return 0;
}
