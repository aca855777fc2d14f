#pragma once
// Printing keys in the formats firmware and tools read: the one place a secret becomes text.

#include <fleetkey/crypto/secret.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fleetkey::fleet {

enum class KeyFormat { hex, base64, c, psk, json };
KeyFormat parse_key_format(std::string_view name); // throws Error(usage)

// How a key is written inside JSON and keys files (--key-format): standard base64 with padding (the
// default everywhere) or lower-case hex.
enum class KeyEncoding { base64, hex };
KeyEncoding parse_key_encoding(std::string_view name); // "base64" or "hex"; throws Error(usage)
std::string_view key_encoding_name(KeyEncoding encoding);

struct KeyMeta
{
  std::string kind; // "device" or "user"
  std::string device;
  std::optional<std::string> user;
  std::optional<uint64_t> epoch;
  std::optional<std::string> purpose;
  uint32_t key_version = 0;
  std::string fingerprint;
  bool test_key = false;
  KeyEncoding encoding = KeyEncoding::base64; // of "key" in KeyFormat::json
};

// The text, newline included, in guarded memory: the caller writes it out and lets it go.
crypto::Secret format_key(KeyFormat format, const crypto::Secret& key, const KeyMeta& meta);

// Purpose names: 1-32 characters of a-z 0-9 _ . -
void validate_purpose(std::string_view purpose);

} // namespace fleetkey::fleet
