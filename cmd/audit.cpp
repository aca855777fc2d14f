// fleetkey audit list
#include "commands.hpp"

#include <fleetkey/fleet/audit.hpp>

#include <fmt/format.h>

namespace fleetkey::cmd {

void setup_audit(CLI::App& app, Context& ctx)
{
  auto* audit = app.add_subcommand("audit", "Read the audit trail");
  audit->require_subcommand(1);

  auto q = std::make_shared<fleet::AuditQuery>();
  auto* list = add_command(*audit, ctx, "list", "List audit events, oldest first, streaming", [&ctx, q] {
    bool header = false;
    fleet::list_audit(ctx.fleet(), *q, [&](const registry::AuditRecord& e) {
      if (ctx.json()) {
        ctx.print_json({{"id", e.id},
                        {"at", e.at},
                        {"actor", e.actor},
                        {"action", e.action},
                        {"subject", e.subject},
                        {"details", e.details}});
        return;
      }
      if (!header) {
        ctx.print(
            fmt::format("{:<6} {:<20} {:<12} {:<20} {:<24} {}\n", "ID", "AT", "ACTOR", "ACTION", "SUBJECT", "DETAILS"));
        header = true;
      }
      // One line an event, whatever the actor's name or an imported file's name holds.
      ctx.print(fmt::format("{:<6} {:<20} {:<12} {:<20} {:<24} {}\n", e.id, one_line(e.at), one_line(e.actor),
                            one_line(e.action), one_line(e.subject),
                            e.details.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
    });
  });
  list->add_option("--action", q->action,
                   "Only this action (device.add), or every action under a prefix that ends in a dot (device.)")
      ->type_name("ACTION");
  list->add_option(
          "--subject", q->subject,
          "Only events about SUBJECT: its subject (device, user, token id or key), or the device or token id it names")
      ->type_name("SUBJECT");
  list->add_option("--since", q->since, "Only events at or after TIME (2026-11-22T10:00:00Z, 2026-11-22, @UNIX)")
      ->type_name("TIME");
  list->add_option("--last", q->last, "Only the last N matching events")->type_name("N");
}

} // namespace fleetkey::cmd
