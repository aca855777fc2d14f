#pragma once
// Private to src/crypto: the "name: value" lines of the two text formats of a master key file, the
// key file's header (keyfile.cpp) and the HSM reference (pkcs11_reference.cpp).

#include <string_view>
#include <utility>
#include <vector>

namespace fleetkey::crypto {

using NameValues = std::vector<std::pair<std::string_view, std::string_view>>;

// Appends the lines of `text` (each ended by a newline) to `out`, split at their first ": "; false at a
// line without one.
inline bool split_name_values(std::string_view text, NameValues& out)
{
  while (!text.empty()) {
    const auto nl = text.find('\n');
    const auto line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    const auto colon = line.find(": ");
    if (colon == std::string_view::npos) {
      return false;
    }
    out.emplace_back(line.substr(0, colon), line.substr(colon + 2));
  }
  return true;
}

} // namespace fleetkey::crypto
