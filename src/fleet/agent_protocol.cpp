#include "fleet/agent_protocol.hpp"

#include <fleetkey/core/error.hpp>

#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

namespace fleetkey::fleet::agent {

uint64_t get_be(const uint8_t* p, size_t width)
{
  uint64_t v = 0;
  for (size_t i = 0; i < width; ++i) {
    v = (v << 8) | p[i];
  }
  return v;
}

void put_be(std::string& out, uint64_t v, size_t width)
{
  for (size_t i = width; i-- > 0;) {
    out.push_back(static_cast<char>(static_cast<uint8_t>(v >> (8 * i))));
  }
}

bool read_exact(int fd, uint8_t* p, size_t n)
{
  while (n > 0) {
    const ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) {
      continue;
    }
    if (r <= 0) {
      return false;
    }
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

bool send_all(int fd, const uint8_t* p, size_t n)
{
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) {
      continue;
    }
    if (w <= 0) {
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

std::string frame(std::string_view body)
{
  std::string out;
  put_be(out, body.size(), 4);
  out.append(body);
  return out;
}

void set_timeouts(int fd)
{
  const timeval tv{k_io_timeout_s, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

sockaddr_un address_of(const std::string& path)
{
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    throw Error(Exit::key, "agent socket path \"{}\" is empty or longer than {} bytes", path, sizeof addr.sun_path - 1);
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

} // namespace fleetkey::fleet::agent
