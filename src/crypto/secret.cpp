#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/secret.hpp>
#include <fleetkey/util/file.hpp>

#include <sodium.h>

#include <array>
#include <cstring>
#include <mutex>
#include <new>
#include <stdexcept>
#include <sys/stat.h>

#if defined(__x86_64__) && defined(__GNUC__)
// glibc 2.33+; its inline functions return _Bool, which GCC's C++ accepts and clang's does not.
#if __has_include(<sys/platform/x86.h>) && !defined(__clang__)
#include <sys/platform/x86.h>
#endif
#define FLEETKEY_WIPE_X86 1
#endif

namespace fleetkey::crypto {

namespace {

// Small secrets share guarded chunks, as OpenSSL's secure heap does, instead of taking a
// sodium_malloc region each (an mmap, three mprotects, an madvise and an mlock to allocate, as
// many calls again to free): a command holds a dozen secrets, and those ~150 system calls were a
// fifth of `device add`. Each chunk is one sodium_malloc region: guard pages on both sides,
// mlocked, left out of core dumps. A slot is zeroed when it is freed and handed out again only
// for its size class; chunks live until the process exits. Larger secrets get their own region.
class SecureHeap
{
public:
  static constexpr std::array<size_t, 6> k_classes = {32, 64, 128, 256, 512, 1024};
  // A region's user pointer ends on a page boundary after a 16-byte canary; this size keeps the
  // whole region (canary included) inside 4 pages, and the chunk 64-byte aligned. mlock faults
  // every page in at once, so chunks are kept small: a command needs a few hundred bytes.
  static constexpr size_t k_chunk = 4 * 4096 - 64;

  static SecureHeap& instance()
  {
    static auto* heap = new SecureHeap; // never destroyed: secrets may outlive static destructors
    return *heap;
  }

  static size_t size_class(size_t size)
  {
    size_t c = 0;
    while (c < k_classes.size() && k_classes[c] < size) {
      ++c;
    }
    return c; // k_classes.size(): too large for a slot
  }

  uint8_t* allocate(size_t size)
  {
    const size_t c = size_class(size);
    if (c == k_classes.size()) {
      return static_cast<uint8_t*>(sodium_malloc(size));
    }
    std::lock_guard lock(m_mutex);
    if (FreeSlot* slot = m_free[c]) {
      m_free[c] = slot->next;
      slot->next = nullptr;
      return reinterpret_cast<uint8_t*>(slot);
    }
    if (m_left < k_classes[c]) {
      m_next = static_cast<uint8_t*>(sodium_malloc(k_chunk));
      if (m_next == nullptr) {
        m_left = 0;
        return nullptr;
      }
      m_left = k_chunk;
    }
    uint8_t* p = m_next;
    m_next += k_classes[c];
    m_left -= k_classes[c];
    return p;
  }

  void release(uint8_t* p, size_t size)
  {
    const size_t c = size_class(size);
    if (c == k_classes.size()) {
      sodium_free(p); // zeroes before releasing
      return;
    }
    sodium_memzero(p, k_classes[c]);
    auto* slot = reinterpret_cast<FreeSlot*>(p);
    std::lock_guard lock(m_mutex);
    slot->next = m_free[c];
    m_free[c] = slot;
  }

private:
  struct FreeSlot
  {
    FreeSlot* next;
  };

