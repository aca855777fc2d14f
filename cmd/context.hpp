#pragma once
// What every command file shares: the global options, the fleet they open, and output helpers.

#include <fleetkey/core/error.hpp>
#include <fleetkey/fleet/fleet.hpp>
#include <fleetkey/fleet/keys.hpp>
#include <fleetkey/util/file.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

namespace fleetkey::cmd {

using Json = nlohmann::ordered_json;

struct Globals
{
  std::optional<std::string> home;
  std::optional<std::string> registry;
  std::optional<std::string> master_key;
  std::optional<std::string> passphrase_file;
  std::optional<std::string> pin_file;
  bool json = false;
  bool json_errors = false; // --json-errors, $FLEETKEY_JSON_ERRORS=1
  bool quiet = false;
  int verbose = 0;
};

class Context
{
public:
  Globals globals;
  // Set by the callback of the command the user chose; main runs it once parsing succeeded.
  std::function<void()> action;
  // The word after the group on the command line (`add` in `fleetkey device add ...`), which
  // may name one of the group's commands; empty when every command is built (see add_group).
  std::string_view named_command;

  fleet::Fleet& fleet();
  // For a command that delivers a credential or a code on stdout: its registry changes are committed
  // only after its output is written and flushed (main calls commit_held), so that output that
  // cannot be written (a full disk, a closed pipe) leaves the registry unchanged.
  void commit_after_output() { fleet().hold_commits(); }
  void commit_held()
  {
    if (m_fleet) {
      m_fleet->commit_held();
    }
  }
  bool json() const { return globals.json; }
  // Before the command runs: with $SOURCE_DATE_EPOCH set, opens the registry, which pins the clock to it
  // when its master keys are test keys (fleet::pin_clock_to_source_date_epoch).
  void pin_clock();

  void print(std::string_view text) const;             // stdout, as is
  void print_json(const Json& value) const;            // stdout, one line
  void note(std::string_view text) const;              // stdout, human mode only, unless --quiet
  void warn(std::string_view text) const;              // stderr: "fleetkey: warning: ..."
  void write_secret(const crypto::Secret& text) const; // stdout, then flushed

private:
  std::unique_ptr<fleet::Fleet> m_fleet;
};

// `text` made one line of printable text for stderr and for human output of untrusted text (a token's
// kid and claims), since it can hold terminal escapes: C0 and C1 controls and DEL as \n, \t, \r, \xNN
// or \uNNNN (also U+2028, U+2029 and the bidi controls U+061C, U+200E, U+200F, U+202A-U+202E,
// U+2066-U+2069), each byte of invalid UTF-8 as \xNN. Anything else, backslashes included, is copied
// as is.
std::string one_line(std::string_view text);

// Whether colour escapes may go to a terminal: not when $NO_COLOR is set and not empty (no-color.org).
bool colour_allowed();

// The error's error.code with --json (fleetkey(1), SCRIPTING): its reason if it has one (exists,
// already_revoked, grant_revoked, grant_expired, device_revoked, file_exists), else its exit code's name.
std::string error_code(const Error& e);

// `-o FILE` of a command whose job is one secret (device key, user key): FILE is created 0600 under a
// temporary name before the secret is derived (so that a taken name changes nothing, exit 4) and named
// once written; none, or "-", is standard output.
class SecretOutput
{
public:
  explicit SecretOutput(const std::optional<std::string>& path);
  ~SecretOutput();
  void write(const Context& ctx, const crypto::Secret& text); // then names FILE

private:
  std::unique_ptr<util::AtomicFile> m_file;
};

// --key-format base64|hex: the key's encoding in a command's JSON output (fleetkey(1), KEY FORMATS).
void add_key_format_option(CLI::App& command, std::optional<std::string>& key_format);
// The encoding of the key in JSON output of `format`; --key-format with any other output is refused (usage).
fleet::KeyEncoding json_key_encoding(fleet::KeyFormat format, const std::optional<std::string>& key_format);

// Registers a subcommand whose callback hands `run` to main as the action to perform.
CLI::App* add_command(CLI::App& parent, Context& ctx, const std::string& name, const std::string& help,
                      std::function<void()> run);

// A command (or command group) and the function that adds it, with its options, to its parent.
struct Command
{
  std::string_view name;
  void (*setup)(CLI::App& parent, Context& ctx);
};

// Adds a command group that requires one of its commands, and the commands in order: only the one
// ctx.named_command names, if it names one. A command line that names its command gets the same
// parse from it alone, and building all of a group's options costs a one-line command such as
// `device add` more than its own work.
void add_group(CLI::App& app, Context& ctx, const std::string& name, const std::string& help,
               std::span<const Command> commands);

} // namespace fleetkey::cmd
