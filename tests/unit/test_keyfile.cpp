// The master key file: round trips, wrong passphrases, tampering, and the privacy checks.
#include "support.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/keyfile.hpp>
#include <fleetkey/util/bytes.hpp>
#include <fleetkey/util/file.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <sodium.h>

#include <fcntl.h>
#include <filesystem>
#include <sys/stat.h>
#include <unistd.h>

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

std::string encode(const crypto::Keyring& ring, const crypto::Secret* passphrase, crypto::KdfParams kdf)
{
  return std::string(crypto::as_text(crypto::encode_key_file(ring, passphrase, kdf)));
}

void write(const std::string& path, std::string_view text, mode_t mode = 0600)
{
  util::Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, mode));
  REQUIRE(fd.valid());
  REQUIRE(::write(fd.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  ::fchmod(fd.get(), mode);
}

std::string message_of(const std::function<void()>& fn)
{
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

const crypto::KdfParams k_fast{crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN};

} // namespace

TEST_CASE("an encrypted key file round-trips every version")
{
  auto ring = crypto::Keyring::create(1700000000);
  ring.rotate(1700000100);
  const auto p = pass("correct horse");
  const auto text = encode(ring, &p, k_fast);
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
  const auto text = encode(ring, &p, k_fast);
  CHECK(code_of([&] { crypto::decode_key_file(text, source("wrong"), nullptr); }) == Exit::key);
}

TEST_CASE("changing any header byte or the payload breaks decryption")
{
  auto ring = crypto::Keyring::create(1);
  const auto p = pass("pw");
  const auto text = encode(ring, &p, k_fast);
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
  const auto text = encode(ring, nullptr, {});
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
  auto text = encode(ring, &p, k_fast);
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

TEST_CASE("an unencrypted payload is the padded standard base64 of the plaintext, built in guarded memory")
{
  auto ring = crypto::Keyring::create(1700000000);
  const crypto::Secret text = crypto::encode_key_file(ring, nullptr, {});
  const auto plaintext = ring.serialize();
  const std::string want = "payload: " + util::to_base64(plaintext.span()) + "\n";
  const std::string_view got = crypto::as_text(text);
  REQUIRE(got.size() > want.size());
  CHECK(got.substr(got.size() - want.size()) == want);
  CHECK(util::to_base64(plaintext.span()).back() == '='); // 12 + 44 + 2 bytes: padded
  const auto back = crypto::decode_key_file(got, source("x"), nullptr);
  CHECK(crypto::equal(back.current().key.span(), ring.current().key.span()));
}

TEST_CASE("key files are read once through one descriptor: a symbolic link's target is checked, large files refused")
{
  TempDir dir;
  const std::string path = dir.path + "/master.key";
  auto ring = crypto::Keyring::create(1);
  crypto::write_key_file(path, ring, nullptr, {}, crypto::Replace::no);
  const std::string link = dir.path + "/link.key";
  REQUIRE(::symlink(path.c_str(), link.c_str()) == 0);
  CHECK(crypto::read_key_file(link, source("x")).current().version == 1);
  const std::string big = dir.path + "/big.key";
  write(big, std::string(crypto::k_max_secret_file + 1, 'x'));
  CHECK(message_of([&] { crypto::read_key_file(big, source("x")); })
        == "master key file " + big + " is larger than 65536 bytes");
  write(big, std::string(crypto::k_max_secret_file, 'x')); // fits, so it is read and found wanting
  CHECK(message_of([&] { crypto::read_key_file(big, source("x")); }) == "not a fleetkey master key file");
  ::chmod(path.c_str(), 0604);
  CHECK(message_of([&] { crypto::read_key_file(path, source("x")); })
        == "master key file " + path + " is accessible by group or others (mode 0604); fix it with: chmod 600 " + path);
  CHECK(message_of([&] { crypto::read_key_file(link, source("x")); })
        == "master key file " + link + " is accessible by group or others (mode 0604); fix it with: chmod 600 " + link);
}

TEST_CASE("read_private_file returns exactly the file, in a Secret")
{
  TempDir dir;
  const std::string path = dir.path + "/pass";
  write(path, "line one\nline two\n");
  const auto s = crypto::read_private_file(path, "passphrase file");
  CHECK(crypto::as_text(s) == "line one\nline two\n");
  write(path, "");
  CHECK(crypto::read_private_file(path, "passphrase file").empty());
  CHECK(code_of([&] { crypto::read_private_file(dir.path + "/none", "passphrase file"); }) == Exit::key);
}

TEST_CASE("read_private_line keeps the first line, without its line ending")
{
  TempDir dir;
  const std::string path = dir.path + "/pass";
  for (const auto& [content, line] : {std::pair<std::string, std::string>{"line one\r\nline two\n", "line one"},
                                      {"line one\nline two", "line one"},
                                      {"no newline", "no newline"},
                                      {"\nsecond", ""},
                                      {"", ""}}) {
    write(path, content);
    CHECK(crypto::as_text(crypto::read_private_line(path, "passphrase file")) == line);
  }
  ::chmod(path.c_str(), 0640);
  CHECK(code_of([&] { crypto::read_private_line(path, "passphrase file"); }) == Exit::key);
}

TEST_CASE("a missing key file is named as missing")
{
  TempDir dir;
  const std::string path = dir.path + "/none.key";
  CHECK(message_of([&] { crypto::read_key_file(path, source("x")); })
        == "no master key file at " + path + " (run fleetkey init, or pass --master-key)");
}

TEST_CASE("make_current picks a version the ring holds, and rotate numbers past every version")
{
  auto ring = crypto::Keyring::create(1);
  ring.rotate(2);
  ring.make_current(1);
  CHECK(ring.current_version() == 1);
  CHECK(code_of([&] { ring.make_current(3); }) == Exit::not_found);
  const auto back = crypto::Keyring::deserialize(ring.serialize().span());
  CHECK(back.current_version() == 1);
  CHECK(ring.rotate(3).version == 3);
  CHECK(ring.current_version() == 3);
}

TEST_CASE("a payload whose current version is not in the ring is corrupt")
{
  auto ring = crypto::Keyring::create(1);
  auto plain = ring.serialize();
  // "FKMK" | format | flags | current u32 (big-endian) at offset 6.
  plain.data()[9] = 7;
  CHECK(message_of([&] { crypto::Keyring::deserialize(plain.span()); })
        == "master key file is corrupted: the current version 7 is not in the payload");
  CHECK(code_of([&] { crypto::Keyring::deserialize(plain.span()); }) == Exit::key);
}

TEST_CASE("a key file too large to read back is never written")
{
  TempDir dir;
  const std::string path = dir.path + "/master.key";
  auto ring = crypto::Keyring::create(1);
  const auto first = crypto::write_key_file(path, ring, nullptr, {}, crypto::Replace::no);
  CHECK(crypto::equal(first.span(), crypto::read_private_file(path, "key file").span())); // what was written
  // Each version adds 44 bytes to the payload, 59 to its base64: about 1,100 fit in 64 KiB.
  size_t versions = 1;
  while (crypto::encode_key_file(ring, nullptr, {}).size() <= crypto::k_max_secret_file) {
    ring.rotate(static_cast<int64_t>(++versions));
  }
  const auto message = message_of([&] { crypto::write_key_file(path, ring, nullptr, {}, crypto::Replace::yes); });
  CHECK(message.starts_with("master key file " + path + " would be "));
  CHECK(message.ends_with(fmt::format(" bytes with {} versions, more than the 65536 bytes fleetkey reads", versions)));
  // The file on disk is untouched, and still reads.
  const auto text = crypto::read_private_file(path, "key file");
  CHECK(crypto::equal(text.span(), first.span()));
  CHECK(crypto::read_key_file(path, source("x")).versions().size() == 1);
}
