#include <fleetkey/crypto/secret.hpp>
#include <fleetkey/util/error.hpp>

#include <sodium.h>

#include <cstring>
#include <new>

namespace fleetkey::crypto {

void init()
{
  static const bool k_ready = [] {
    if (sodium_init() < 0) {
      throw Error(Exit::failure, "cannot initialize libsodium");
    }
    return true;
  }();
  (void)k_ready;
}

Secret::Secret(size_t size)
    : m_size(size)
    , m_capacity(size)
{
  init();
  if (size == 0) {
    return;
  }
  m_data = static_cast<uint8_t*>(sodium_malloc(size));
  if (m_data == nullptr) {
    throw std::bad_alloc();
  }
  sodium_memzero(m_data, size);
}

Secret::Secret(Secret&& other) noexcept
    : m_data(other.m_data)
    , m_size(other.m_size)
    , m_capacity(other.m_capacity)
{
  other.m_data = nullptr;
  other.m_size = other.m_capacity = 0;
}

Secret& Secret::operator=(Secret&& other) noexcept
{
  if (this != &other) {
    sodium_free(m_data); // sodium_free zeroes before releasing
    m_data = other.m_data;
    m_size = other.m_size;
    m_capacity = other.m_capacity;
    other.m_data = nullptr;
    other.m_size = other.m_capacity = 0;
  }
  return *this;
}

Secret::~Secret()
{
  sodium_free(m_data);
}

Secret Secret::random(size_t size)
{
  Secret s(size);
  randombytes_buf(s.data(), size);
  return s;
}

Secret Secret::copy_of(std::span<const uint8_t> bytes)
{
  Secret s(bytes.size());
  if (!bytes.empty()) {
    std::memcpy(s.data(), bytes.data(), bytes.size());
  }
  return s;
}

void Secret::truncate(size_t size) noexcept
{
  if (size < m_size) {
    sodium_memzero(m_data + size, m_size - size);
    m_size = size;
  }
}

bool equal(std::span<const uint8_t> a, std::span<const uint8_t> b) noexcept
{
  if (a.size() != b.size()) {
    return false;
  }
  return a.empty() || sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

} // namespace fleetkey::crypto
