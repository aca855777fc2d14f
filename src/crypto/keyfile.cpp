// The master key file: the key ring's binary payload (Keyring::serialize), the text header around
// it and its optional passphrase encryption (fleetkey-formats(5), MASTER KEY FILE); the key ring
// itself is keyring.cpp. A little over 400 lines on purpose: the three layers of one format share its
// constants and its corrupt() error, and are read and changed together.
#include "crypto/name_value.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/crypto/hkdf.hpp>
#include <fleetkey/crypto/keyfile.hpp>
#include <fleetkey/util/bytes.hpp>
#include <fleetkey/util/file.hpp>

#include <fmt/format.h>
#include <sodium.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace fleetkey::crypto {

namespace {

constexpr std::string_view k_magic = "FKMK";
constexpr uint8_t k_format = 1;
constexpr size_t k_salt_len = crypto_pwhash_SALTBYTES;
constexpr size_t k_nonce_len = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
// Bounds on the KDF cost a key file may ask for, so a crafted file cannot exhaust the machine.
constexpr uint64_t k_max_opslimit = 64;
constexpr uint64_t k_max_memlimit = uint64_t{4} << 30;

Error corrupt(std::string_view why)
{
  return Error(Exit::key, "master key file is corrupted: {}", why);
}

// A cursor over the decrypted payload; every read checks bounds.
class Reader
{
public:
  explicit Reader(std::span<const uint8_t> data)
      : m_data(data)
  {
  }
  uint64_t uint(size_t width)
  {
    need(width);
    uint64_t v = 0;
    for (size_t i = 0; i < width; ++i) {
      v = (v << 8) | m_data[m_pos++];
    }
    return v;
  }
  std::span<const uint8_t> bytes(size_t n)
  {
    need(n);
    auto out = m_data.subspan(m_pos, n);
    m_pos += n;
    return out;
  }
  bool done() const { return m_pos == m_data.size(); }

private:
  void need(size_t n)
  {
    if (m_data.size() - m_pos < n) {
      throw corrupt("payload is truncated");
    }
  }
  std::span<const uint8_t> m_data;
  size_t m_pos = 0;
};

void put_uint(uint8_t*& p, uint64_t v, size_t width)
{
  for (size_t i = width; i-- > 0;) {
    *p++ = static_cast<uint8_t>(v >> (8 * i));
  }
}

Secret derive_file_key(const Secret& passphrase, std::span<const uint8_t> salt, KdfParams kdf)
{
  Secret key(crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
  if (crypto_pwhash(key.data(), key.size(), reinterpret_cast<const char*>(passphrase.data()), passphrase.size(),
                    salt.data(), kdf.opslimit, static_cast<size_t>(kdf.memlimit), crypto_pwhash_ALG_ARGON2ID13)
      != 0) {
    throw Error(Exit::failure, "Argon2id ran out of memory (memlimit {} bytes)", kdf.memlimit);
  }
  return key;
}

// The header lines, in this order, each exactly once; `payload:` comes last.
struct Fields
{
  std::vector<std::pair<std::string, std::string>> items;
  std::string_view get(std::string_view key) const
  {
    for (const auto& [k, v] : items) {
      if (k == key) {
        return v;
      }
    }
    throw corrupt(fmt::format("missing \"{}\"", key));
  }
};

uint64_t parse_uint(std::string_view text, std::string_view what)
{
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || text.empty()) {
    throw corrupt(fmt::format("bad {}", what));
  }
  return v;
}

util::Bytes parse_hex(std::string_view text, size_t len, std::string_view what)
{
  auto bytes = util::from_hex(text);
  if (!bytes || bytes->size() != len) {
    throw corrupt(fmt::format("bad {}", what));
  }
  return *bytes;
}

constexpr std::string_view k_comment =
    "# fleetkey master key file: keep it secret, keep it safe. Layout: fleetkey-formats(5).\n";
constexpr std::string_view k_payload_label = "payload: ";
constexpr int k_base64 = sodium_base64_VARIANT_ORIGINAL; // RFC 4648 section 4, padded

// header || "payload: " || base64(payload) || "\n", built in guarded memory: for an unencrypted
// file the base64 is the key ring itself.
Secret with_payload(std::string_view header, const Secret& payload)
{
  // encoded_len counts a NUL terminator, where the "\n" goes.
  SecretText out(header.size() + k_payload_label.size() + sodium_base64_encoded_len(payload.size(), k_base64));
  out.append(header).append(k_payload_label).append_base64(payload.span(), k_base64).append("\n");
  return std::move(out).take();
}

// Decodes the payload straight into guarded memory.
Secret payload_of(std::string_view b64)
{
  Secret out(util::base64_decoded_max(b64.size()));
  const auto len = util::from_base64_into(out.span(), b64);
  if (!len) {
    throw corrupt("payload is not base64");
  }
  out.truncate(*len);
  return out;
}

} // namespace

