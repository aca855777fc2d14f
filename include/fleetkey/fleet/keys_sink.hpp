#pragma once
// Where `device import --keys-out` delivers the keys (fleetkey-import(5), KEYS FILE): a new regular
// file, or a stream (standard output, a FIFO, /dev/fd/N) that is written in place. Either way nothing
// reaches the destination before commit(), which the import calls once the registry has committed.

#include <fleetkey/crypto/secret.hpp>
#include <fleetkey/util/file.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fleetkey::fleet {

class KeysSink
{
public:
  // "-", /dev/stdout, /dev/stderr, /dev/fd/N and /proc/self/fd/N name a descriptor of this process,
  // written as it is (no open, so at its offset); an existing file that is not a regular file (a FIFO,
  // a character device) is opened for writing, without O_CREAT or O_TRUNC, here (so a FIFO's open waits
  // for its reader); an existing regular file is refused (exit 4, file_exists); any other name is
  // created 0600 as an AtomicFile. Throws Error.
  explicit KeysSink(const std::string& path);
  // The checks of the constructor that need no open: refuses an empty name, a directory, an existing
  // regular file. For a command to call before it asks for a passphrase.
  static void check(const std::string& path);
  KeysSink(const KeysSink&) = delete;
  KeysSink& operator=(const KeysSink&) = delete;
  ~KeysSink();

  // A file: written to the unnamed file. A stream: kept in guarded memory until commit().
  void write(std::string_view data);
  // A file: named. A stream: everything written at once. Throws Error(failure) on a write error.
  void commit();
  // Whether the keys go to a stream rather than to a file this process creates.
  bool stream() const { return !m_file.has_value(); }
  // Whether the stream is this process's standard output.
  bool stdout_stream() const { return m_stdout; }

private:
  std::string m_path;
  std::optional<util::AtomicFile> m_file;
  util::Fd m_owned; // a stream opened here
  int m_fd = -1;    // the stream's descriptor
  bool m_stdout = false;
  std::vector<crypto::Secret> m_chunks;
  size_t m_used = 0; // bytes of the last chunk in use
};

} // namespace fleetkey::fleet
