#include <fleetkey/core/error.hpp>
#include <fleetkey/fleet/keys.hpp>
#include <fleetkey/util/bytes.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sodium.h>

#include <cstring>

namespace fleetkey::fleet {

KeyFormat parse_key_format(std::string_view name)
{
  if (name == "hex")
    return KeyFormat::hex;
  if (name == "base64")
    return KeyFormat::base64;
  if (name == "c")
    return KeyFormat::c;
  if (name == "psk")
    return KeyFormat::psk;
  if (name == "json")
    return KeyFormat::json;
  throw Error(Exit::usage, "unknown key format \"{}\" (hex, base64, c, psk or json)", name);
}

KeyEncoding parse_key_encoding(std::string_view name)
{
  if (name == "base64")
    return KeyEncoding::base64;
  if (name == "hex")
    return KeyEncoding::hex;
  throw Error(Exit::usage, "unknown key encoding \"{}\" (base64 or hex)", name);
}

std::string_view key_encoding_name(KeyEncoding encoding)
{
  return encoding == KeyEncoding::hex ? "hex" : "base64";
}

void validate_purpose(std::string_view purpose)
{
  if (purpose.empty() || purpose.size() > 32
      || purpose.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_.-") != std::string_view::npos) {
    throw Error(Exit::usage, "purpose \"{}\" must be 1 to 32 characters of a-z 0-9 _ . -", purpose);
  }
}

namespace {

// A C identifier from the purpose: "enc" -> fleetkey_device_key_enc.
std::string c_name(const KeyMeta& meta)
{
  std::string name = fmt::format("fleetkey_{}_key", meta.kind);
  if (meta.purpose) {
    name += '_';
    for (char ch : *meta.purpose) {
      name += (ch == '.' || ch == '-') ? '_' : ch;
    }
  }
  return name;
}

// A device id or user name inside the C comment (fleetkey(1), KEY FORMATS): printable ASCII but * and /
// as it is, every other byte as \xNN, so that the name can hold neither */ nor /*.
std::string c_comment_safe(std::string_view s)
{
  std::string out;
  for (const char c : s) {
    const auto ch = static_cast<unsigned char>(c);
    if (ch >= 0x20 && ch < 0x7F && ch != '*' && ch != '/') {
      out += static_cast<char>(ch);
    } else {
      out += fmt::format("\\x{:02x}", ch);
    }
  }
  return out;
}

} // namespace

crypto::Secret format_key(KeyFormat format, const crypto::Secret& key, const KeyMeta& meta)
{
  // Room for the form asked for, small enough for most ids to be a slot of the secure heap rather than a
  // region of its own (device key --from formats thousands). The C array: under 500 bytes of fixed text,
  // ids and names quoted at most 4 bytes for each of theirs, 6 to 7 bytes a key byte. JSON: under 256
  // bytes of names, numbers and the fingerprint, ids and names escaped at most 6 bytes for each of theirs
  // (the purpose is at most 32), the key in hex or base64. The rest: a name, a colon, the key in hex.
  const size_t names = meta.device.size() + (meta.user ? meta.user->size() : 0);
  const size_t capacity = format == KeyFormat::c      ? 768 + 4 * names + 8 * key.size()
                          : format == KeyFormat::json ? 320 + 6 * names + 2 * key.size()
                                                      : 16 + names + 2 * key.size();
  crypto::SecretText text(capacity);
  switch (format) {
  case KeyFormat::hex:
    text.append_hex(key.span()).append("\n");
    break;
  case KeyFormat::base64:
    text.append_base64(key.span(), sodium_base64_VARIANT_ORIGINAL).append("\n");
    break;
  case KeyFormat::psk:
    // identity:hexkey, as in GnuTLS's PSK files; the identity is the device id (the user name for a user key),
    // as it is: it may hold ':', so the key is after the last colon (fleetkey(1), KEY FORMATS).
    text.append(meta.user ? *meta.user : meta.device).append(":").append_hex(key.span()).append("\n");
    break;
  case KeyFormat::c: {
    const std::string name = c_name(meta);
    std::string head = fmt::format("/* fleetkey {} key for device \"{}\"", meta.kind, c_comment_safe(meta.device));
    if (meta.user) {
      head += fmt::format(", user \"{}\" epoch {}", c_comment_safe(*meta.user), *meta.epoch);
    }
    if (meta.purpose) {
      head += fmt::format(", purpose \"{}\"", *meta.purpose);
    }
    head += fmt::format(", master key v{}, fingerprint {}{} */\n", meta.key_version, meta.fingerprint,
                        meta.test_key ? ", TEST KEY" : "");
    head += fmt::format("static const unsigned char {}[{}] = {{", name, key.size());
    text.append(head);
    for (size_t i = 0; i < key.size(); ++i) {
      text.append(i % 8 == 0 ? "\n    0x" : " 0x").append_hex(key.span().subspan(i, 1));
      if (i + 1 < key.size()) {
        text.append(",");
      }
    }
    text.append(fmt::format("\n}};\nstatic const unsigned int {}_len = {};\n", name, key.size()));
    break;
  }
  case KeyFormat::json: {
    nlohmann::ordered_json j;
    j["kind"] = meta.kind;
    j["device"] = meta.device;
    if (meta.user) {
      j["user"] = *meta.user;
      j["epoch"] = *meta.epoch;
    }
    j["purpose"] = meta.purpose ? nlohmann::ordered_json(*meta.purpose) : nlohmann::ordered_json(nullptr);
    j["key_version"] = meta.key_version;
    j["fingerprint"] = meta.fingerprint;
    j["test_key"] = meta.test_key;
    // The key is spliced in last, so that the json object never holds it.
    std::string head = j.dump();
    head.pop_back();
    text.append(head).append(",\"key\":\"");
    if (meta.encoding == KeyEncoding::hex) {
      text.append_hex(key.span());
    } else {
      text.append_base64(key.span(), sodium_base64_VARIANT_ORIGINAL);
    }
    text.append("\"}\n");
    break;
  }
  }
  return std::move(text).take();
}

} // namespace fleetkey::fleet
