#pragma once
// File descriptors and atomic, private file writes. Knows nothing of fleetkey.

#include <fleetkey/util/result.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <utility>

namespace fleetkey::util {

// A move-only owner of a file descriptor.
class Fd
{
public:
  Fd() = default;
  explicit Fd(int fd) noexcept
      : m_fd(fd)
  {
  }
  Fd(Fd&& other) noexcept
      : m_fd(other.release())
  {
  }
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd();

  int get() const noexcept { return m_fd; }
  bool valid() const noexcept { return m_fd >= 0; }
  int release() noexcept;
  void close() noexcept;

private:
  int m_fd = -1;
};

enum class Overwrite { no, yes };

// What AtomicFile and make_directories throw: what went wrong with which file, and errno (0 when no
// system call failed). The message names the file the caller asked for. The caller maps the kind to
// its own error codes (fleetkey's: core/file_error.hpp).
class FileError : public std::runtime_error
{
public:
  enum class Kind {
    bad_name, // the path names no file ("", ".", "..", a name longer than NAME_MAX)
    exists,   // the file exists and Overwrite::no
    appeared, // the file was created by someone else before commit() could give ours its name
    failure,  // any other failure of a system call (errno)
  };
  FileError(Kind kind, int error_number, std::string path, const std::string& message)
      : std::runtime_error(message)
      , m_kind(kind)
      , m_errno(error_number)
      , m_path(std::move(path))
  {
  }
  Kind kind() const noexcept { return m_kind; }
  int error_number() const noexcept { return m_errno; }
  const std::string& path() const noexcept { return m_path; }

private:
  Kind m_kind;
  int m_errno;
  std::string m_path;
};

// Writes all of `data` to `fd`, retrying short writes and EINTR. False (errno set) on an error.
bool write_fully(int fd, std::span<const uint8_t> data);
inline bool write_fully(int fd, std::string_view data)
{
  return write_fully(fd, std::span(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
}

// Writes a new file, mode 0600 from the start, that appears at `path` only on commit(): an unnamed
// O_TMPFILE file linked into place (linkat, or linkat to a temporary name and rename over an
// existing file), or where the file system lacks O_TMPFILE a temporary name created with O_EXCL.
// The destructor removes the temporary file and never renames, to avoid half-written data in the
// destination.
class AtomicFile
{
public:
  AtomicFile(std::string path, Overwrite overwrite); // throws FileError
  AtomicFile(AtomicFile&&) = delete;
  ~AtomicFile();

  void write(std::string_view data);         // throws FileError
  void write(std::span<const uint8_t> data); // throws FileError
  void commit();                             // throws FileError; fsyncs file and directory
  const std::string& path() const { return m_path; }

private:
  std::string m_path;
  std::string m_tmp_path;
  Overwrite m_overwrite;
  Fd m_fd;
  bool m_committed = false;
};

bool exists(const std::string& path);

// Reads a whole file; `max_size` guards against reading a device or a huge file by mistake.
Result<std::string> read_file(const std::string& path, size_t max_size = 1 << 20);

// The error message for a file or directory (`what` `path`, with status `st`) owned by neither the
// caller's effective uid nor root, naming the chown that fixes it; std::nullopt when the owner is fine.
std::optional<std::string> foreign_owner(const struct stat& st, std::string_view what, const std::string& path);

// Opens `path` for reading once (following a symbolic link) and checks through the descriptor that
// group and others cannot access the file and that it is owned by the caller or root (foreign_owner),
// so that the file checked is the file read. `what`
// names the file in messages ("master key file"). `st`, if given, receives the file's status. With
// FileKind::regular, anything but a regular file (a FIFO, a device) is refused without blocking.
enum class FileKind { any, regular };
Result<Fd> open_private(const std::string& path, std::string_view what, struct stat* st = nullptr,
                        FileKind kind = FileKind::any);

// Reads `fd` to its end straight into `out`, with no copy elsewhere; fails when the data does not
// fit. Returns the number of bytes read. `name` names the file in messages.
Result<size_t> read_into(const Fd& fd, std::span<uint8_t> out, std::string_view name);

// Creates `path` and missing parents; the last component with `mode`.
void make_directories(const std::string& path, unsigned mode); // throws FileError

std::string dirname(const std::string& path);

// The name of the first account with `uid` in a passwd(5) file, read without NSS; std::nullopt
// when there is none or the file cannot be read. Lines starting with "+" or "-" (NIS compat) and
// entries with an empty name are skipped.
std::optional<std::string> passwd_name(const std::string& path, uint32_t uid);

} // namespace fleetkey::util
