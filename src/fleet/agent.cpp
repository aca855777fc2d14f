// The key agent, both ends of its private protocol: the client (Client, connect_ring, status, stop)
// and the daemon (Server, start). Over 400 lines on purpose: the frame layout, the ops and the
// checks of each request are read and changed together, on both sides, in one file (fleetkey-formats(5),
// AGENT PROTOCOL); the halves share the framing helpers at the top and nothing else.
#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/fleet/agent.hpp>
#include <fleetkey/fleet/hsm.hpp>
#include <fleetkey/util/file.hpp>
#include <fleetkey/util/text.hpp>

#include <fmt/format.h>
#include <sodium.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <mutex>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace fleetkey::fleet::agent {

namespace {

// Requests and responses are frames: u32be length || body (fleetkey-formats(5), AGENT PROTOCOL).
enum Op : uint8_t { op_info = 1, op_expand = 2, op_stop = 3 };
constexpr uint8_t k_ok = 0;
constexpr uint8_t k_fail = 1;
constexpr uint32_t k_max_frame = 64u << 20;
constexpr size_t k_max_expand = 255 * 32;
constexpr int k_io_timeout_s = 10;

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

const char* agent_path()
{
  const char* v = std::getenv("FLEETKEY_AGENT");
  return v != nullptr && *v != '\0' ? v : nullptr;
}

// One connection to the agent; requests are serialized (the import's and pairing's worker
// threads share it).
class Client final : public crypto::KeySource
{
public:
  explicit Client(std::string path)
      : m_path(std::move(path))
  {
    const auto addr = address_of(m_path);
    m_fd = util::Fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!m_fd.valid() || ::connect(m_fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) { // NOLINT
      throw Error(Exit::key, "cannot reach the agent at {}: {}", m_path, std::strerror(errno));
    }
    set_timeouts(m_fd.get());
  }

  const std::string& path() const { return m_path; }

  // Sends a request and returns the response body after its status byte; throws on failure.
  std::string call(std::string_view body) const
  {
    std::lock_guard lock(m_mutex);
    send_request(body);
    uint8_t head[5];
    const uint32_t len = read_head(head);
    std::string out(len - 1, '\0');
    if (!read_exact(m_fd.get(), reinterpret_cast<uint8_t*>(out.data()), out.size())) {
      throw lost();
    }
    if (head[4] != k_ok) {
      throw Error(Exit::key, "the agent at {} refused: {}", m_path, out);
    }
    return out;
  }

  void expand(uint32_t version, std::span<const util::ByteView> infos, size_t length,
              std::span<uint8_t> out) const override
  {
    std::string body;
    body.push_back(static_cast<char>(op_expand));
    put_be(body, version, 4);
    put_be(body, length, 2);
    put_be(body, infos.size(), 4);
    for (const auto& info : infos) {
      put_be(body, info.size(), 2);
      body.append(reinterpret_cast<const char*>(info.data()), info.size());
    }
    std::lock_guard lock(m_mutex);
    send_request(body);
    uint8_t head[5];
    const uint32_t len = read_head(head);
    if (head[4] != k_ok) {
      std::string msg(len - 1, '\0');
      read_exact(m_fd.get(), reinterpret_cast<uint8_t*>(msg.data()), msg.size());
      throw Error(Exit::key, "the agent at {} refused: {}", m_path, msg);
    }
    // The keys go straight into the caller's (guarded) memory.
    if (len - 1 != out.size() || !read_exact(m_fd.get(), out.data(), out.size())) {
      throw lost();
    }
  }

private:
  Error lost() const { return Error(Exit::key, "lost the connection to the agent at {}", m_path); }

  void send_request(std::string_view body) const
  {
    if (body.size() > k_max_frame) {
      throw Error(Exit::failure, "request of {} bytes is too large for the agent", body.size());
    }
    const auto f = frame(body);
    if (!send_all(m_fd.get(), reinterpret_cast<const uint8_t*>(f.data()), f.size())) {
      throw lost();
    }
  }

