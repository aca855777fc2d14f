// fleetkey audit list | verify | checkpoint
#include "commands.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/fleet/audit.hpp>

#include <fmt/format.h>

namespace fleetkey::cmd {

namespace {

void add_audit_list(CLI::App& audit, Context& ctx)
{
  auto q = std::make_shared<fleet::AuditQuery>();
  auto* list = add_command(audit, ctx, "list", "List audit events, oldest first, streaming", [&ctx, q] {
    bool header = false;
    fleet::list_audit(ctx.fleet(), *q, [&](const fleet::AuditEvent& e) {
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

void add_audit_verify(CLI::App& audit, Context& ctx)
{
  auto checkpoint_path = std::make_shared<std::optional<std::string>>();
  auto* verify = add_command(
      audit, ctx, "verify", "Check the audit trail's hash chain, and name the first bad row", [&ctx, checkpoint_path] {
        std::optional<fleet::AuditCheckpoint> cp;
        if (*checkpoint_path) {
          cp = fleet::read_checkpoint(**checkpoint_path);
        }
        const auto v = fleet::verify_audit(ctx.fleet(), cp);
        if (ctx.json()) {
          Json bad = nullptr;
          if (!v.ok()) {
            bad = {{"problem", fleet::problem_name(v.problem)},
                   {"seq", v.seq},
                   {"id", v.id ? Json(*v.id) : Json(nullptr)},
                   {"detail", v.detail}};
          }
          ctx.print_json(
              {{"ok", v.ok()},
               {"rows", v.rows},
               {"head", {{"seq", v.head.seq}, {"hash", v.head.hash}, {"at", v.head.at}}},
               {"checkpoint", cp ? Json{{"seq", cp->seq}, {"hash", cp->hash}, {"at", cp->at}} : Json(nullptr)},
               {"first_bad", bad}});
        }
        if (!v.ok()) {
          throw Error(Exit::audit_chain, "{}", fleet::verdict_message(v));
        }
        if (!ctx.json()) {
          ctx.print(fmt::format("audit chain ok: {} rows\nhead:       seq {} hash {} at {}\n", v.rows, v.head.seq,
                                v.head.hash, v.head.at));
          if (cp) {
            ctx.print(fmt::format("checkpoint: seq {} matches; no row after it is missing\n", cp->seq));
          }
        }
      });
  verify
      ->add_option("--checkpoint", *checkpoint_path,
                   "Also prove that the trail holds the head this checkpoint (from audit checkpoint) names, unchanged: "
                   "FILE, or - for stdin")
      ->type_name("FILE");
  verify->footer("Exit status: 0 the chain verifies, 20 a row was changed, deleted or inserted, or rows after the "
                 "checkpoint were cut off (the error names the first bad row). See fleetkey-formats(5), AUDIT CHAIN.");
}

void add_audit_checkpoint(CLI::App& audit, Context& ctx)
{
  add_command(audit, ctx, "checkpoint",
              "Print the head of a verified audit chain (seq, hash, time), to keep elsewhere for audit verify "
              "--checkpoint",
              [&ctx] {
                const auto cp = fleet::audit_checkpoint(ctx.fleet());
                if (ctx.json()) {
                  ctx.print_json({{"seq", cp.seq}, {"hash", cp.hash}, {"at", cp.at}});
                } else {
                  ctx.print(fleet::format_checkpoint(cp));
                }
              })
      ->footer("Exit status: 0, or 20 when the chain does not verify (as audit verify).");
}

} // namespace

void setup_audit(CLI::App& app, Context& ctx)
{
  static constexpr Command k_commands[] = {
      {"list", add_audit_list}, {"verify", add_audit_verify}, {"checkpoint", add_audit_checkpoint}};
  add_group(app, ctx, "audit", "Read the audit trail, and check its hash chain", k_commands);
}

} // namespace fleetkey::cmd
