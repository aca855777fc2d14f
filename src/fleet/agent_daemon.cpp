// The key agent's daemon: agent start forks it; it holds the key ring and answers the requests of
// agent.cpp's client (fleetkey-formats(5), AGENT PROTOCOL; the framing in agent_protocol.hpp).
#include "fleet/agent_protocol.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/fleet/agent.hpp>
#include <fleetkey/fleet/hsm.hpp>
#include <fleetkey/util/file.hpp>
#include <fleetkey/util/text.hpp>

#include <climits>
#include <fmt/format.h>
#include <sodium.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace fleetkey::fleet::agent {

namespace {

int g_signal_pipe = -1;

extern "C" void on_signal(int)
{
  const char c = 1;
  [[maybe_unused]] auto r = ::write(g_signal_pipe, &c, 1);
}

struct FileId
{
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  timespec mtime{};
  bool operator==(const FileId& o) const
  {
    return dev == o.dev && ino == o.ino && size == o.size && mtime.tv_sec == o.mtime.tv_sec
           && mtime.tv_nsec == o.mtime.tv_nsec;
  }
};

std::optional<FileId> file_id(const std::string& path)
{
  struct stat st
  {
  };
  if (::stat(path.c_str(), &st) != 0) {
    return std::nullopt;
  }
  return FileId{st.st_dev, st.st_ino, st.st_size, st.st_mtim};
}

class Server
{
public:
  Server(crypto::Keyring ring, util::Fd listener, std::string key_file, std::optional<FileId> key_file_id,
         std::optional<int64_t> expires)
      : m_ring(std::move(ring))
      , m_listener(std::move(listener))
      , m_key_file(std::move(key_file))
      , m_key_file_id(key_file_id)
      , m_expires(expires)
  {
    for (const auto& mk : m_ring.versions()) {
      const auto prk = crypto::hkdf_extract(util::as_bytes(crypto::k_salt), mk.key.span());
      m_prks.emplace(mk.version, crypto::Expander(prk.span()));
    }
  }

