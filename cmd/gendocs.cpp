// fleetkey-gendocs: writes the shell completions and the command reference of man/fleetkey.1
// from the CLI definition itself, so that neither can drift from the commands.
//
//   fleetkey-gendocs --write SOURCE_DIR   regenerate the files
//   fleetkey-gendocs --check SOURCE_DIR   exit 1 if any of them differs from what it would write

#include "commands.hpp"
#include "docs.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

namespace {

std::string read(const std::string& path)
{
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

} // namespace

int main(int argc, char** argv)
{
  if (argc != 3 || (std::string(argv[1]) != "--write" && std::string(argv[1]) != "--check")) {
    std::cerr << "usage: fleetkey-gendocs --write|--check SOURCE_DIR\n";
    return 2;
  }
  const bool write = std::string(argv[1]) == "--write";
  const std::string dir = argv[2];
  fleetkey::cmd::Context ctx;
  auto app = fleetkey::cmd::build_app(ctx);
  using fleetkey::cmd::docs::completion_script;
  std::map<std::string, std::string> files;
  files["completions/fleetkey.bash"] = completion_script(*app, "bash");
  files["completions/_fleetkey"] = completion_script(*app, "zsh");
  files["completions/fleetkey.fish"] = completion_script(*app, "fish");
  const std::string man_path = "man/fleetkey.1";
  std::string man = read(dir + "/" + man_path);
  const auto begin = man.find(".\\\" BEGIN GENERATED COMMAND REFERENCE");
  const std::string end_marker = ".\\\" END GENERATED COMMAND REFERENCE\n";
  const auto end = man.find(end_marker);
  if (begin == std::string::npos || end == std::string::npos || end < begin) {
    std::cerr << "fleetkey-gendocs: " << man_path << " has no GENERATED COMMAND REFERENCE markers\n";
    return 1;
  }
  files[man_path] =
      man.substr(0, begin) + fleetkey::cmd::docs::man_reference(*app) + man.substr(end + end_marker.size());

  int drift = 0;
  for (const auto& [rel, content] : files) {
    const std::string path = dir + "/" + rel;
    if (read(path) == content) {
      continue;
    }
    if (write) {
      std::ofstream(path, std::ios::binary) << content;
      std::cout << "wrote " << rel << "\n";
    } else {
      std::cerr << "fleetkey-gendocs: " << rel << " is out of date with the CLI: run `make docs`\n";
      drift = 1;
    }
  }
  return drift;
}
