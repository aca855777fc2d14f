#pragma once
// The generated documentation: shell completion scripts and the man page's command reference, from the
// CLI definition (the application build_app makes with every command).

#include <CLI/CLI.hpp>

#include <string>
#include <string_view>

namespace fleetkey::cmd::docs {

// The completion script for `shell`: "bash", "zsh" or "fish" (completions/ holds the three).
std::string completion_script(const CLI::App& app, std::string_view shell);
// The command reference between the GENERATED COMMAND REFERENCE markers of man/fleetkey.1.
std::string man_reference(const CLI::App& app);

} // namespace fleetkey::cmd::docs