// "FKMK" | format u8 | flags u8 (bit 0: test key) | current u32 | count u16 |
// count x (version u32 | created u64 | key[32]) | seed length u16 | seed
Secret Keyring::serialize() const
{
  if (m_versions.front().source) {
    throw Error(Exit::key, "this command needs the master key file itself, not the agent: unset FLEETKEY_AGENT");
  }
  const size_t size = 4 + 1 + 1 + 4 + 2 + m_versions.size() * (4 + 8 + k_key_len) + 2 + m_test_seed.size();
  Secret out(size);
  uint8_t* p = out.data();
  std::memcpy(p, k_magic.data(), 4);
  p += 4;
  put_uint(p, k_format, 1);
  put_uint(p, is_test_key() ? 1 : 0, 1);
  put_uint(p, m_current, 4);
  put_uint(p, m_versions.size(), 2);
  for (const auto& mk : m_versions) {
    put_uint(p, mk.version, 4);
    put_uint(p, static_cast<uint64_t>(mk.created), 8);
    std::memcpy(p, mk.key.data(), k_key_len);
    p += k_key_len;
  }
  put_uint(p, m_test_seed.size(), 2);
  if (!m_test_seed.empty()) {
    std::memcpy(p, m_test_seed.data(), m_test_seed.size());
  }
  return out;
}

Keyring Keyring::deserialize(std::span<const uint8_t> plaintext)
{
  Reader r(plaintext);
  auto magic = r.bytes(4);
  if (std::memcmp(magic.data(), k_magic.data(), 4) != 0 || r.uint(1) != k_format) {
    throw corrupt("unknown payload format");
  }
  const auto flags = r.uint(1);
  Keyring ring;
  ring.m_current = static_cast<uint32_t>(r.uint(4));
  const auto count = r.uint(2);
  for (uint64_t i = 0; i < count; ++i) {
    MasterKey mk;
    mk.version = static_cast<uint32_t>(r.uint(4));
    mk.created = static_cast<int64_t>(r.uint(8));
    mk.key = Secret::copy_of(r.bytes(k_key_len));
    if (!ring.m_versions.empty() && mk.version <= ring.m_versions.back().version) {
      throw corrupt("versions out of order");
    }
    ring.m_versions.push_back(std::move(mk));
  }
  const auto seed_len = r.uint(2);
  ring.m_test_seed = Secret::copy_of(r.bytes(seed_len));
  if (!r.done() || ring.m_versions.empty() || ((flags & 1) != 0) != ring.is_test_key()) {
    throw corrupt("inconsistent payload");
  }
  if (std::none_of(ring.m_versions.begin(), ring.m_versions.end(),
                   [&](const MasterKey& k) { return k.version == ring.m_current; })) {
    throw corrupt(fmt::format("the current version {} is not in the payload", ring.m_current));
  }
  return ring;
}

KdfParams kdf_profile(std::string_view name)
{
  if (name == "interactive") {
    return {crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE};
  }
  if (name == "moderate") {
    return {crypto_pwhash_OPSLIMIT_MODERATE, crypto_pwhash_MEMLIMIT_MODERATE};
  }
  if (name == "sensitive") {
    return {crypto_pwhash_OPSLIMIT_SENSITIVE, crypto_pwhash_MEMLIMIT_SENSITIVE};
  }
  throw Error(Exit::usage, "unknown KDF profile \"{}\" (interactive, moderate or sensitive)", name);
}

