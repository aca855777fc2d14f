#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/pkcs11.hpp>
#include <fleetkey/util/bytes.hpp>
#include <fleetkey/util/text.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <string>
#include <vector>

namespace fleetkey::crypto::pkcs11 {

namespace {

std::string pct_decode(std::string_view s, std::string_view uri)
{
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    const int hi = i + 2 < s.size() ? util::hex_digit_value(s[i + 1]) : -1;
    const int lo = i + 2 < s.size() ? util::hex_digit_value(s[i + 2]) : -1;
    if (hi < 0 || lo < 0) {
      throw Error(Exit::usage, "PKCS#11 URI \"{}\" has a bad percent-encoding", uri);
    }
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

std::string pct_encode(std::string_view s, bool path)
{
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) != 0 || c == '-' || c == '.' || c == '_' || c == '~' || (path && c == '/')) {
      out += c;
    } else {
      out += fmt::format("%{:02X}", u);
    }
  }
  return out;
}

} // namespace

Uri parse_uri(std::string_view text)
{
  constexpr std::string_view scheme = "pkcs11:";
  if (text.size() < scheme.size() || text.substr(0, scheme.size()) != scheme) {
    throw Error(Exit::usage, "\"{}\" is not a PKCS#11 URI (pkcs11:token=LABEL;...)", text);
  }
  Uri uri;
  std::vector<std::string> seen;
  const auto q = text.find('?');
  const auto path =
      text.substr(scheme.size(), q == std::string_view::npos ? std::string_view::npos : q - scheme.size());
  const auto query = q == std::string_view::npos ? std::string_view() : text.substr(q + 1);
  const auto each = [&](std::string_view part, char sep, auto&& take) {
    while (!part.empty()) {
      const auto end = part.find(sep);
      const auto attr = part.substr(0, end);
      part = end == std::string_view::npos ? std::string_view() : part.substr(end + 1);
      if (attr.empty()) {
        continue;
      }
      const auto eq = attr.find('=');
      if (eq == std::string_view::npos) {
        throw Error(Exit::usage, "PKCS#11 URI attribute \"{}\" has no value", attr);
      }
      const std::string name(attr.substr(0, eq));
      if (std::find(seen.begin(), seen.end(), name) != seen.end()) {
        throw Error(Exit::usage, "PKCS#11 URI attribute \"{}\" is given twice", name);
      }
      seen.push_back(name);
      take(name, pct_decode(attr.substr(eq + 1), text));
    }
  };
  each(path, ';', [&](const std::string& name, std::string value) {
    if (name == "token") {
      uri.token = std::move(value);
    } else if (name == "manufacturer") {
      uri.manufacturer = std::move(value);
    } else if (name == "model") {
      uri.model = std::move(value);
    } else if (name == "serial") {
      uri.serial = std::move(value);
    } else if (name == "object") {
      if (value.empty() || value.size() > 64 || !util::is_printable_utf8(value)) {
        throw Error(Exit::usage, "PKCS#11 URI object= must be 1 to 64 bytes of printable text");
      }
      uri.object = std::move(value);
    } else if (name == "slot-id") {
      uint64_t id = 0;
      const auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), id);
      if (ec != std::errc() || p != value.data() + value.size() || value.empty()) {
        throw Error(Exit::usage, "PKCS#11 URI slot-id must be a decimal number");
      }
      uri.slot_id = id;
    } else if (name == "type") {
      if (value != "secret-key") {
        throw Error(Exit::usage, "PKCS#11 URI type must be secret-key (the master key is a secret key)");
      }
    } else {
      throw Error(Exit::usage,
                  "PKCS#11 URI attribute \"{}\" is not supported (token, manufacturer, model, serial, "
                  "slot-id, object, type; module-path)",
                  name);
    }
  });
  each(query, '&', [&](const std::string& name, std::string value) {
    if (name == "module-path") {
      uri.module_path = std::move(value);
    } else if (name == "pin-value" || name == "pin-source") {
      throw Error(Exit::usage,
                  "PKCS#11 URI {} is refused: the PIN comes from --pin-file, FLEETKEY_PKCS11_PIN_FILE or "
                  "FLEETKEY_PKCS11_PIN, never from the command line",
                  name);
    } else {
      throw Error(Exit::usage, "PKCS#11 URI query attribute \"{}\" is not supported (module-path)", name);
    }
  });
  return uri;
}

std::string Uri::text() const
{
  std::vector<std::string> attrs;
  const auto add = [&attrs](std::string_view name, const std::string& value) {
    if (!value.empty()) {
      attrs.push_back(fmt::format("{}={}", name, pct_encode(value, false)));
    }
  };
  add("token", token);
  add("manufacturer", manufacturer);
  add("model", model);
  add("serial", serial);
  if (slot_id) {
    attrs.push_back(fmt::format("slot-id={}", *slot_id));
  }
  add("object", object);
  std::string out = "pkcs11:";
  for (size_t i = 0; i < attrs.size(); ++i) {
    out += (i > 0 ? ";" : "") + attrs[i];
  }
  if (!module_path.empty()) {
    out += "?module-path=" + pct_encode(module_path, true);
  }
  return out;
}

std::string object_label(std::string_view object, uint32_t version)
{
  return fmt::format("{}/v{}", object, version);
}

} // namespace fleetkey::crypto::pkcs11
