#include <fleetkey/util/bytes.hpp>
#include <fleetkey/util/file.hpp>

#include <climits>
#include <fmt/format.h>
#include <sodium.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace fleetkey::util {

namespace {

std::string random_sibling(const std::string& path)
{
  uint8_t rnd[8];
  randombytes_buf(rnd, sizeof rnd);
  char hex[sizeof rnd * 2 + 1];
  sodium_bin2hex(hex, sizeof hex, rnd, sizeof rnd);
  return fmt::format("{}.tmp.{}", path, hex);
}

// "WHAT PATH: strerror(errno)", a failure.
[[noreturn]] void throw_errno(std::string_view what, const std::string& path)
{
  const int e = errno;
  throw FileError(FileError::Kind::failure, e, path, fmt::format("{} {}: {}", what, path, std::strerror(e)));
}

// As throw_errno, after link(2): EEXIST means another file took the name since the constructor checked.
[[noreturn]] void throw_link_errno(std::string_view what, const std::string& path)
{
  const int e = errno;
  throw FileError(e == EEXIST ? FileError::Kind::appeared : FileError::Kind::failure, e, path,
                  fmt::format("{} {}: {}", what, path, std::strerror(e)));
}

} // namespace

Fd& Fd::operator=(Fd&& other) noexcept
{
  if (this != &other) {
    close();
    m_fd = other.release();
  }
  return *this;
}

Fd::~Fd()
{
  close();
}

int Fd::release() noexcept
{
  const int fd = m_fd;
  m_fd = -1;
  return fd;
}

void Fd::close() noexcept
{
  if (m_fd >= 0) {
    ::close(m_fd);
    m_fd = -1;
  }
}

std::string dirname(const std::string& path)
{
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) {
    return ".";
  }
  return slash == 0 ? "/" : path.substr(0, slash);
}

AtomicFile::AtomicFile(std::string path, Overwrite overwrite)
    : m_path(std::move(path))
    , m_overwrite(overwrite)
{
  // commit() gives the file its name after the caller's other changes (a registry commit), so
  // every reason it could fail to is checked here first.
  const std::string_view base = std::string_view(m_path).substr(m_path.find_last_of('/') + 1);
  if (base.empty() || base == "." || base == "..") {
    throw FileError(FileError::Kind::bad_name, 0, m_path, fmt::format("\"{}\" does not name a file", m_path));
  }
  if (base.size() > NAME_MAX) {
    throw FileError(FileError::Kind::bad_name, 0, m_path,
                    fmt::format("file name longer than {} bytes: {}", NAME_MAX, m_path));
  }
  struct stat st
  {
  };
  if (::lstat(m_path.c_str(), &st) == 0) {
    if (overwrite == Overwrite::no) {
      throw FileError(FileError::Kind::exists, EEXIST, m_path, fmt::format("{} already exists", m_path));
    }
    if (S_ISDIR(st.st_mode)) {
      throw FileError(FileError::Kind::failure, EISDIR, m_path,
                      fmt::format("cannot replace {}: it is a directory", m_path));
    }
  }
  // An unnamed file (O_TMPFILE) vanishes with the process if it is killed before commit(), so a
  // half-written file of secrets never lingers. Where the file system lacks it, a named temporary.
  m_fd = Fd(::open(dirname(m_path).c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600));
  if (m_fd.valid()) {
    return;
  }
  // Errors name the file asked for, not a temporary name the user never chose.
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
    throw_errno("cannot create", m_path);
  }
  m_tmp_path = random_sibling(m_path);
  m_fd = Fd(::open(m_tmp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!m_fd.valid()) {
    throw_errno("cannot create", m_path);
  }
}

AtomicFile::~AtomicFile()
{
  if (!m_committed) {
    m_fd.close();
    if (!m_tmp_path.empty()) {
      ::unlink(m_tmp_path.c_str());
    }
  }
}

void AtomicFile::write(std::string_view data)
{
  write(as_bytes(data));
}

