// fleetkey completion bash|zsh|fish, and the hidden fleetkey __complete devices|users PREFIX that the
// scripts call to complete device ids and user names from the registry.
#include "commands.hpp"
#include "docs.hpp"

#include <fleetkey/fleet/devices.hpp>
#include <fleetkey/fleet/users.hpp>

#include <fmt/format.h>

#include <memory>

namespace fleetkey::cmd {

namespace {

struct CompleteOptions
{
  std::string what;
  std::string prefix;
};

// Names with a newline cannot be one completion candidate a line: left out, as is anything that cannot
// be printed on a terminal as it is.
bool candidate(std::string_view name, std::string_view prefix)
{
  return name.starts_with(prefix) && one_line(name) == name;
}

} // namespace

void setup_completion(CLI::App& app, Context& ctx)
{
  auto shell = std::make_shared<std::string>();
  auto* completion = add_command(
      app, ctx, "completion",
      "Print the completion script for SHELL (the same as completions/ in the source tree), for example "
      "`source <(fleetkey completion bash)` in ~/.bashrc, `fleetkey completion fish > "
      "~/.config/fish/completions/fleetkey.fish`, or for zsh into a file named _fleetkey in a directory of $fpath. "
      "It completes commands and options, and device ids and user names from the registry",
      [&ctx, shell] {
        Context full_ctx;
        const auto full = build_app(full_ctx);
        ctx.print(docs::completion_script(*full, *shell));
      });
  completion->add_option("SHELL", *shell, "The shell")->required()->check(CLI::IsMember({"bash", "zsh", "fish"}));
}

void setup_complete(CLI::App& app, Context& ctx)
{
  auto o = std::make_shared<CompleteOptions>();
  auto* complete = add_command(app, ctx, "__complete", "", [&ctx, o] {
    // For the completion scripts: read-only, one candidate a line, and silent on every error (no
    // registry yet, an unknown home), which completes nothing.
    try {
      auto& fleet = ctx.fleet();
      std::string out;
      if (o->what == "devices") {
        fleet::list_devices(fleet, "", [&](const fleet::Device& d) {
          if (candidate(d.id, o->prefix)) {
            out += d.id + "\n";
          }
        });
      } else if (o->what == "users") {
        fleet::list_users(fleet, [&](const fleet::User& u) {
          if (candidate(u.name, o->prefix)) {
            out += u.name + "\n";
          }
        });
      }
      ctx.print(out);
    } catch (const std::exception&) {
      // nothing to complete
    }
  });
  complete->group(""); // hidden: not in help, the man page or the completions
  complete->add_option("WHAT", o->what, "devices or users")->required();
  complete->add_option("PREFIX", o->prefix, "What the word being completed starts with");
}

} // namespace fleetkey::cmd
