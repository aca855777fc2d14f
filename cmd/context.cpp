#include "context.hpp"

#include <fmt/format.h>

#include <cstdio>

namespace fleetkey::cmd {

fleet::Fleet& Context::fleet()
{
  if (!m_fleet) {
    fleet::Options o{globals.home, globals.registry, globals.master_key, globals.passphrase_file};
    m_fleet = std::make_unique<fleet::Fleet>(o, [this](std::string_view msg) { warn(msg); });
    if (globals.verbose > 0) {
      const auto& p = m_fleet->paths();
      fmt::print(stderr, "fleetkey: home {}, registry {}, master key {}\n", p.home, p.registry, p.master_key);
    }
  }
  return *m_fleet;
}

void Context::print(std::string_view text) const
{
  std::fwrite(text.data(), 1, text.size(), stdout);
}

void Context::print_json(const Json& value) const
{
  print(value.dump(-1, ' ', false, Json::error_handler_t::replace));
  print("\n");
}

void Context::note(std::string_view text) const
{
  if (!globals.quiet && !globals.json) {
    print(text);
    print("\n");
  }
}

void Context::warn(std::string_view text) const
{
  fmt::print(stderr, "fleetkey: warning: {}\n", text);
}

void Context::write_secret(const crypto::Secret& text) const
{
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

CLI::App* add_command(CLI::App& parent, Context& ctx, const std::string& name, const std::string& help,
                      std::function<void()> run)
{
  CLI::App* sub = parent.add_subcommand(name, help);
  sub->callback([&ctx, run = std::move(run)] { ctx.action = run; });
  return sub;
}

} // namespace fleetkey::cmd