  uint32_t read_head(uint8_t (&head)[5]) const
  {
    if (!read_exact(m_fd.get(), head, sizeof head)) {
      throw lost();
    }
    const auto len = static_cast<uint32_t>(get_be(head, 4));
    if (len < 1 || len > k_max_frame) {
      throw lost();
    }
    return len;
  }

  std::string m_path;
  util::Fd m_fd;
  mutable std::mutex m_mutex;
};

Status parse_info(const Client& c, std::string_view body, std::vector<crypto::MasterKey>* keys,
                  const std::shared_ptr<const Client>& source)
{
  const auto* p = reinterpret_cast<const uint8_t*>(body.data());
  const auto bad = [&] { return Error(Exit::key, "the agent at {} sent a malformed answer", c.path()); };
  if (body.size() < 4 + 1 + 4 + 8 + 2) {
    throw bad();
  }
  Status s;
  s.socket = c.path();
  s.pid = static_cast<int>(get_be(p, 4));
  s.test_key = p[4] != 0;
  s.current = static_cast<uint32_t>(get_be(p + 5, 4));
  const auto expires = static_cast<int64_t>(get_be(p + 9, 8));
  if (expires >= 0) {
    s.expires = expires;
  }
  const size_t count = get_be(p + 17, 2);
  if (body.size() != 19 + count * (4 + 8 + 16) || count == 0) {
    throw bad();
  }
  for (size_t i = 0; i < count; ++i) {
    const uint8_t* v = p + 19 + i * 28;
    s.versions.push_back(static_cast<uint32_t>(get_be(v, 4)));
    if (keys != nullptr) {
      crypto::MasterKey mk;
      mk.version = s.versions.back();
      mk.created = static_cast<int64_t>(get_be(v + 4, 8));
      mk.source = source;
      mk.source_fingerprint = util::to_hex(util::ByteView(v + 12, 16));
      keys->push_back(std::move(mk));
    }
  }
  return s;
}

std::shared_ptr<Client> connect_or_throw()
{
  const char* path = agent_path();
  if (path == nullptr) {
    throw Error(Exit::key, "no agent: FLEETKEY_AGENT is not set (start one with eval \"$(fleetkey agent start)\")");
  }
  return std::make_shared<Client>(path);
}

// ---- the agent's side ----

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

std::optional<crypto::Keyring> connect_ring(const Fleet::Warn& warn)
{
  const char* path = agent_path();
  if (path == nullptr) {
    return std::nullopt;
  }
  std::shared_ptr<Client> client;
  try {
    client = std::make_shared<Client>(path);
  } catch (const Error& e) {
    warn(fmt::format("{}: using the master key file", e.what()));
    return std::nullopt;
  }
  std::vector<crypto::MasterKey> keys;
  const auto s = parse_info(*client, client->call(std::string(1, static_cast<char>(op_info))), &keys, client);
  return crypto::Keyring::held_elsewhere(std::move(keys), s.current, s.test_key);
}

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

Status status()
{
  const auto c = connect_or_throw();
  return parse_info(*c, c->call(std::string(1, static_cast<char>(op_info))), nullptr, nullptr);
}

Status stop()
{
  const auto c = connect_or_throw();
  auto s = parse_info(*c, c->call(std::string(1, static_cast<char>(op_stop))), nullptr, nullptr);
  // The agent removes its socket as it exits: wait for that (up to 5 s), so that what follows
  // `agent stop` finds no agent.
  for (int i = 0; i < 1000 && ::access(s.socket.c_str(), F_OK) == 0; ++i) {
    ::usleep(5000);
  }
  return s;
}

std::string shell_export(const Started& s)
{
  std::string quoted = "'";
  for (const char c : s.socket) {
    quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  }
  quoted += "'";
  return fmt::format("FLEETKEY_AGENT={}; export FLEETKEY_AGENT;\necho fleetkey agent pid {};\n", quoted, s.pid);
}

} // namespace fleetkey::fleet::agent