  std::mutex m_mutex;
  std::array<FreeSlot*, k_classes.size()> m_free{};
  uint8_t* m_next = nullptr; // the unused rest of the newest chunk
  size_t m_left = 0;
};

void release(uint8_t* p, size_t capacity)
{
  if (p != nullptr) {
    SecureHeap::instance().release(p, capacity);
  }
}

#ifdef FLEETKEY_WIPE_X86
#define FK_X(n) "xmm" #n
#define FK_CLOBBER_0_15                                                                                                \
  FK_X(0), FK_X(1), FK_X(2), FK_X(3), FK_X(4), FK_X(5), FK_X(6), FK_X(7), FK_X(8), FK_X(9), FK_X(10), FK_X(11),        \
      FK_X(12), FK_X(13), FK_X(14), FK_X(15)

// VZEROALL clears all of ymm0-15 (zmm0-15 on AVX-512); zmm16-31 exist only with AVX-512.
__attribute__((target("avx512f"))) void wipe_avx512() noexcept
{
  asm volatile("vpxord %%zmm16, %%zmm16, %%zmm16\n\tvpxord %%zmm17, %%zmm17, %%zmm17\n\t"
               "vpxord %%zmm18, %%zmm18, %%zmm18\n\tvpxord %%zmm19, %%zmm19, %%zmm19\n\t"
               "vpxord %%zmm20, %%zmm20, %%zmm20\n\tvpxord %%zmm21, %%zmm21, %%zmm21\n\t"
               "vpxord %%zmm22, %%zmm22, %%zmm22\n\tvpxord %%zmm23, %%zmm23, %%zmm23\n\t"
               "vpxord %%zmm24, %%zmm24, %%zmm24\n\tvpxord %%zmm25, %%zmm25, %%zmm25\n\t"
               "vpxord %%zmm26, %%zmm26, %%zmm26\n\tvpxord %%zmm27, %%zmm27, %%zmm27\n\t"
               "vpxord %%zmm28, %%zmm28, %%zmm28\n\tvpxord %%zmm29, %%zmm29, %%zmm29\n\t"
               "vpxord %%zmm30, %%zmm30, %%zmm30\n\tvpxord %%zmm31, %%zmm31, %%zmm31\n\tvzeroall" ::
                   : FK_CLOBBER_0_15, FK_X(16), FK_X(17), FK_X(18), FK_X(19), FK_X(20), FK_X(21), FK_X(22), FK_X(23),
                     FK_X(24), FK_X(25), FK_X(26), FK_X(27), FK_X(28), FK_X(29), FK_X(30), FK_X(31), "memory");
}

__attribute__((target("avx"))) void wipe_avx() noexcept
{
  asm volatile("vzeroall" ::: FK_CLOBBER_0_15, "memory");
}

void wipe_sse() noexcept
{
  asm volatile("pxor %%xmm0, %%xmm0\n\tpxor %%xmm1, %%xmm1\n\tpxor %%xmm2, %%xmm2\n\tpxor %%xmm3, %%xmm3\n\t"
               "pxor %%xmm4, %%xmm4\n\tpxor %%xmm5, %%xmm5\n\tpxor %%xmm6, %%xmm6\n\tpxor %%xmm7, %%xmm7\n\t"
               "pxor %%xmm8, %%xmm8\n\tpxor %%xmm9, %%xmm9\n\tpxor %%xmm10, %%xmm10\n\tpxor %%xmm11, %%xmm11\n\t"
               "pxor %%xmm12, %%xmm12\n\tpxor %%xmm13, %%xmm13\n\tpxor %%xmm14, %%xmm14\n\tpxor %%xmm15, %%xmm15" ::
                   : FK_CLOBBER_0_15, "memory");
}
#undef FK_CLOBBER_0_15
#undef FK_X
#endif

} // namespace

void wipe_vector_registers() noexcept
{
#ifdef FLEETKEY_WIPE_X86
#ifdef CPU_FEATURE_ACTIVE
  // What glibc found at start-up: no CPUID (which traps to the hypervisor in a VM).
  const bool avx512 = CPU_FEATURE_ACTIVE(AVX512F);
  const bool avx = CPU_FEATURE_ACTIVE(AVX);
#else
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const bool avx = __builtin_cpu_supports("avx");
#endif
  if (avx512) {
    wipe_avx512();
  } else if (avx) {
    wipe_avx();
  } else {
    wipe_sse();
  }
#endif
}

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
  m_data = SecureHeap::instance().allocate(size);
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
    release(m_data, m_capacity); // zeroes before releasing
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
  release(m_data, m_capacity);
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

SecretText::SecretText(size_t capacity)
    : m_buf(capacity + 1) // + 1: libsodium's encoders end with a NUL
{
}

char* SecretText::room(size_t n)
{
  if (n > m_buf.size() - 1 - m_size) {
    throw std::length_error("SecretText: capacity exceeded");
  }
  return reinterpret_cast<char*>(m_buf.data()) + m_size;
}

SecretText& SecretText::append(std::string_view text)
{
  std::memcpy(room(text.size()), text.data(), text.size());
  m_size += text.size();
  return *this;
}

SecretText& SecretText::append_hex(std::span<const uint8_t> bytes)
{
  const size_t len = bytes.size() * 2;
  sodium_bin2hex(room(len), len + 1, bytes.data(), bytes.size());
  m_size += len;
  return *this;
}

SecretText& SecretText::append_base64(std::span<const uint8_t> bytes, int variant)
{
  const size_t max = sodium_base64_encoded_len(bytes.size(), variant); // NUL included
  sodium_bin2base64(room(max - 1), max, bytes.data(), bytes.size(), variant);
  m_size += max - 1;
  return *this;
}

Secret SecretText::take() &&
{
  // Past m_size there is at most the NUL of the last append; truncate zeroes it with the rest.
  m_buf.truncate(m_size);
  m_size = 0;
  return std::move(m_buf);
}

Secret read_private_file(const std::string& path, std::string_view what, size_t max_size, bool regular_only)
{
  struct stat st
  {
  };
  auto fd = util::open_private(path, what, &st, regular_only ? util::FileKind::regular : util::FileKind::any);
  if (!fd) {
    throw Error(Exit::key, fd.error());
  }
  // A regular file gets a buffer of its own size: a key file then fits a slot of the secure heap,
  // where max_size would be a region of its own, zeroed and mlocked page by page (0.1 ms of every
  // command, measured). Anything else (a pipe, from --passphrase-file <(...)) gets max_size.
  size_t capacity = max_size;
  if (S_ISREG(st.st_mode)) {
    if (static_cast<uint64_t>(st.st_size) > max_size) {
      throw Error(Exit::key, "{} {} is larger than {} bytes", what, path, max_size);
    }
    capacity = static_cast<size_t>(st.st_size);
  }
  Secret out(capacity);
  const auto size = util::read_into(*fd, out.span(), fmt::format("{} {}", what, path));
  if (!size) {
    throw Error(Exit::key, size.error());
  }
  out.truncate(*size);
  return out;
}

Secret read_private_line(const std::string& path, std::string_view what, size_t max_size)
{
  Secret text = read_private_file(path, what, max_size);
  std::string_view line = as_text(text);
  line = line.substr(0, line.find('\n'));
  if (!line.empty() && line.back() == '\r') {
    line.remove_suffix(1);
  }
  text.truncate(line.size()); // zeroes the rest
  return text;
}

bool equal(std::span<const uint8_t> a, std::span<const uint8_t> b) noexcept
{
  if (a.size() != b.size()) {
    return false;
  }
  // Eight bytes at a time, every byte read whatever the data: the empty asm makes `diff` opaque to
  // the compiler, which can then not turn the loop into one that stops at the first difference.
  // (sodium_memcmp reads a byte at a time through volatile pointers: about 40 ns for a 32-byte
  // tag, a twentieth of a CWT's verification in bench/tokens.sh.)
  uint64_t diff = 0;
  size_t i = 0;
  for (; i + 8 <= a.size(); i += 8) {
    uint64_t x = 0;
    uint64_t y = 0;
    std::memcpy(&x, a.data() + i, 8);
    std::memcpy(&y, b.data() + i, 8);
    diff |= x ^ y;
    __asm__("" : "+r"(diff));
  }
  for (; i < a.size(); ++i) {
    diff |= static_cast<uint64_t>(a[i] ^ b[i]);
    __asm__("" : "+r"(diff));
  }
  return diff == 0;
}

} // namespace fleetkey::crypto