Secret encode_key_file(const Keyring& ring, const Secret* passphrase, KdfParams kdf)
{
  init();
  std::string header(k_comment);
  header += "format: fleetkey-master-key 1\n";
  Secret plaintext = ring.serialize();
  Secret payload;
  if (passphrase != nullptr) {
    uint8_t salt[k_salt_len];
    uint8_t nonce[k_nonce_len];
    randombytes_buf(salt, sizeof salt);
    randombytes_buf(nonce, sizeof nonce);
    header += "encryption: xchacha20poly1305\n";
    header += "kdf: argon2id13\n";
    header += fmt::format("kdf-opslimit: {}\nkdf-memlimit: {}\n", kdf.opslimit, kdf.memlimit);
    header += fmt::format("kdf-salt: {}\n", util::to_hex(salt));
    header += fmt::format("nonce: {}\n", util::to_hex(nonce));
    header += fmt::format("test-key: {}\n", ring.is_test_key() ? "yes" : "no");
    header += fmt::format("current-version: {}\n", ring.current_version());
    header += fmt::format("fingerprint: {}\n", fingerprint(ring.current().key.span()));
    const Secret file_key = derive_file_key(*passphrase, salt, kdf);
    payload = Secret(plaintext.size() + crypto_aead_xchacha20poly1305_ietf_ABYTES);
    crypto_aead_xchacha20poly1305_ietf_encrypt(payload.data(), nullptr, plaintext.data(), plaintext.size(),
                                               reinterpret_cast<const uint8_t*>(header.data()), header.size(), nullptr,
                                               nonce, file_key.data());
  } else {
    header += "encryption: none\n";
    header += fmt::format("test-key: {}\n", ring.is_test_key() ? "yes" : "no");
    header += fmt::format("current-version: {}\n", ring.current_version());
    header += fmt::format("fingerprint: {}\n", fingerprint(ring.current().key.span()));
    uint8_t digest[32];
    sha256(plaintext.span(), digest);
    header += fmt::format("checksum: {}\n", util::to_hex(digest));
    payload = std::move(plaintext);
  }
  return with_payload(header, payload);
}

namespace {

// The "name: value" lines of a key file's header, after its comment line.
Fields header_fields(std::string_view header)
{
  NameValues lines;
  if (!split_name_values(header.substr(k_comment.size()), lines)) {
    throw corrupt("bad header line");
  }
  Fields fields;
  for (const auto& [name, value] : lines) {
    fields.items.emplace_back(name, value);
  }
  return fields;
}

// An encrypted key file's key ring: the file key from the passphrase (Argon2id with the header's
// parameters, which go to `info`), then XChaCha20-Poly1305 with the header as associated data.
Secret decrypt_payload(const Fields& fields, std::string_view header, const Secret& payload,
                       const PassphraseSource& passphrase, KeyFileHeader& info)
{
  if (fields.items.size() != 10 || fields.get("kdf") != "argon2id13") {
    throw corrupt("unexpected header lines");
  }
  info.encrypted = true;
  info.kdf.opslimit = parse_uint(fields.get("kdf-opslimit"), "kdf-opslimit");
  info.kdf.memlimit = parse_uint(fields.get("kdf-memlimit"), "kdf-memlimit");
  if (info.kdf.opslimit < crypto_pwhash_OPSLIMIT_MIN || info.kdf.opslimit > k_max_opslimit
      || info.kdf.memlimit < crypto_pwhash_MEMLIMIT_MIN || info.kdf.memlimit > k_max_memlimit) {
    throw corrupt("KDF parameters out of range");
  }
  const auto salt = parse_hex(fields.get("kdf-salt"), k_salt_len, "kdf-salt");
  const auto nonce = parse_hex(fields.get("nonce"), k_nonce_len, "nonce");
  if (payload.size() < crypto_aead_xchacha20poly1305_ietf_ABYTES) {
    throw corrupt("payload is truncated");
  }
  const Secret pass = passphrase();
  const Secret file_key = derive_file_key(pass, salt, info.kdf);
  Secret plaintext(payload.size() - crypto_aead_xchacha20poly1305_ietf_ABYTES);
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(plaintext.data(), nullptr, nullptr, payload.data(), payload.size(),
                                                 reinterpret_cast<const uint8_t*>(header.data()), header.size(),
                                                 nonce.data(), file_key.data())
      != 0) {
    throw Error(Exit::key, "cannot decrypt the master key: wrong passphrase, or the key file was modified");
  }
  return plaintext;
}

} // namespace

