// The master key file: round trips, wrong passphrases, tampering, and the privacy checks.
#include "support.hpp"

#include <fleetkey/crypto/keyfile.hpp>
#include <fleetkey/util/bytes.hpp>
#include <fleetkey/util/error.hpp>
#include <fleetkey/util/file.hpp>

#include <doctest/doctest.h>
#include <sodium.h>

#include <filesystem>
#include <sys/stat.h>

using namespace fleetkey;
using test::code_of;
using test::TempDir;

namespace {

crypto::Secret pass(std::string_view p)
{
  return crypto::Secret::copy_of(util::as_bytes(p));
}

crypto::PassphraseSource source(std::string p)
{
  return [p] { return pass(p); };
}

const crypto::KdfParams k_fast{crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN};

} // namespace

TEST_CASE("an encrypted key file round-trips every version")
{
  auto ring = crypto::Keyring::create(1700000000);
  ring.rotate(1700000100);
  const auto p = pass("correct horse");
  const auto text = crypto::encode_key_file(ring, &p, k_fast);
  CHECK(text.find("encryption: xchacha20poly1305\n") != std::string::npos);
  CHECK(text.find("current-version: 2\n") != std::string::npos);
  crypto::KeyFileHeader header;
  const auto back = crypto::decode_key_file(text, source("correct horse"), &header);
  CHECK(header.encrypted);
  CHECK(header.kdf.opslimit == k_fast.opslimit);
  REQUIRE(back.versions().size() == 2);
  CHECK(back.current_version() == 2);
  CHECK(back.get(1).created == 1700000000);
  CHECK(crypto::equal(back.get(1).key.span(), ring.get(1).key.span()));
  CHECK(crypto::equal(back.get(2).key.span(), ring.get(2).key.span()));
}

TEST_CASE("a wrong passphrase is an error, never a key")
{
  auto ring = crypto::Keyring::create(1);
  const auto p = pass("right");
  const auto text = crypto::encode_key_file(ring, &p, k_fast);
  CHECK(code_of([&] { crypto::decode_key_file(text, source("wrong"), nullptr); }) == Exit::key);
}

TEST_CASE("changing any header byte or the payload breaks decryption")
{
  auto ring = crypto::Keyring::create(1);
  const auto p = pass("pw");
  const auto text = crypto::encode_key_file(ring, &p, k_fast);
  // Flip a bit in the test-key line, the fingerprint and the payload.
  for (const char* needle : {"test-key: no", "fingerprint: ", "payload: "}) {
    std::string bad = text;
    const auto at = bad.find(needle) + std::string_view(needle).size() - 1 + 2;
    bad[at] = static_cast<char>(bad[at] ^ 1);
    CAPTURE(needle);
    CHECK(code_of([&] { crypto::decode_key_file(bad, source("pw"), nullptr); }) == Exit::key);
  }
}

TEST_CASE("an unencrypted key file carries a checksum")
{
  auto ring = crypto::Keyring::create(1);
  const auto text = crypto::encode_key_file(ring, nullptr, {});
  CHECK(text.find("encryption: none\n") != std::string::npos);
  bool asked = false;
  const auto back = crypto::decode_key_file(
      text,
      [&] {
        asked = true;
        return pass("x");
      },
      nullptr);
  CHECK_FALSE(asked);
  CHECK(crypto::equal(back.current().key.span(), ring.current().key.span()));
  std::string bad = text;
  bad[bad.size() - 5] = bad[bad.size() - 5] == 'A' ? 'B' : 'A';
  CHECK(code_of([&] { crypto::decode_key_file(bad, source("x"), nullptr); }) == Exit::key);
}

TEST_CASE("absurd KDF parameters are refused before running Argon2")
{
  auto ring = crypto::Keyring::create(1);
  const auto p = pass("pw");
  auto text = crypto::encode_key_file(ring, &p, k_fast);
  const auto at = text.find("kdf-memlimit: ");
  const auto nl = text.find('\n', at);
  text.replace(at, nl - at, "kdf-memlimit: 1099511627776");
  CHECK(code_of([&] { crypto::decode_key_file(text, source("pw"), nullptr); }) == Exit::key);
}

TEST_CASE("garbage is not a key file")
{
  CHECK(code_of([] { crypto::decode_key_file("hello\n", source("x"), nullptr); }) == Exit::key);
  CHECK(code_of([] { crypto::decode_key_file("", source("x"), nullptr); }) == Exit::key);
}

TEST_CASE("key files are written 0600, never overwritten by accident, and refused when readable by others")
{
  TempDir dir;
  const std::string path = dir.path + "/master.key";
  auto ring = crypto::Keyring::create(1);
  crypto::write_key_file(path, ring, nullptr, {}, crypto::Replace::no);
  struct stat st
  {
  };
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(code_of([&] { crypto::write_key_file(path, ring, nullptr, {}, crypto::Replace::no); }) == Exit::conflict);
  CHECK(crypto::read_key_file(path, source("x")).current_version() == 1);
  ::chmod(path.c_str(), 0640);
  CHECK(code_of([&] { crypto::read_key_file(path, source("x")); }) == Exit::key);
  // No temporary file is left behind.
  int entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path)) {
    ++entries;
  }
  CHECK(entries == 1);
}