bool write_fully(int fd, std::span<const uint8_t> data)
{
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

void AtomicFile::write(std::span<const uint8_t> data)
{
  if (!write_fully(m_fd.get(), data)) {
    throw_errno("cannot write", m_path);
  }
}

void AtomicFile::commit()
{
  if (::fsync(m_fd.get()) != 0) {
    throw_errno("cannot sync", m_path);
  }
  if (m_tmp_path.empty()) {
    // Give the unnamed file a name: its final one, or a temporary one to rename over the old file.
    const std::string proc = fmt::format("/proc/self/fd/{}", m_fd.get());
    const std::string target = m_overwrite == Overwrite::no ? m_path : random_sibling(m_path);
    if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, target.c_str(), AT_SYMLINK_FOLLOW) != 0) {
      throw_link_errno("cannot create", m_path);
    }
    if (m_overwrite == Overwrite::yes) {
      m_tmp_path = target;
    }
  }
  m_fd.close();
  if (m_overwrite == Overwrite::no && !m_tmp_path.empty()) {
    // link() fails if the destination appeared in the meantime, where rename() would replace it.
    if (::link(m_tmp_path.c_str(), m_path.c_str()) != 0) {
      throw_link_errno("cannot create", m_path);
    }
    ::unlink(m_tmp_path.c_str());
  } else if (m_overwrite == Overwrite::yes && ::rename(m_tmp_path.c_str(), m_path.c_str()) != 0) {
    throw_errno("cannot replace", m_path);
  }
  m_committed = true;
  Fd dir(::open(dirname(m_path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.valid()) {
    ::fsync(dir.get());
  }
}

bool exists(const std::string& path)
{
  struct stat st
  {
  };
  return ::lstat(path.c_str(), &st) == 0;
}

Result<std::string> read_file(const std::string& path, size_t max_size)
{
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    return fail(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  }
  std::string out;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return fail(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
    }
    if (n == 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_size) {
      return fail(fmt::format("{} is larger than {} bytes", path, max_size));
    }
  }
  return out;
}

std::optional<std::string> foreign_owner(const struct stat& st, std::string_view what, const std::string& path)
{
  const uid_t me = ::geteuid();
  if (st.st_uid == me || st.st_uid == 0) {
    return std::nullopt;
  }
  return fmt::format("{} {} is owned by uid {}, not by you (uid {}) or root: another user could have put it there; "
                     "if it is yours, fix it with: chown {} {}",
                     what, path, st.st_uid, me, me, path);
}

Result<Fd> open_private(const std::string& path, std::string_view what, struct stat* st_out, FileKind kind)
{
  // Symbolic links are followed (Kubernetes secret mounts, --passphrase-file <(...)); what is checked
  // is the file actually opened, through its descriptor, so it cannot be swapped after the check.
  // A file that must be regular is opened without blocking: opening a FIFO would wait for a writer.
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | (kind == FileKind::regular ? O_NONBLOCK : 0)));
  if (!fd.valid()) {
    return fail(fmt::format("cannot read {} {}: {}", what, path, std::strerror(errno)));
  }
  struct stat st
  {
  };
  if (::fstat(fd.get(), &st) != 0) {
    return fail(fmt::format("cannot read {} {}: {}", what, path, std::strerror(errno)));
  }
  if (auto owner = foreign_owner(st, what, path)) {
    return fail(*owner);
  }
  if (kind == FileKind::regular) {
    if (!S_ISREG(st.st_mode)) {
      return fail(fmt::format("{} {} is not a regular file", what, path));
    }
    if (::fcntl(fd.get(), F_SETFL, 0) != 0) {
      return fail(fmt::format("cannot read {} {}: {}", what, path, std::strerror(errno)));
    }
  }
  if ((st.st_mode & 077) != 0) {
    return fail(fmt::format("{} {} is accessible by group or others (mode {:04o}); fix it with: chmod 600 {}", what,
                            path, st.st_mode & 07777, path));
  }
  if (st_out != nullptr) {
    *st_out = st;
  }
  return fd;
}

Result<size_t> read_into(const Fd& fd, std::span<uint8_t> out, std::string_view name)
{
  size_t done = 0;
  for (;;) {
    uint8_t extra = 0; // one byte past `out`, to tell a file that fits exactly from a longer one
    const bool full = done == out.size();
    const ssize_t n = full ? ::read(fd.get(), &extra, 1) : ::read(fd.get(), out.data() + done, out.size() - done);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return fail(fmt::format("cannot read {}: {}", name, std::strerror(errno)));
    }
    if (n == 0) {
      return done;
    }
    if (full) {
      sodium_memzero(&extra, sizeof extra);
      return fail(fmt::format("{} is larger than {} bytes", name, out.size()));
    }
    done += static_cast<size_t>(n);
  }
}

void make_directories(const std::string& path, unsigned mode)
{
  if (path.empty() || exists(path)) {
    return;
  }
  const std::string parent = dirname(path);
  if (parent != path) {
    make_directories(parent, 0755);
  }
  if (::mkdir(path.c_str(), static_cast<mode_t>(mode)) != 0 && errno != EEXIST) {
    throw_errno("cannot create directory", path);
  }
}

std::optional<std::string> passwd_name(const std::string& path, uint32_t uid)
{
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "re"), &std::fclose);
  if (!f) {
    return std::nullopt;
  }
  std::vector<char> buf(4096);
  passwd pw{};
  passwd* entry = nullptr;
  for (;;) {
    const int rc = ::fgetpwent_r(f.get(), &pw, buf.data(), buf.size(), &entry);
    if (rc == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2); // the same line is read again
      continue;
    }
    if (rc != 0) {
      return std::nullopt; // ENOENT at the end, or a line longer than 1 MiB
    }
    const char first = pw.pw_name[0];
    if (pw.pw_uid == uid && first != '\0' && first != '+' && first != '-') {
      return std::string(pw.pw_name);
    }
  }
}

} // namespace fleetkey::util
