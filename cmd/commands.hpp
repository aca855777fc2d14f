#pragma once
// The command table: every command group, in the order `fleetkey --help` lists them.
// Adding a group means adding its file in cmd/ and one line here and in app.cpp.

#include "context.hpp"

#include <span>

namespace fleetkey::cmd {

void setup_init(CLI::App& app, Context& ctx);
void setup_master(CLI::App& app, Context& ctx);
void add_master_backup(CLI::App& master, Context& ctx);  // cmd/backup.cpp
void add_master_restore(CLI::App& master, Context& ctx); // cmd/backup.cpp
void setup_device(CLI::App& app, Context& ctx);
void setup_device_import(CLI::App& device, Context& ctx); // cmd/import.cpp
void add_device_state(CLI::App& device, Context& ctx);    // cmd/device_state.cpp
void setup_user(CLI::App& app, Context& ctx);
void add_user_grant(CLI::App& user, Context& ctx); // cmd/user_grant.cpp
void setup_token(CLI::App& app, Context& ctx);
void setup_pair(CLI::App& app, Context& ctx);
void setup_audit(CLI::App& app, Context& ctx);
void setup_agent(CLI::App& app, Context& ctx);
void setup_registry(CLI::App& app, Context& ctx);
void setup_completion(CLI::App& app, Context& ctx); // cmd/completion.cpp
void setup_complete(CLI::App& app, Context& ctx);   // cmd/completion.cpp: the hidden __complete

// Builds the command line: global options and the command groups. With `args` (argv) naming a
// group, only that group, and only the command named after it if there is one (add_group);
// without, every group (help, completions, man page).
std::unique_ptr<CLI::App> build_app(Context& ctx, std::span<char* const> args = {});

// The one-line message for a parse error, ending in where to look for help. In fleetkey's words
// where CLI11's would mislead: it says "A subcommand is required" both for a group given no
// command and for a word that is no command.
// --now TIME of token mint, token verify and user grant (2026-11-22T00:12:17Z, 2026-11-22 or @UNIX),
// checked against a token's time range; none without it. In cmd/token.cpp.
std::optional<int64_t> parse_now(const std::optional<std::string>& now);

std::string parse_error_message(const CLI::App& app, const CLI::ParseError& e, std::span<char* const> args);

} // namespace fleetkey::cmd
