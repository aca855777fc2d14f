// The grant bundle (fleet::bundle_json) never frees the user key unzeroed. This file replaces the
// global operator new and delete, so it is a binary of its own (tests/CMakeLists.txt).
#include <fleetkey/fleet/tokens.hpp>

#include <doctest/doctest.h>
#include <sodium.h>

#include <cstdlib>
#include <cstring>
#include <malloc.h>
#include <new>

using namespace fleetkey;

// The grant bundle (fleet::bundle_json) carries a CWT and the user key. To see that no heap block
// the bundle's making frees still holds the key, this binary's operator delete looks, while a test
// sets g_watched, for those bytes in every block before freeing it.
namespace {

std::string_view g_watched; // must not point into the heap: the watcher would find it there
bool g_watched_freed = false;

void look_before_free(void* p) noexcept
{
  if (p != nullptr && !g_watched.empty()
      && ::memmem(p, ::malloc_usable_size(p), g_watched.data(), g_watched.size()) != nullptr) {
    g_watched_freed = true;
  }
}

} // namespace

// None of these is inlined, so that GCC does not pair std::malloc or std::free with operator new
// or delete in their callers (-Wmismatched-new-delete).
[[gnu::noinline]] void* operator new(size_t n)
{
  if (void* p = std::malloc(n == 0 ? 1 : n)) {
    return p;
  }
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept
{
  look_before_free(p);
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, size_t) noexcept
{
  look_before_free(p);
  std::free(p);
}

TEST_CASE("grant bundle: the user key never lands in heap memory that is freed unzeroed")
{
  fleet::GrantBundle b;
  b.grant.grant.user = "alice";
  b.grant.grant.device = "SN-1";
  b.grant.grant.role = "owner";
  b.grant.device.id = "SN-1";
  b.grant.device.key_version = 1;
  b.grant.fingerprint = "fp";
  b.grant.user_key = crypto::Secret::random(32);
  b.token.text = std::string(300, 'T');
  b.token.token_id = "00112233445566778899aabbccddeeff";
  static char b64[64]; // static: not on the heap
  sodium_bin2base64(b64, sizeof b64, b.grant.user_key.data(), 32, sodium_base64_VARIANT_ORIGINAL);
  g_watched = std::string_view(b64, 40); // without its padding
  g_watched_freed = false;
  const auto json = fleet::bundle_json(b);
  g_watched = {};
  CHECK_FALSE(g_watched_freed);
  const auto text = crypto::as_text(json);
  CHECK(text.substr(0, 38) == R"({"type":"fleetkey-grant","version":1,")");
  CHECK(text.substr(text.size() - 59) == R"(,"user_key":")" + std::string(b64, 44) + "\"}");
  sodium_memzero(b64, sizeof b64);
}
