#include <fleetkey/core/error.hpp>
#include <fleetkey/fleet/keys_sink.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fleetkey::fleet {

namespace {

constexpr size_t k_chunk = size_t{1} << 20;

// The descriptor a name denotes in this process, if it names one: "-" and /dev/stdout are 1.
std::optional<int> descriptor_name(std::string_view path)
{
  if (path == "-" || path == "/dev/stdout") {
    return STDOUT_FILENO;
  }
  if (path == "/dev/stderr") {
    return STDERR_FILENO;
  }
  for (const std::string_view prefix : {std::string_view("/dev/fd/"), std::string_view("/proc/self/fd/")}) {
    if (path.size() > prefix.size() && path.substr(0, prefix.size()) == prefix) {
      const auto digits = path.substr(prefix.size());
      int fd = -1;
      const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), fd);
      if (ec == std::errc() && end == digits.data() + digits.size() && fd >= 0) {
        return fd;
      }
    }
  }
  return std::nullopt;
}

} // namespace

void KeysSink::check(const std::string& path)
{
  if (path.empty()) {
    throw Error(Exit::usage, "--keys-out needs a file name, or - for standard output");
  }
  if (descriptor_name(path)) {
    return;
  }
  struct stat st
  {
  };
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    throw Error(Exit::usage, "--keys-out {} is a directory", path);
  }
  if ((::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode))
      || (::stat(path.c_str(), &st) != 0 && util::exists(path))) {
    throw Error(Exit::conflict, "--keys-out {} already exists (keys files are never overwritten)", path)
        .with_reason("file_exists");
  }
}

KeysSink::KeysSink(const std::string& path)
    : m_path(path)
{
  check(path);
  if (const auto fd = descriptor_name(path)) {
    if (::fcntl(*fd, F_GETFL) < 0) {
      throw Error(Exit::usage, "--keys-out {}: descriptor {} is not open", path, *fd);
    }
    m_fd = *fd;
    m_stdout = *fd == STDOUT_FILENO;
    return;
  }
  struct stat st
  {
  };
  if (::stat(path.c_str(), &st) == 0) {
    // check(): neither a directory nor a regular file. A FIFO or a device: written in place. Opening a FIFO waits for
    // its reader.
    m_owned = util::Fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY));
    if (!m_owned.valid()) {
      throw Error(Exit::failure, "cannot open --keys-out {}: {}", path, std::strerror(errno));
    }
    m_fd = m_owned.get();
    return;
  }
  m_file.emplace(path, util::Overwrite::no);
}

KeysSink::~KeysSink() = default;

void KeysSink::write(std::string_view data)
{
  if (m_file) {
    m_file->write(data);
    return;
  }
  while (!data.empty()) {
    if (m_chunks.empty() || m_used == k_chunk) {
      m_chunks.emplace_back(k_chunk);
      m_used = 0;
    }
    const size_t n = std::min(data.size(), k_chunk - m_used);
    std::memcpy(m_chunks.back().data() + m_used, data.data(), n);
    m_used += n;
    data.remove_prefix(n);
  }
}

void KeysSink::commit()
{
  if (m_file) {
    m_file->commit();
    return;
  }
  for (size_t i = 0; i < m_chunks.size(); ++i) {
    const size_t n = i + 1 == m_chunks.size() ? m_used : k_chunk;
    if (!util::write_fully(m_fd, std::span<const uint8_t>(m_chunks[i].data(), n))) {
      throw Error(Exit::failure, "cannot write the keys to {}: {}", m_path, std::strerror(errno));
    }
  }
  m_chunks.clear();
}

} // namespace fleetkey::fleet
