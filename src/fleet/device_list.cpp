#include "fleet/device_list.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <set>

namespace fleetkey::fleet {

std::vector<registry::DeviceRecord> read_listed_devices(registry::Store& reg, const std::string& path,
                                                        const DeviceListRules& rules)
{
  const bool from_stdin = rules.dash_is_stdin && path == "-";
  const std::string name = from_stdin ? std::string("stdin") : path;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> owned(from_stdin ? nullptr : std::fopen(path.c_str(), "re"),
                                                        &std::fclose);
  if (!from_stdin && !owned) {
    throw Error(errno == ENOENT ? rules.missing_file : Exit::failure, "cannot read {}: {}", path, std::strerror(errno));
  }
  std::FILE* file = from_stdin ? stdin : owned.get();
  std::vector<registry::DeviceRecord> devices;
  std::set<std::string, std::less<>> seen;
  size_t line_no = 0;
  std::string text;
  for (bool more = true; more;) {
    text.clear();
    int c = 0;
    // Each line bounded by the longest device id: a file of one huge line costs nothing.
    while ((c = getc_unlocked(file)) != EOF && c != '\n') {
      if (text.size() <= 129) {
        text.push_back(static_cast<char>(c));
      }
    }
    if (c == EOF) {
      if (std::ferror(file) != 0) {
        throw Error(Exit::failure, "cannot read {}: {}", name, std::strerror(errno));
      }
      more = false;
      if (text.empty()) {
        break;
      }
    }
    ++line_no;
    std::string_view line = text;
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    if (line.empty()) {
      continue;
    }
    if (line.size() > 128) {
      throw Error(Exit::usage, "{}:{}: line is longer than 128 bytes (the longest device id)", name, line_no);
    }
    if (!seen.emplace(line).second) {
      throw Error(Exit::usage, "{}:{}: device \"{}\" is listed twice", name, line_no, line);
    }
    auto d = reg.device(line);
    if (!d) {
      throw Error(Exit::not_found, "{}:{}: device \"{}\" is not registered", name, line_no, line);
    }
    if (d->status != "active") {
      throw Error(Exit::conflict, "{}:{}: device \"{}\" is revoked{}", name, line_no, line, rules.revoked_why)
          .with_reason(rules.revoked_reason);
    }
    devices.push_back(std::move(*d));
  }
  return devices;
}

} // namespace fleetkey::fleet
