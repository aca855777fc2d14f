// fleetkey master list | rotate | retire | passwd (backup and restore: backup.cpp)
#include "commands.hpp"
#include "render.hpp"

#include <fleetkey/fleet/master.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace fleetkey::cmd {

namespace {

void print_master_table(Context& ctx, const std::vector<fleet::MasterKeyVersion>& keys)
{
  if (ctx.json()) {
    for (const auto& k : keys) {
      ctx.print_json(to_json(k));
    }
    return;
  }
  ctx.print(fmt::format("{:<8} {:<8} {:<21} {:<32} {}\n", "VERSION", "STATUS", "CREATED", "FINGERPRINT", "TEST"));
  for (const auto& k : keys) {
    ctx.print(fmt::format("{:<8} {:<8} {:<21} {:<32} {}\n", k.version, k.status, k.created, k.fingerprint,
                          k.test_key ? "yes" : "no"));
  }
}

void add_master_list(CLI::App& master, Context& ctx)
{
  add_command(master, ctx, "list", "List master key versions (no passphrase needed)",
              [&ctx] { print_master_table(ctx, fleet::list_master_keys(ctx.fleet())); });
}

void add_master_rotate(CLI::App& master, Context& ctx)
{
  add_command(master, ctx, "rotate",
              "Add master key version v+1 and make it current (asks for the passphrase once, and keeps it)", [&ctx] {
                ctx.fleet().use_key_file(); // the agent's keys cannot be written to a file
                const auto rec = fleet::rotate_master_key(ctx.fleet());
                if (ctx.json()) {
                  ctx.print_json(to_json(rec));
                } else {
                  ctx.note(
                      fmt::format("master key v{} is now current (fingerprint {}); devices keep the version they were "
                                  "registered with",
                                  rec.version, rec.fingerprint));
                }
              });
}

void add_master_retire(CLI::App& master, Context& ctx)
{
  auto version = std::make_shared<uint32_t>(0);
  auto* retire = add_command(master, ctx, "retire", "Retire a master key version: its keys and tokens stop working",
                             [&ctx, version] {
                               const auto rec = fleet::retire_master_key(ctx.fleet(), *version);
                               if (ctx.json()) {
                                 ctx.print_json(to_json(rec));
                               } else {
                                 ctx.note(fmt::format("master key v{} is retired", rec.version));
                               }
                             });
  retire->add_option("VERSION", *version, "Master key version to retire")->required();
}

void add_master_passwd(CLI::App& master, Context& ctx)
{
  auto po = std::make_shared<fleet::PasswdOptions>();
  auto* passwd =
      add_command(master, ctx, "passwd", "Re-encrypt the master key file under a new passphrase", [&ctx, po] {
        ctx.fleet().use_key_file();
        fleet::change_passphrase(ctx.fleet(), *po);
        if (ctx.json()) {
          ctx.print_json({{"master_key", ctx.fleet().paths().master_key}, {"encrypted", !po->no_passphrase}});
        } else {
          ctx.note(
              fmt::format("{} {}", po->no_passphrase ? "decrypted" : "re-encrypted", ctx.fleet().paths().master_key));
        }
      });
  auto* new_file = passwd
                       ->add_option("--new-passphrase-file", po->new_passphrase_file,
                                    "Read the new passphrase from FILE (default: ask twice on the terminal)")
                       ->type_name("FILE");
  auto* kdf = passwd->add_option("--kdf", po->kdf_profile, "Argon2id cost for the new passphrase (default: unchanged)")
                  ->check(CLI::IsMember({"interactive", "moderate", "sensitive"}));
  passwd
      ->add_flag("--no-passphrase", po->no_passphrase,
                 "Write the key file unencrypted (not with --new-passphrase-file or --kdf)")
      ->excludes(new_file)
      ->excludes(kdf);
}

void add_master_import_to_hsm(CLI::App& master, Context& ctx)
{
  auto uri = std::make_shared<std::string>();
  auto* cmd = add_command(
      master, ctx, "import-to-hsm",
      "Move every master key version into a PKCS#11 token and replace the key file by a reference to it (take "
      "master backup first: the keys cannot leave the token)",
      [&ctx, uri] {
        ctx.fleet().use_key_file();
        const auto r = fleet::import_to_hsm(ctx.fleet(), *uri);
        if (ctx.json()) {
          ctx.print_json({{"pkcs11", r.uri}, {"token", r.token}, {"versions", r.versions}});
        } else {
          ctx.note(fmt::format("imported master key version{} {} into PKCS#11 token \"{}\" ({})",
                               r.versions.size() == 1 ? "" : "s", fmt::join(r.versions, ", "), r.token, r.uri));
          ctx.note(fmt::format("{} now refers to the token", ctx.fleet().paths().master_key));
        }
      });
  cmd->add_option("URI", *uri,
                  "RFC 7512 PKCS#11 URI of the token (token=, serial=, object= for the label prefix, ?module-path=)")
      ->required();
}

} // namespace

void setup_master(CLI::App& app, Context& ctx)
{
  static constexpr Command k_commands[] = {
      {"list", add_master_list},
      {"rotate", add_master_rotate},
      {"retire", add_master_retire},
      {"passwd", add_master_passwd},
      {"backup", add_master_backup},
      {"restore", add_master_restore},
      {"import-to-hsm", add_master_import_to_hsm},
  };
  add_group(app, ctx, "master", "Manage master key versions", k_commands);
}

} // namespace fleetkey::cmd
