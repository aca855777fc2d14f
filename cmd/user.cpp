// fleetkey user add | list | show | revoke | key (user grant: user_grant.cpp)
#include "commands.hpp"
#include "render.hpp"
#include "terminal.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/fleet/grant.hpp>
#include <fleetkey/fleet/keys.hpp>
#include <fleetkey/fleet/qr.hpp>
#include <fleetkey/fleet/tokens.hpp>
#include <fleetkey/fleet/users.hpp>
#include <fleetkey/util/file.hpp>
#include <fleetkey/util/text.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <unistd.h>

namespace fleetkey::cmd {

namespace {

struct UserAddOptions
{
  std::string name;
  std::vector<std::string> labels;
  bool if_missing = false;
};

struct UserRevokeOptions
{
  std::string name;
  std::optional<std::string> device;
  std::string reason;
  bool if_not_revoked = false;
};

struct UserKeyOptions
{
  std::optional<std::string> key_format;
  std::string name;
  std::string device;
  std::string format = "hex";
  std::optional<std::string> output;
};

void add_user_add(CLI::App& user, Context& ctx)
{
  auto ao = std::make_shared<UserAddOptions>();
  auto* add = add_command(user, ctx, "add", "Add a user", [&ctx, ao] {
    const auto labels = fleet::parse_labels(ao->labels);
    std::optional<fleet::User> u;
    try {
      u = fleet::add_user(ctx.fleet(), ao->name, labels);
    } catch (const Error& e) {
      if (!ao->if_missing || !e.has_reason("exists")) {
        throw;
      }
    }
    const bool added = u.has_value();
    if (!added) {
      u = fleet::show_user(ctx.fleet(), ao->name).user;
    }
    if (ctx.json()) {
      Json j = to_json(*u);
      j["added"] = added;
      ctx.print_json(j);
    } else {
      ctx.note(added ? fmt::format("added user {}", u->name) : fmt::format("user {} already exists", u->name));
    }
  });
  add->add_option("NAME", ao->name, "User name: 1-128 bytes of printable UTF-8")->required();
  add->add_option("--label", ao->labels, "Label KEY=VALUE")->type_name("K=V");
  add->add_flag("--if-missing", ao->if_missing,
                "Succeed without change if the user already exists (its labels are left as they are)");
}

void add_user_list(CLI::App& user, Context& ctx)
{
  add_command(user, ctx, "list", "List users", [&ctx] {
    ctx.fleet().registry(); // fail before printing anything
    if (!ctx.json()) {
      ctx.print(fmt::format("{:<24} {:<21} {}\n", "NAME", "CREATED", "LABELS"));
    }
    fleet::list_users(ctx.fleet(), [&ctx](const fleet::User& u) {
      ctx.json() ? ctx.print_json(to_json(u))
                 : ctx.print(fmt::format("{:<24} {:<21} {}\n", u.name, u.created, labels_text(u.labels)));
    });
  });
}

void add_user_show(CLI::App& user, Context& ctx)
{
  auto show_name = std::make_shared<std::string>();
  auto* show = add_command(user, ctx, "show", "Show a user and their grants", [&ctx, show_name] {
    const auto d = fleet::show_user(ctx.fleet(), *show_name);
    if (ctx.json()) {
      Json j = to_json(d.user);
      j["grants"] = Json::array();
      for (const auto& g : d.grants) {
        j["grants"].push_back(to_json(g));
      }
      ctx.print_json(j);
      return;
    }
    ctx.print(fmt::format("name:     {}\nlabels:   {}\ncreated:  {}\ngrants:   {}\n", d.user.name,
                          labels_text(d.user.labels), d.user.created, d.grants.size()));
    for (const auto& g : d.grants) {
      ctx.print(fmt::format("  {:<24} role {:<12} epoch {:<4} {:<8} expires {}\n", g.device, g.role, g.epoch,
                            fleet::grant_status(g, util::unix_now()), g.expires.value_or("never")));
    }
  });
  show->add_option("NAME", *show_name, "User name")->required();
}

void add_user_revoke(CLI::App& user, Context& ctx)
{
  auto ro = std::make_shared<UserRevokeOptions>();
  auto* revoke =
      add_command(user, ctx, "revoke", "Revoke a user's grant on one device, or on every device", [&ctx, ro] {
        std::vector<fleet::GrantInfo> revoked;
        try {
          revoked = fleet::revoke_user(ctx.fleet(), ro->name, ro->device, ro->reason);
        } catch (const Error& e) {
          if (!ro->if_not_revoked || !e.has_reason("already_revoked")) {
            throw;
          }
          // Nothing left to revoke: the state asked for. With --json, no line (no grant revoked now).
          ctx.note(ro->device ? fmt::format("{} on device {} is already revoked", ro->name, *ro->device)
                              : fmt::format("{} has no active grant: already revoked", ro->name));
        }
        for (const auto& g : revoked) {
          ctx.json() ? ctx.print_json(to_json(g))
                     : ctx.note(fmt::format("revoked {} on device {} (key epoch now {})", g.user, g.device, g.epoch));
        }
      });
  revoke->add_option("NAME", ro->name, "User name")->required();
  revoke->add_option("--device", ro->device, "Only this device (default: every device)")->type_name("ID");
  revoke->add_flag("--if-not-revoked", ro->if_not_revoked,
                   "Succeed without change (exit 0, \"already revoked\") if there is no active grant left to revoke");
  revoke->add_option("--reason", ro->reason, "Why, for the audit trail (1 to 1024 bytes of printable text)")
      ->required()
      ->type_name("TEXT");
}

void add_user_key(CLI::App& user, Context& ctx)
{
  auto ko = std::make_shared<UserKeyOptions>();
  auto* key = add_command(
      user, ctx, "key",
      "Print the user's key for a device, K_user(D, U, epoch); refused (exit 4) when the grant is revoked or "
      "expired",
      [&ctx, ko] {
        const auto format = ctx.json() ? fleet::KeyFormat::json : fleet::parse_key_format(ko->format);
        const auto encoding = json_key_encoding(format, ko->key_format);
        SecretOutput out(ko->output);
        auto& fleet = ctx.fleet();
        const auto k = fleet::export_user_key(fleet, ko->name, ko->device);
        fleet::KeyMeta meta{"user",       k.device.id,          k.grant.user,  k.grant.epoch,
                            std::nullopt, k.device.key_version, k.fingerprint, fleet.keyring().is_test_key()};
        meta.encoding = encoding;
        out.write(ctx, fleet::format_key(format, k.user_key, meta));
      });
  key->add_option("-o,--output", ko->output,
                  "Write the key to FILE instead of stdout: created 0600 under a temporary name and named once "
                  "complete; FILE must not exist (exit 4); - is stdout")
      ->type_name("FILE");
  key->add_option("NAME", ko->name, "User name")->required();
  key->add_option("--device", ko->device, "Device id")->required()->type_name("ID");
  key->add_option("--format", ko->format, "Output format")
      ->check(CLI::IsMember({"hex", "base64", "c", "psk", "json"}))
      ->capture_default_str();
  add_key_format_option(*key, ko->key_format);
}

} // namespace

void setup_user(CLI::App& app, Context& ctx)
{
  static constexpr Command k_commands[] = {
      {"add", add_user_add},     {"list", add_user_list},     {"show", add_user_show},
      {"grant", add_user_grant}, {"revoke", add_user_revoke}, {"key", add_user_key},
  };
  add_group(app, ctx, "user", "Manage users, their grants and their per-device keys", k_commands);
}

} // namespace fleetkey::cmd
