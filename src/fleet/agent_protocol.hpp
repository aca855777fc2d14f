#pragma once
// Private to src/fleet: what both ends of the agent's protocol share (fleetkey-formats(5), AGENT
// PROTOCOL): the ops, the limits, the big-endian fields and the framing, read and changed together
// by the client (agent.cpp) and the daemon (agent_daemon.cpp).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <sys/un.h>

namespace fleetkey::fleet::agent {

// Requests and responses are frames: u32be length || body (fleetkey-formats(5), AGENT PROTOCOL).
enum Op : uint8_t { op_info = 1, op_expand = 2, op_stop = 3 };
constexpr uint8_t k_ok = 0;
constexpr uint8_t k_fail = 1;
constexpr uint32_t k_max_frame = 64u << 20;
constexpr size_t k_max_expand = 255 * 32;
constexpr int k_io_timeout_s = 10;

// The big-endian unsigned number of `width` bytes at `p`.
uint64_t get_be(const uint8_t* p, size_t width);

// Appends `v` as `width` big-endian bytes.
void put_be(std::string& out, uint64_t v, size_t width);

// Reads exactly `n` bytes (retrying on EINTR); false on end of file or an error.
bool read_exact(int fd, uint8_t* p, size_t n);

// Sends all `n` bytes (without SIGPIPE); false on an error.
bool send_all(int fd, const uint8_t* p, size_t n);

// A request frame: u32be length || body.
std::string frame(std::string_view body);

// The send and receive timeouts of a connection.
void set_timeouts(int fd);

// The socket address of `path`; throws Error(key) when the path does not fit.
sockaddr_un address_of(const std::string& path);

} // namespace fleetkey::fleet::agent
