// fleetkey registry copy
#include "commands.hpp"

#include <fleetkey/fleet/copy.hpp>

#include <fmt/format.h>

namespace fleetkey::cmd {

namespace {

void add_registry_copy(CLI::App& group, Context& ctx)
{
  auto to = std::make_shared<std::string>();
  auto* copy = add_command(
      group, ctx, "copy",
      "Copy every row of the registry, audit trail included, into a new registry (an SQLite file or a PostgreSQL "
      "database)",
      [&ctx, to] {
        const auto s = fleet::copy_registry(ctx.fleet(), *to);
        if (ctx.json()) {
          ctx.print_json({{"from", s.from},
                          {"to", s.to},
                          {"from_backend", s.from_backend},
                          {"to_backend", s.to_backend},
                          {"master_keys", s.master_keys},
                          {"devices", s.devices},
                          {"users", s.users},
                          {"grants", s.grants},
                          {"revocations", s.revocations},
                          {"audit", s.audit}});
          return;
        }
        ctx.print(fmt::format("copied registry {} to {}: {} devices, {} users, {} grants, {} revocations, {} master "
                              "key versions, {} audit rows (and one registry.copy row)\n",
                              one_line(s.from), one_line(s.to), s.devices, s.users, s.grants, s.revocations,
                              s.master_keys, s.audit));
      });
  copy->add_option("--to", *to,
                   "The new registry: an SQLite path that does not exist, or a postgresql:// URI or service=NAME of a "
                   "database with no table")
      ->type_name("LOCATION")
      ->required();
}

} // namespace

void setup_registry(CLI::App& app, Context& ctx)
{
  static constexpr Command k_commands[] = {
      {"copy", add_registry_copy},
  };
  add_group(app, ctx, "registry", "Move the registry between backends (SQLite, PostgreSQL)", k_commands);
}

} // namespace fleetkey::cmd
