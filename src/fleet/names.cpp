// The checks of what users type that every command shares: names, revocation reasons, labels.
#include <fleetkey/core/error.hpp>
#include <fleetkey/fleet/fleet.hpp>
#include <fleetkey/util/text.hpp>

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fleetkey::fleet {

void validate_name(std::string_view value, std::string_view what)
{
  if (value.empty() || value.size() > 128) {
    throw Error(Exit::usage, "{} must be 1 to 128 bytes long (got {})", what, value.size());
  }
  if (!util::is_printable_utf8(value)) {
    throw Error(Exit::usage, "{} must be printable UTF-8 without control characters", what);
  }
  if (const auto cp = util::invisible_or_bidi(value); cp >= 0) {
    throw Error(Exit::usage, "{} must not contain invisible or bidirectional control characters (U+{:04X})", what, cp);
  }
}

void validate_reason(std::string_view reason)
{
  if (reason.empty() || reason.size() > 1024 || !util::is_printable_utf8(reason)) {
    throw Error(Exit::usage, "--reason must be 1 to 1024 bytes of printable text");
  }
}

std::pair<std::string, std::string> parse_label(std::string_view text, std::string_view what)
{
  const auto eq = text.find('=');
  if (eq == std::string_view::npos) {
    throw Error(Exit::usage, "{} \"{}\" is not KEY=VALUE", what, text);
  }
  const auto key = text.substr(0, eq);
  const auto value = text.substr(eq + 1);
  const bool key_ok = !key.empty() && key.size() <= 64
                      && key.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
                             == std::string_view::npos;
  if (!key_ok) {
    throw Error(Exit::usage, "{} key \"{}\" must be 1 to 64 characters of A-Z a-z 0-9 _ . -", what, key);
  }
  if (value.size() > 256 || !util::is_printable_utf8(value)) {
    throw Error(Exit::usage, "{} \"{}\" value must be at most 256 bytes of printable UTF-8", what, key);
  }
  return {std::string(key), std::string(value)};
}

std::map<std::string, std::string> parse_labels(const std::vector<std::string>& labels)
{
  std::map<std::string, std::string> out;
  for (const auto& l : labels) {
    auto [k, v] = parse_label(l);
    if (out.contains(k)) {
      throw Error(Exit::usage, "label \"{}\" is given twice", k);
    }
    out.emplace(std::move(k), std::move(v));
  }
  return out;
}

} // namespace fleetkey::fleet