  void run(int signals)
  {
    std::vector<util::Fd> clients;
    while (!m_stop) {
      int timeout_ms = 1000;
      if (m_expires) {
        const int64_t left = *m_expires - util::system_now(); // real time, even when pinned
        if (left <= 0) {
          return;
        }
        timeout_ms = static_cast<int>(std::min<int64_t>(left * 1000, 1000));
      }
      if (file_id(m_key_file) != m_key_file_id) {
        return; // rotated, re-encrypted or removed: the ring here is no longer the file's
      }
      std::vector<pollfd> fds;
      fds.push_back({signals, POLLIN, 0});
      fds.push_back({m_listener.get(), POLLIN, 0});
      for (const auto& c : clients) {
        fds.push_back({c.get(), POLLIN, 0});
      }
      const int n = ::poll(fds.data(), fds.size(), timeout_ms);
      if (n < 0 && errno != EINTR) {
        return;
      }
      if (n <= 0) {
        continue;
      }
      if (fds[0].revents != 0) {
        return;
      }
      std::vector<bool> drop(clients.size(), false);
      for (size_t i = 0; i < clients.size(); ++i) {
        if (fds[i + 2].revents != 0) {
          drop[i] = !serve(clients[i].get());
        }
      }
      for (size_t i = clients.size(); i-- > 0;) {
        if (drop[i]) {
          clients.erase(clients.begin() + static_cast<std::ptrdiff_t>(i));
        }
      }
      if ((fds[1].revents & POLLIN) != 0) {
        util::Fd c(::accept4(m_listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (c.valid() && peer_allowed(c.get())) {
          set_timeouts(c.get());
          clients.push_back(std::move(c));
        }
      }
    }
  }

private:
  static bool peer_allowed(int fd)
  {
    ucred cred{};
    socklen_t len = sizeof cred;
    return ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid == ::geteuid();
  }

  bool respond(int fd, uint8_t status, std::string_view body)
  {
    std::string out;
    put_be(out, body.size() + 1, 4);
    out.push_back(static_cast<char>(status));
    out.append(body);
    const bool ok = send_all(fd, reinterpret_cast<const uint8_t*>(out.data()), out.size());
    sodium_memzero(out.data(), out.size());
    return ok;
  }

  // One request; false when the connection is to be closed.
  bool serve(int fd)
  {
    uint8_t head[4];
    if (!read_exact(fd, head, sizeof head)) {
      return false;
    }
    const auto len = static_cast<uint32_t>(get_be(head, 4));
    if (len < 1 || len > k_max_frame) {
      return false;
    }
    std::string body(len, '\0');
    if (!read_exact(fd, reinterpret_cast<uint8_t*>(body.data()), len)) {
      return false;
    }
    const auto* p = reinterpret_cast<const uint8_t*>(body.data());
    switch (p[0]) {
    case op_info:
      return respond(fd, k_ok, info());
    case op_stop:
      m_stop = true;
      respond(fd, k_ok, info());
      return false;
    case op_expand:
      return expand(fd, p + 1, len - 1);
    default:
      return respond(fd, k_fail, "unknown request");
    }
  }

  std::string info() const
  {
    std::string out;
    put_be(out, static_cast<uint64_t>(::getpid()), 4);
    out.push_back(m_ring.is_test_key() ? 1 : 0);
    put_be(out, m_ring.current_version(), 4);
    put_be(out, static_cast<uint64_t>(m_expires.value_or(-1)), 8);
    put_be(out, m_ring.versions().size(), 2);
    for (const auto& mk : m_ring.versions()) {
      put_be(out, mk.version, 4);
      put_be(out, static_cast<uint64_t>(mk.created), 8);
      uint8_t fp[16];
      crypto::fingerprint(mk.key.span(), fp);
      out.append(reinterpret_cast<const char*>(fp), sizeof fp);
    }
    return out;
  }

  bool expand(int fd, const uint8_t* p, size_t n)
  {
    if (n < 10) {
      return respond(fd, k_fail, "malformed request");
    }
    const auto version = static_cast<uint32_t>(get_be(p, 4));
    const size_t length = get_be(p + 4, 2);
    const size_t count = get_be(p + 6, 4);
    const auto it = m_prks.find(version);
    if (it == m_prks.end()) {
      return respond(fd, k_fail, fmt::format("master key version {} is not in the key file", version));
    }
    if (length == 0 || length > k_max_expand || count * length > k_max_frame - 1) {
      return respond(fd, k_fail, "malformed request");
    }
    crypto::Secret out(count * length);
    size_t at = 10;
    for (size_t i = 0; i < count; ++i) {
      if (n - at < 2 || n - at - 2 < get_be(p + at, 2)) {
        return respond(fd, k_fail, "malformed request");
      }
      const size_t info_len = get_be(p + at, 2);
      it->second.expand(util::ByteView(p + at + 2, info_len), out.span().subspan(i * length, length));
      at += 2 + info_len;
    }
    if (at != n) {
      return respond(fd, k_fail, "malformed request");
    }
    uint8_t head[5];
    head[0] = static_cast<uint8_t>((out.size() + 1) >> 24);
    head[1] = static_cast<uint8_t>((out.size() + 1) >> 16);
    head[2] = static_cast<uint8_t>((out.size() + 1) >> 8);
    head[3] = static_cast<uint8_t>(out.size() + 1);
    head[4] = k_ok;
    return send_all(fd, head, sizeof head) && send_all(fd, out.data(), out.size());
  }

  crypto::Keyring m_ring;
  std::map<uint32_t, crypto::Expander> m_prks;
  util::Fd m_listener;
  std::string m_key_file;
  std::optional<FileId> m_key_file_id;
  std::optional<int64_t> m_expires;
  bool m_stop = false;
};

std::string runtime_base()
{
  for (const char* var : {"XDG_RUNTIME_DIR", "TMPDIR"}) {
    const char* v = std::getenv(var);
    struct stat st
    {
    };
    if (v != nullptr && *v == '/' && ::stat(v, &st) == 0 && S_ISDIR(st.st_mode)) {
      return v;
    }
  }
  return "/tmp";
}

} // namespace

Started start(Fleet& fleet, std::optional<int64_t> lifetime)
{
  fleet.use_key_file();
  hsm::refuse_in_hsm(fleet, "agent start", "the token does the key's work and keeps its own login: no agent is needed");
  const auto& ring = fleet.keyring(); // asks for the passphrase, checks the registry
  char resolved[PATH_MAX];
  if (::realpath(fleet.paths().master_key.c_str(), resolved) == nullptr) {
    throw Error(Exit::key, "cannot resolve {}: {}", fleet.paths().master_key, std::strerror(errno));
  }
  const std::string key_file = resolved;
  const auto key_file_id = file_id(key_file);

  std::string dir = runtime_base() + "/fleetkey-XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) {
    throw Error(Exit::failure, "cannot create a directory for the agent's socket: {}", std::strerror(errno));
  }
  const std::string socket_path = dir + "/agent.sock";
  util::Fd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  try {
    addr = address_of(socket_path);
  } catch (...) {
    ::rmdir(dir.c_str());
    throw;
  }
  const mode_t old_umask = ::umask(0177);
  const int bound =
      listener.valid() ? ::bind(listener.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) : -1; // NOLINT
  ::umask(old_umask);
  if (bound != 0 || ::chmod(socket_path.c_str(), 0600) != 0 || ::listen(listener.get(), 64) != 0) {
    const int err = errno;
    ::unlink(socket_path.c_str());
    ::rmdir(dir.c_str());
    throw Error(Exit::failure, "cannot listen on {}: {}", socket_path, std::strerror(err));
  }
  std::optional<int64_t> expires;
  if (lifetime) {
    expires = util::system_now() + *lifetime;
  }
  int signal_pipe[2];
  if (::pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    throw Error(Exit::failure, "pipe: {}", std::strerror(errno));
  }
  std::fflush(stdout);
  std::fflush(stderr);
  // The agent's pid is printed as soon as fork returns: a SIGTERM sent at once must not find the child
  // before its handler is in place (the default action would leave the socket behind). Blocked across
  // the fork, the signals wait for the handler.
  sigset_t stop_signals;
  sigset_t old_mask;
  ::sigemptyset(&stop_signals);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
    ::sigaddset(&stop_signals, sig);
  }
  ::sigprocmask(SIG_BLOCK, &stop_signals, &old_mask);
  const pid_t pid = ::fork();
  if (pid != 0) {
    ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  }
  if (pid < 0) {
    ::unlink(socket_path.c_str());
    ::rmdir(dir.c_str());
    throw Error(Exit::failure, "fork: {}", std::strerror(errno));
  }
  if (pid > 0) {
    ::close(signal_pipe[0]);
    ::close(signal_pipe[1]);
    return {socket_path, pid, expires};
  }
  // The agent. Memory locks are not inherited across fork: the ring is copied into fresh guarded
  // memory and the inherited copy released (zeroed).
  int code = 0;
  {
    ::setsid();
    // No core dumps, and no ptrace by other processes of the same user (as ssh-agent).
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    util::Fd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
    for (int fd : {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO}) {
      ::dup2(null.get(), fd);
    }
    [[maybe_unused]] auto r = ::chdir("/");
    g_signal_pipe = signal_pipe[1];
    struct sigaction sa
    {
    };
    sa.sa_handler = on_signal;
    ::sigemptyset(&sa.sa_mask);
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
      ::sigaction(sig, &sa, nullptr);
    }
    ::sigprocmask(SIG_SETMASK, &old_mask, nullptr); // a signal that came early is delivered now
    ::signal(SIGPIPE, SIG_IGN);
    try {
      auto copy = crypto::Keyring::deserialize(ring.serialize().span());
      fleet.reset_keyring(nullptr, {}, std::nullopt, crypto::Secret());
      Server server(std::move(copy), std::move(listener), key_file, key_file_id, expires);
      server.run(signal_pipe[0]);
    } catch (...) {
      code = 1;
    }
    ::unlink(socket_path.c_str());
    ::rmdir(dir.c_str());
  }
  ::_exit(code);
}

} // namespace fleetkey::fleet::agent
