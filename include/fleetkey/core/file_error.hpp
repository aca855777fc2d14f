#pragma once
// util's file errors (util::FileError) as the command line reports them: the exit codes of
// fleetkey(1) and the reason file_exists. Caught and mapped where a command's errors are reported
// (cmd/main.cpp) and where fleet rewrites a message (a staging file's name).

#include <fleetkey/core/error.hpp>
#include <fleetkey/util/file.hpp>

namespace fleetkey {

// bad_name: usage (2); exists: conflict (4), reason file_exists; appeared: conflict (4); failure: 1.
inline Error file_error(const util::FileError& e)
{
  switch (e.kind()) {
  case util::FileError::Kind::bad_name:
    return Error(Exit::usage, std::string(e.what()));
  case util::FileError::Kind::exists:
    return Error(Exit::conflict, std::string(e.what())).with_reason("file_exists");
  case util::FileError::Kind::appeared:
    return Error(Exit::conflict, std::string(e.what()));
  case util::FileError::Kind::failure:
    break;
  }
  return Error(Exit::failure, std::string(e.what()));
}

} // namespace fleetkey
