#include "crypto/name_value.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/crypto/pkcs11.hpp>
#include <fleetkey/util/text.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <string>
#include <vector>

namespace fleetkey::crypto::pkcs11 {

// --- The HSM reference (the key file of an HSM home) ---

namespace {

constexpr std::string_view k_comment =
    "# fleetkey master key file: the master key is in a PKCS#11 token. Layout: fleetkey-formats(5).\n";
constexpr std::string_view k_format = "fleetkey-hsm-reference 1";

Error corrupt(std::string_view why)
{
  return Error(Exit::key, "the master key file (a PKCS#11 reference) is corrupted: {}", why);
}

template<typename T>
T number(std::string_view text, std::string_view what)
{
  T v{};
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || text.empty()) {
    throw corrupt(fmt::format("bad {}", what));
  }
  return v;
}

std::vector<std::string_view> words(std::string_view s)
{
  std::vector<std::string_view> out;
  for (size_t at = 0;;) {
    const auto sp = s.find(' ', at);
    out.push_back(s.substr(at, sp == std::string_view::npos ? std::string_view::npos : sp - at));
    if (sp == std::string_view::npos) {
      return out;
    }
    at = sp + 1;
  }
}

bool is_hex(std::string_view s, size_t len)
{
  return s.size() == len && s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

} // namespace

bool is_reference(std::string_view text)
{
  return text.substr(0, k_comment.size()) == k_comment;
}

std::string encode_reference(const Reference& ref)
{
  std::string out(k_comment);
  out += fmt::format("format: {}\n", k_format);
  out += fmt::format("uri: {}\n", ref.uri);
  out += fmt::format("test-key: {}\n", ref.test_key ? "yes" : "no");
  out += fmt::format("current-version: {}\n", ref.current);
  for (const auto& v : ref.versions) {
    out += fmt::format("version: {} {} {} {}\n", v.version, v.created, v.fingerprint, v.check);
  }
  if (ref.test_key) {
    out += fmt::format("test-seed: {}\n", ref.test_seed_hex);
  }
  return out;
}

Reference decode_reference(std::string_view text)
{
  if (!is_reference(text)) {
    throw Error(Exit::key, "not a fleetkey PKCS#11 reference");
  }
  if (text.back() != '\n') {
    throw corrupt("no final newline");
  }
  NameValues lines;
  if (!split_name_values(text.substr(k_comment.size()), lines)) {
    throw corrupt("bad line");
  }
  if (lines.size() < 5 || lines[0].first != "format" || lines[1].first != "uri" || lines[2].first != "test-key"
      || lines[3].first != "current-version") {
    throw corrupt("unexpected lines");
  }
  if (lines[0].second != k_format) {
    throw Error(Exit::key, "unsupported master key file format \"{}\"", lines[0].second);
  }
  Reference ref;
  ref.uri = std::string(lines[1].second);
  parse_uri(ref.uri);
  ref.test_key = lines[2].second == "yes";
  ref.current = number<uint32_t>(lines[3].second, "current-version");
  size_t i = 4;
  for (; i < lines.size() && lines[i].first == "version"; ++i) {
    const auto f = words(lines[i].second);
    if (f.size() != 4 || !is_hex(f[2], 32) || !is_hex(f[3], 32)) {
      throw corrupt("bad version line");
    }
    ReferenceVersion v{number<uint32_t>(f[0], "version"), number<int64_t>(f[1], "created"), std::string(f[2]),
                       std::string(f[3])};
    if (!ref.versions.empty() && v.version <= ref.versions.back().version) {
      throw corrupt("versions out of order");
    }
    ref.versions.push_back(std::move(v));
  }
  if (ref.test_key) {
    if (i + 1 != lines.size() || lines[i].first != "test-seed" || !util::from_hex(lines[i].second)) {
      throw corrupt("a test key without its test-seed line");
    }
    ref.test_seed_hex = std::string(lines[i].second);
  } else if (i != lines.size()) {
    throw corrupt("unexpected lines");
  }
  if (ref.versions.empty() || std::none_of(ref.versions.begin(), ref.versions.end(), [&](const ReferenceVersion& v) {
        return v.version == ref.current;
      })) {
    throw corrupt("the current version is not listed");
  }
  return ref;
}

Keyring reference_ring(const Reference& ref, const std::shared_ptr<Token>& token)
{
  const Uri uri = parse_uri(ref.uri);
  std::vector<MasterKey> keys;
  for (const auto& v : ref.versions) {
    token->serve(v.version, object_label(uri.object, v.version), v.check);
    MasterKey mk;
    mk.version = v.version;
    mk.created = v.created;
    mk.source = token;
    mk.source_fingerprint = v.fingerprint;
    keys.push_back(std::move(mk));
  }
  return Keyring::held_elsewhere(std::move(keys), ref.current, ref.test_key);
}

} // namespace fleetkey::crypto::pkcs11
