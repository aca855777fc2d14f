#pragma once
// Private to src/crypto: a PKCS#11 module, loaded with dlopen(3) and initialized once a process
// (pkcs11_module.cpp), and the error of a failed call, for the token operations (pkcs11.cpp).

#include "crypto/pkcs11_types.hpp"

#include <string>
#include <string_view>

namespace fleetkey::crypto::pkcs11::detail {

// A module, loaded and initialized once a process.
struct Module
{
  ck::FUNCTION_LIST* f = nullptr;
  bool os_locking = false;
};

// Throws Error(key) naming the call and its CK_RV.
[[noreturn]] void fail(std::string_view what, ck::RV rv);
// Throws as fail() unless `rv` is CKR_OK.
void check(std::string_view what, ck::RV rv);

// The module at `path`, loaded and initialized on first use (threads in sessions of their own when it
// can lock with the OS's primitives); loaded until exit.
const Module& load_module(const std::string& path);

} // namespace fleetkey::crypto::pkcs11::detail
