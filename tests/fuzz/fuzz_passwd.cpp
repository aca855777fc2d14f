// Fuzzes util::passwd_name, the /etc/passwd reader of the static build, on the input as a passwd
// file (through a memfd) and uids from the input: it never crashes, and a name it returns is
// non-empty, not a NIS "+"/"-" entry and holds no ':' or line break.
#include <fleetkey/util/file.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/mman.h>
#include <unistd.h>

namespace {

void check(bool ok)
{
  if (!ok) {
    std::abort();
  }
}

int memfd()
{
  static const int fd = ::memfd_create("passwd", MFD_CLOEXEC);
  check(fd >= 0);
  return fd;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
  const int fd = memfd();
  check(::ftruncate(fd, 0) == 0);
  check(::pwrite(fd, data, size, 0) == static_cast<ssize_t>(size));
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  uint32_t uid_from_input = 0;
  std::memcpy(&uid_from_input, data, std::min(size, sizeof uid_from_input));
  for (const uint32_t uid : {0u, 1000u, uid_from_input % 70000u}) {
    if (const auto name = fleetkey::util::passwd_name(path, uid)) {
      check(!name->empty() && name->front() != '+' && name->front() != '-');
      check(name->find_first_of(":\n") == std::string::npos);
    }
  }
  return 0;
}