Keyring decode_key_file(std::string_view text, const PassphraseSource& passphrase, KeyFileHeader* header_out)
{
  init();
  if (text.substr(0, k_comment.size()) != k_comment) {
    throw Error(Exit::key, "not a fleetkey master key file");
  }
  const auto payload_at = text.find("\npayload: ");
  if (payload_at == std::string_view::npos || text.back() != '\n') {
    throw corrupt("no payload");
  }
  const std::string_view header = text.substr(0, payload_at + 1);
  const std::string_view payload_b64 = text.substr(payload_at + 10, text.size() - payload_at - 11);
  const Fields fields = header_fields(header);
  if (fields.get("format") != "fleetkey-master-key 1") {
    throw Error(Exit::key, "unsupported master key file format \"{}\"", fields.get("format"));
  }
  Secret payload = payload_of(payload_b64);
  KeyFileHeader info;
  info.test_key = fields.get("test-key") == "yes";
  info.current_version = static_cast<uint32_t>(parse_uint(fields.get("current-version"), "current-version"));
  const auto encryption = fields.get("encryption");
  Secret plaintext;
  if (encryption == "none") {
    if (fields.items.size() != 6) {
      throw corrupt("unexpected header lines");
    }
    const auto digest_want = parse_hex(fields.get("checksum"), 32, "checksum");
    uint8_t digest[32];
    sha256(payload.span(), digest);
    if (!equal(digest, digest_want)) {
      throw corrupt("checksum mismatch");
    }
    plaintext = std::move(payload); // unencrypted: the key ring itself
  } else if (encryption == "xchacha20poly1305") {
    plaintext = decrypt_payload(fields, header, payload, passphrase, info);
  } else {
    throw Error(Exit::key, "unsupported master key encryption \"{}\"", encryption);
  }
  Keyring ring = Keyring::deserialize(plaintext.span());
  if (ring.current_version() != info.current_version || ring.is_test_key() != info.test_key
      || fields.get("fingerprint") != fingerprint(ring.current().key.span())) {
    throw corrupt("header does not match payload");
  }
  if (header_out != nullptr) {
    *header_out = info;
  }
  return ring;
}

std::optional<std::string> key_file_fingerprint(std::string_view text)
{
  if (text.substr(0, k_comment.size()) != k_comment) {
    return std::nullopt;
  }
  const auto payload_at = text.find("\npayload: ");
  if (payload_at == std::string_view::npos) {
    return std::nullopt;
  }
  try {
    const Fields fields = header_fields(text.substr(0, payload_at + 1));
    if (fields.get("format") != "fleetkey-master-key 1") {
      return std::nullopt;
    }
    return std::string(fields.get("fingerprint"));
  } catch (const Error&) {
    return std::nullopt;
  }
}

Keyring read_key_file(const std::string& path, const PassphraseSource& passphrase, KeyFileHeader* header,
                      Secret* text_out)
{
  std::optional<Secret> text;
  try {
    text.emplace(read_private_file(path, "master key file", k_max_secret_file, true));
  } catch (const Error&) {
    // Looked at only when the open failed: every command reads this file.
    if (!util::exists(path)) {
      throw Error(Exit::key, "no master key file at {} (run fleetkey init, or pass --master-key)", path);
    }
    throw;
  }
  Keyring ring = decode_key_file(as_text(*text), passphrase, header);
  if (text_out != nullptr) {
    *text_out = std::move(*text);
  }
  return ring;
}

Secret write_key_file(const std::string& path, const Keyring& ring, const Secret* passphrase, KdfParams kdf,
                      Replace replace)
{
  Secret text = encode_key_file(ring, passphrase, kdf);
  // Every version stays in the file, so each rotate makes it longer: refuse to write what
  // read_key_file would then refuse to read.
  if (text.size() > k_max_secret_file) {
    throw Error(Exit::key,
                "master key file {} would be {} bytes with {} versions, more than the {} bytes fleetkey reads", path,
                text.size(), ring.versions().size(), k_max_secret_file);
  }
  util::AtomicFile file(path, replace == Replace::yes ? util::Overwrite::yes : util::Overwrite::no);
  file.write(text.span());
  file.commit();
  return text;
}

} // namespace fleetkey::crypto
