// fleetkey device add | list | show | revoke | key (device import: import.cpp; device state: device_state.cpp)
#include "commands.hpp"
#include "render.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/fleet/devices.hpp>
#include <fleetkey/fleet/key_batch.hpp>
#include <fleetkey/fleet/keys.hpp>
#include <fleetkey/fleet/keys_sink.hpp>
#include <fleetkey/fleet/tokens.hpp>
#include <fleetkey/fleet/users.hpp>
#include <fleetkey/util/file.hpp>
#include <fleetkey/util/text.hpp>

#include <fmt/format.h>

namespace fleetkey::cmd {

namespace {

struct DeviceAddOptions
{
  std::string id;
  std::optional<std::string> model;
  std::vector<std::string> labels;
  bool if_missing = false;
};

struct DeviceKeyOptions
{
  std::optional<std::string> id;
  std::string format = "hex";
  std::optional<std::string> purpose;
  std::optional<std::string> output;
  std::optional<std::string> key_format;
  std::optional<std::string> from;
  const CLI::Option* format_option = nullptr;
};

struct DeviceRevokeOptions
{
  std::string id;
  std::string reason;
  bool if_not_revoked = false;
};

void print_device(Context& ctx, const fleet::Device& d)
{
  ctx.print(fmt::format("id:           {}\n", d.id));
  ctx.print(fmt::format("model:        {}\n", d.model.value_or("-")));
  ctx.print(fmt::format("labels:       {}\n", labels_text(d.labels)));
  ctx.print(fmt::format("status:       {}\n", d.status));
  ctx.print(fmt::format("key version:  {}\n", d.key_version));
  ctx.print(fmt::format("fingerprint:  {}\n", d.fingerprint));
  ctx.print(fmt::format("created:      {}\n", d.created));
  if (d.revoked) {
    ctx.print(fmt::format("revoked:      {} ({})\n", *d.revoked, d.revoke_reason.value_or("")));
  }
}

void add_device_add(CLI::App& device, Context& ctx)
{
  auto ao = std::make_shared<DeviceAddOptions>();
  auto* add = add_command(device, ctx, "add", "Register a device and derive its key K_dev(ID)", [&ctx, ao] {
    ctx.commit_after_output();
    const auto r = fleet::add_device(ctx.fleet(), {ao->id, ao->model, fleet::parse_labels(ao->labels)},
                                     ao->if_missing ? fleet::IfMissing::yes : fleet::IfMissing::no);
    if (ctx.json()) {
      Json j = to_json(r.device);
      j["added"] = r.added;
      ctx.print_json(j);
    } else if (r.added) {
      ctx.note(fmt::format("registered device {} (master key v{}, fingerprint {})", r.device.id, r.device.key_version,
                           r.device.fingerprint));
    } else {
      ctx.note(fmt::format("device {} is already registered", r.device.id));
    }
  });
  add->add_option("ID", ao->id, "Device id: 1-128 bytes of printable UTF-8, e.g. a serial number")->required();
  add->add_option("--model", ao->model, "Device model")->type_name("MODEL");
  add->add_option("--label", ao->labels, "Label KEY=VALUE")->type_name("K=V");
  add->add_flag("--if-missing", ao->if_missing, "Succeed without change if the device is already registered");
}

void add_device_list(CLI::App& device, Context& ctx)
{
  auto status = std::make_shared<std::string>();
  auto* list = add_command(device, ctx, "list", "List devices, streaming, in id order", [&ctx, status] {
    ctx.fleet().registry(); // fail before printing anything
    if (!ctx.json()) {
      ctx.print(fmt::format("{:<24} {:<16} {:<8} {:<4} {}\n", "ID", "MODEL", "STATUS", "KEY", "CREATED"));
    }
    fleet::list_devices(ctx.fleet(), *status, [&ctx](const fleet::Device& d) {
      if (ctx.json()) {
        ctx.print_json(to_json(d));
      } else {
        ctx.print(fmt::format("{:<24} {:<16} {:<8} v{:<3} {}\n", d.id, d.model.value_or("-"), d.status, d.key_version,
                              d.created));
      }
    });
  });
  list->add_option("--status", *status, "Only devices with this status")->check(CLI::IsMember({"active", "revoked"}));
}

void add_device_show(CLI::App& device, Context& ctx)
{
  auto show_id = std::make_shared<std::string>();
  auto* show =
      add_command(device, ctx, "show", "Show one device and the grants on it: who can open it", [&ctx, show_id] {
        const auto details = fleet::device_details(ctx.fleet(), *show_id);
        const auto& d = details.device;
        const auto& grants = details.grants;
        const auto seq = details.state_seq;
        if (ctx.json()) {
          Json j = to_json(d);
          j["state_seq"] = seq;
          j["grants"] = Json::array();
          for (const auto& g : grants) {
            j["grants"].push_back(to_json(g));
          }
          ctx.print_json(j);
          return;
        }
        print_device(ctx, d);
        ctx.print(fmt::format("state seq:    {}\ngrants:       {}\n", seq, grants.size()));
        const int64_t now = util::unix_now();
        for (const auto& g : grants) {
          ctx.print(fmt::format("  {:<24} role {:<12} epoch {:<4} {:<8} expires {}\n", g.user, g.role, g.epoch,
                                fleet::grant_status(g, now), g.expires.value_or("never")));
        }
      });
  show->add_option("ID", *show_id, "Device id")->required();
}

void add_device_revoke(CLI::App& device, Context& ctx)
{
  auto ro = std::make_shared<DeviceRevokeOptions>();
  auto* revoke =
      add_command(device, ctx, "revoke", "Revoke a device: no more keys, grants or tokens for it", [&ctx, ro] {
        std::optional<fleet::Device> d;
        try {
          d = fleet::revoke_device(ctx.fleet(), ro->id, ro->reason);
        } catch (const Error& e) {
          if (!ro->if_not_revoked || !e.has_reason("already_revoked")) {
            throw;
          }
        }
        const bool already = !d;
        if (already) {
          d = fleet::show_device(ctx.fleet(), ro->id);
        }
        if (ctx.json()) {
          Json j = to_json(*d);
          if (ro->if_not_revoked) {
            j["already_revoked"] = already;
          }
          ctx.print_json(j);
        } else {
          ctx.note(already ? fmt::format("device {} is already revoked", d->id)
                           : fmt::format("revoked device {}", d->id));
        }
      });
  revoke->add_option("ID", ro->id, "Device id")->required();
  revoke->add_flag("--if-not-revoked", ro->if_not_revoked,
                   "Succeed without change (exit 0, \"already revoked\") if the device is already revoked");
  revoke->add_option("--reason", ro->reason, "Why, for the audit trail (1 to 1024 bytes of printable text)")
      ->required()
      ->type_name("TEXT");
}

// device key --from FILE|-: JSON Lines of many devices' keys, all checked before any is derived.
void run_device_keys_from(Context& ctx, const DeviceKeyOptions& ko)
{
  if (ko.id) {
    throw Error(Exit::usage, "give a device ID or --from FILE, not both");
  }
  if (ko.format_option->count() > 0 && ko.format != "json") {
    throw Error(Exit::usage, "--from prints JSON Lines (--format json) only");
  }
  const auto encoding = json_key_encoding(fleet::KeyFormat::json, ko.key_format);
  if (ko.purpose) {
    fleet::validate_purpose(*ko.purpose);
  }
  if (ko.output) {
    fleet::KeysSink::check(*ko.output);
  }
  auto& fleet = ctx.fleet();
  const auto devices = fleet::read_device_list(fleet, *ko.from);
  const bool test_key = fleet.keyring().is_test_key();
  // Standard output is written once every key is derived and the export recorded; a file is created
  // 0600 and named then, as --keys-out's.
  fleet::KeysSink out(ko.output.value_or("-"));
  fleet::export_device_keys(fleet, *ko.from == "-" ? std::string_view("stdin") : std::string_view(*ko.from), devices,
                            ko.purpose, [&](const fleet::Device& d, const crypto::Secret& key, const std::string& fp) {
                              fleet::KeyMeta meta{"device",   d.id,          std::nullopt, std::nullopt,
                                                  ko.purpose, d.key_version, fp,           test_key};
                              meta.encoding = encoding;
                              const auto line = fleet::format_key(fleet::KeyFormat::json, key, meta);
                              out.write(std::string_view(reinterpret_cast<const char*>(line.data()), line.size()));
                            });
  std::fflush(stdout);
  out.commit();
}

void add_device_key(CLI::App& device, Context& ctx)
{
  auto ko = std::make_shared<DeviceKeyOptions>();
  auto* key =
      add_command(device, ctx, "key", "Print the device's key (or a purpose subkey) and nothing else", [&ctx, ko] {
        if (ko->from) {
          run_device_keys_from(ctx, *ko);
          return;
        }
        if (!ko->id) {
          throw Error(Exit::usage, "give a device ID, or --from FILE");
        }
        const auto format = ctx.json() ? fleet::KeyFormat::json : fleet::parse_key_format(ko->format);
        const auto encoding = json_key_encoding(format, ko->key_format);
        SecretOutput out(ko->output);
        auto& fleet = ctx.fleet();
        const auto k = fleet::export_device_key(fleet, *ko->id, ko->purpose);
        fleet::KeyMeta meta{"device",    k.device.id,          std::nullopt,  std::nullopt,
                            ko->purpose, k.device.key_version, k.fingerprint, fleet.keyring().is_test_key()};
        meta.encoding = encoding;
        out.write(ctx, fleet::format_key(format, k.key, meta));
      });
  key->add_option("-o,--output", ko->output,
                  "Write the key to FILE instead of stdout: created 0600 under a temporary name and named once "
                  "complete; FILE must not exist (exit 4); - is stdout")
      ->type_name("FILE");
  key->add_option("ID", ko->id, "Device id (or --from)")->type_name("ID");
  ko->format_option = key->add_option("--format", ko->format, "Output format")
                          ->check(CLI::IsMember({"hex", "base64", "c", "psk", "json"}))
                          ->capture_default_str();
  key->add_option(
         "--purpose", ko->purpose,
         "Derive the subkey for NAME (e.g. enc, mac) instead of K_dev; NAME is 1-32 characters of a-z 0-9 _ . -")
      ->type_name("NAME");
  add_key_format_option(*key, ko->key_format);
  key->add_option("--from", ko->from,
                  "The keys of the devices listed in FILE (or - for stdin), one id a line, as JSON Lines (--format "
                  "json), in one unlock and batched derivation; every id is checked first (an unknown, revoked or "
                  "repeated id fails naming its line, and nothing is printed)")
      ->type_name("FILE");
}

} // namespace

void setup_device(CLI::App& app, Context& ctx)
{
  static constexpr Command k_commands[] = {
      {"add", add_device_add},     {"import", setup_device_import}, {"list", add_device_list},
      {"show", add_device_show},   {"revoke", add_device_revoke},   {"key", add_device_key},
      {"state", add_device_state},
  };
  add_group(app, ctx, "device", "Register devices and derive their keys", k_commands);
}

} // namespace fleetkey::cmd
