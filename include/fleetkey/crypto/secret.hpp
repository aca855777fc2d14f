#pragma once
// Secret bytes: locked memory between guard pages (sodium_malloc; small secrets share such
// regions), left out of core dumps, zeroed on release, never copied, never printed.

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace fleetkey::crypto {

// Calls sodium_init() once; every entry point that touches libsodium goes through it.
void init();

class Secret
{
public:
  Secret() = default;
  explicit Secret(size_t size); // zero-filled
  Secret(Secret&& other) noexcept;
  Secret& operator=(Secret&& other) noexcept;
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;
  ~Secret();

  static Secret random(size_t size); // randombytes_buf
  static Secret copy_of(std::span<const uint8_t> bytes);

  uint8_t* data() noexcept { return m_data; }
  const uint8_t* data() const noexcept { return m_data; }
  size_t size() const noexcept { return m_size; }
  bool empty() const noexcept { return m_size == 0; }
  std::span<const uint8_t> span() const noexcept { return {m_data, m_size}; }
  std::span<uint8_t> span() noexcept { return {m_data, m_size}; }

  // Shrinks the visible size without reallocating (the tail is zeroed).
  void truncate(size_t size) noexcept;

private:
  uint8_t* m_data = nullptr;
  size_t m_size = 0;
  size_t m_capacity = 0;
};

// Zeroes the CPU's vector registers (x86-64: xmm/ymm/zmm, every one the CPU has). Keys pass through
// them (libsodium's ciphers and hashes, memcpy), and the register state is what a core dump or a
// debugger saves even when every page of guarded memory is left out: called before the process
// blocks at a prompt holding a key. A no-op on other architectures.
void wipe_vector_registers() noexcept;

// Constant-time equality; different lengths compare unequal (the lengths are not secret).
bool equal(std::span<const uint8_t> a, std::span<const uint8_t> b) noexcept;

// A Secret holding text (a passphrase, a key file), viewed as characters.
inline std::string_view as_text(const Secret& s) noexcept
{
  return {reinterpret_cast<const char*>(s.data()), s.size()};
}

// Text that carries a secret (a key as hex, base64 or a C array), built in guarded memory: unlike a
// std::string, whose reallocations free copies unzeroed, it leaves no trace of the secret behind.
// The capacity is fixed; exceeding it is a programming error (std::length_error).
class SecretText
{
public:
  explicit SecretText(size_t capacity);
  SecretText& append(std::string_view text);
  SecretText& append_hex(std::span<const uint8_t> bytes);                 // lower case
  SecretText& append_base64(std::span<const uint8_t> bytes, int variant); // sodium_base64_VARIANT_*
  std::string_view view() const noexcept { return {reinterpret_cast<const char*>(m_buf.data()), m_size}; }
  Secret take() &&; // the text written so far

private:
  char* room(size_t n); // n more bytes, past the text

  Secret m_buf;
  size_t m_size = 0;
};

// Key files and passphrase files are small; anything larger is refused, not read.
constexpr size_t k_max_secret_file = 64 * 1024;

// Reads a file straight into guarded memory. Opens it once (following a symbolic link), refuses a
// file that group or others can access (checked on the open descriptor) or that is larger than
// `max_size`, or owned by another user than the caller or root. `what` names it in messages
// ("passphrase file"). With `regular_only`, anything but a regular file is refused without blocking
// (a FIFO would wait for a writer for ever). Throws Error(key).
Secret read_private_file(const std::string& path, std::string_view what, size_t max_size = k_max_secret_file,
                         bool regular_only = false);
// The first line of such a file (a passphrase, a passcode), without its "\n" or "\r\n", cut in place.
Secret read_private_line(const std::string& path, std::string_view what, size_t max_size = k_max_secret_file);

} // namespace fleetkey::crypto

template<>
struct fmt::formatter<fleetkey::crypto::Secret> : fmt::formatter<fmt::string_view>
{
  template<typename Ctx>
  auto format(const fleetkey::crypto::Secret&, Ctx& ctx) const
  {
    return fmt::formatter<fmt::string_view>::format("[redacted]", ctx);
  }
};
