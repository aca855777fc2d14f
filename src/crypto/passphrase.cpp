// Asking for the master key passphrase on the terminal, without echo.
#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/keyfile.hpp>
#include <fleetkey/crypto/secret.hpp>
#include <fleetkey/util/file.hpp>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

namespace fleetkey::crypto {

bool have_terminal()
{
  const util::Fd tty(::open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY));
  return tty.valid();
}

Secret prompt_passphrase(const char* prompt)
{
  util::Fd tty(::open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY));
  if (!tty.valid()) {
    throw Error(Exit::key, "no terminal to ask for the passphrase (use --passphrase-file or FLEETKEY_PASSPHRASE_FILE)");
  }
  struct termios old
  {
  };
  const bool have_termios = ::tcgetattr(tty.get(), &old) == 0;
  if (have_termios) {
    struct termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    quiet.c_lflag |= ECHONL;
    ::tcsetattr(tty.get(), TCSAFLUSH, &quiet);
  }
  [[maybe_unused]] auto w = ::write(tty.get(), prompt, std::strlen(prompt));
  Secret buf(1024);
  wipe_vector_registers(); // the process may wait here for minutes, holding keys (master passwd)
  size_t len = 0;
  bool ok = true;
  for (;;) {
    uint8_t c = 0;
    const ssize_t n = ::read(tty.get(), &c, 1);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0 || c == '\n') {
      ok = n > 0;
      break;
    }
    if (len == buf.size()) {
      ok = false;
      break;
    }
    buf.data()[len++] = c;
  }
  if (have_termios) {
    ::tcsetattr(tty.get(), TCSAFLUSH, &old);
  }
  if (!ok) {
    throw Error(Exit::key, "could not read a passphrase from the terminal");
  }
  buf.truncate(len);
  return buf;
}

} // namespace fleetkey::crypto
