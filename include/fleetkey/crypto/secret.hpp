#pragma once
// Secret bytes: locked memory between guard pages (sodium_malloc; small secrets share such
// regions), left out of core dumps, zeroed on release, never copied, never printed.

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <span>

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

// Constant-time equality; different lengths compare unequal (the lengths are not secret).
bool equal(std::span<const uint8_t> a, std::span<const uint8_t> b) noexcept;

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
