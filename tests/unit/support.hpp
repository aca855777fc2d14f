#pragma once
// Shared by the unit tests: a temporary directory and the exit code an action throws.

#include <fleetkey/core/error.hpp>
#include <fleetkey/core/file_error.hpp>

#include <filesystem>
#include <functional>
#include <string>
#include <unistd.h>

namespace fleetkey::test {

struct TempDir
{
  std::string path;
  TempDir()
  {
    char tmpl[] = "/tmp/fleetkey-unit-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

// The exit code of the Error `fn` throws (of a util::FileError: the one the CLI reports, through
// core/file_error.hpp), or Exit::ok when it throws none.
inline Exit code_of(const std::function<void()>& fn)
{
  try {
    fn();
  } catch (const Error& e) {
    return e.code();
  } catch (const util::FileError& e) {
    return file_error(e).code();
  }
  return Exit::ok;
}

} // namespace fleetkey::test
