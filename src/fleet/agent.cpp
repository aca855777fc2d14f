// The key agent's client: a connection to the agent at $FLEETKEY_AGENT as a key source
// (connect_ring), status and stop. The daemon is in agent_daemon.cpp, the framing both share in
// agent_protocol.hpp.
#include "fleet/agent_protocol.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/fleet/agent.hpp>
#include <fleetkey/util/file.hpp>
#include <fleetkey/util/text.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace fleetkey::fleet::agent {

namespace {

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
