#include "crypto/pkcs11_module.hpp"

#include <fleetkey/core/error.hpp>

#include <fmt/format.h>

#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <map>
#include <mutex>

namespace fleetkey::crypto::pkcs11::detail {

using namespace ck;

namespace {

std::string rv_name(RV rv)
{
  switch (rv) {
  case CKR_PIN_INCORRECT:
    return "CKR_PIN_INCORRECT";
  case CKR_PIN_LOCKED:
    return "CKR_PIN_LOCKED";
  case CKR_PIN_EXPIRED:
    return "CKR_PIN_EXPIRED";
  case CKR_TOKEN_NOT_PRESENT:
    return "CKR_TOKEN_NOT_PRESENT";
  case CKR_USER_NOT_LOGGED_IN:
    return "CKR_USER_NOT_LOGGED_IN";
  case CKR_USER_PIN_NOT_INITIALIZED:
    return "CKR_USER_PIN_NOT_INITIALIZED";
  default:
    return fmt::format("CK_RV 0x{:x}", rv);
  }
}

} // namespace

[[noreturn]] void fail(std::string_view what, RV rv)
{
  throw Error(Exit::key, "PKCS#11 {} failed: {}", what, rv_name(rv));
}

void check(std::string_view what, RV rv)
{
  if (rv != CKR_OK) {
    fail(what, rv);
  }
}

const Module& load_module(const std::string& path)
{
  static std::mutex mutex;
  static std::map<std::string, Module> loaded;
  std::lock_guard lock(mutex);
  if (auto it = loaded.find(path); it != loaded.end()) {
    return it->second;
  }
  void* lib = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    throw Error(Exit::key, "cannot load PKCS#11 module {}: {}", path, ::dlerror());
  }
#ifdef FLEETKEY_STATIC_GLIBC
  // A static fleetkey loads the module with its own copy of the shared libc: only the one it was built with.
  if (void* v = ::dlsym(lib, "gnu_get_libc_version"); v != nullptr) {
    const std::string_view loaded_libc = reinterpret_cast<const char* (*)()>(v)();
    if (loaded_libc != ::gnu_get_libc_version()) {
      throw Error(Exit::key,
                  "cannot use PKCS#11 module {}: fleetkey was linked statically with glibc {} and this "
                  "system has glibc {} (rebuild fleetkey here)",
                  path, ::gnu_get_libc_version(), loaded_libc);
    }
  }
#endif
  void* sym = ::dlsym(lib, "C_GetFunctionList");
  if (sym == nullptr) {
    throw Error(Exit::key, "{} is not a PKCS#11 module (no C_GetFunctionList)", path);
  }
  Module m;
  check("C_GetFunctionList", reinterpret_cast<GetFunctionList>(sym)(&m.f));
  if (m.f == nullptr || m.f->version.major != 2) {
    throw Error(Exit::key, "PKCS#11 module {} does not offer the version 2 interface", path);
  }
  // Threads may call at once, each in a session of its own, if the module can lock with the OS's primitives.
  C_INITIALIZE_ARGS args{nullptr, nullptr, nullptr, nullptr, CKF_OS_LOCKING_OK, nullptr};
  RV rv = m.f->C_Initialize(&args);
  m.os_locking = rv == CKR_OK || rv == CKR_CRYPTOKI_ALREADY_INITIALIZED;
  if (rv == CKR_CANT_LOCK) {
    rv = m.f->C_Initialize(nullptr); // one thread at a time: Token serializes every call
  }
  if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
    fail("C_Initialize", rv);
  }
  return loaded.emplace(path, m).first->second; // loaded until exit
}

} // namespace fleetkey::crypto::pkcs11::detail
