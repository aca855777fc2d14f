// fleetkey agent start | stop | status
#include "commands.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/fleet/agent.hpp>
#include <fleetkey/util/text.hpp>

#include <fmt/format.h>

namespace fleetkey::cmd {

namespace {

Json expires_json(const std::optional<int64_t>& expires)
{
  return expires ? Json(util::format_time(*expires)) : Json(nullptr);
}

Json status_json(const fleet::agent::Status& s)
{
  return {{"socket", s.socket},   {"pid", s.pid},           {"versions", s.versions},
          {"current", s.current}, {"test_key", s.test_key}, {"expires", expires_json(s.expires)}};
}

void add_agent_start(CLI::App& agent, Context& ctx)
{
  auto lifetime = std::make_shared<std::optional<std::string>>();
  auto* start =
      add_command(agent, ctx, "start",
                  "Unlock the master key once and serve derivations to this user's commands from a background process; "
                  "prints the FLEETKEY_AGENT setting for eval",
                  [&ctx, lifetime] {
                    std::optional<int64_t> seconds;
                    if (*lifetime) {
                      auto d = util::parse_duration(**lifetime);
                      if (!d) {
                        throw Error(Exit::usage, "--lifetime: {}", d.error());
                      }
                      seconds = *d;
                    }
                    const auto s = fleet::agent::start(ctx.fleet(), seconds);
                    if (ctx.json()) {
                      ctx.print_json({{"socket", s.socket}, {"pid", s.pid}, {"expires", expires_json(s.expires)}});
                    } else {
                      ctx.print(fleet::agent::shell_export(s));
                    }
                  });
  start
      ->add_option("--lifetime", *lifetime,
                   "Wipe the key and exit after DURATION, 1s to 10 years, e.g. 8h (default: until agent stop)")
      ->type_name("DURATION");
}

void add_agent_stop(CLI::App& agent, Context& ctx)
{
  add_command(agent, ctx, "stop", "Stop the agent at FLEETKEY_AGENT: it wipes the key and removes its socket", [&ctx] {
    const auto s = fleet::agent::stop();
    if (ctx.json()) {
      ctx.print_json(status_json(s));
    } else {
      ctx.print(fmt::format("unset FLEETKEY_AGENT;\necho fleetkey agent pid {} stopped;\n", s.pid));
    }
  });
}

void add_agent_status(CLI::App& agent, Context& ctx)
{
  add_command(agent, ctx, "status", "Show the agent at FLEETKEY_AGENT: its master key versions and lifetime", [&ctx] {
    const auto s = fleet::agent::status();
    if (ctx.json()) {
      ctx.print_json(status_json(s));
      return;
    }
    std::string versions;
    for (const auto v : s.versions) {
      versions += fmt::format("{}{}", versions.empty() ? "" : ", ", v);
    }
    ctx.print(fmt::format("socket:    {}\npid:       {}\nversions:  {} (current {})\ntest key:  {}\nexpires:   {}\n",
                          s.socket, s.pid, versions, s.current, s.test_key ? "yes" : "no",
                          s.expires ? util::format_time(*s.expires) : "never"));
  });
}

} // namespace

void setup_agent(CLI::App& app, Context& ctx)
{
  static constexpr Command k_commands[] = {
      {"start", add_agent_start},
      {"stop", add_agent_stop},
      {"status", add_agent_status},
  };
  add_group(app, ctx, "agent", "Keep the master key unlocked in a background agent", k_commands);
}

} // namespace fleetkey::cmd
