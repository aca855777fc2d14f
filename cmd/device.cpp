// fleetkey device add | list | show | revoke | key
#include "commands.hpp"
#include "render.hpp"

#include <fleetkey/fleet/devices.hpp>
#include <fleetkey/fleet/keys.hpp>

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
  std::string id;
  std::string format = "hex";
  std::optional<std::string> purpose;
};

struct DeviceRevokeOptions
{
  std::string id;
  std::string reason;
};

void print_device(Context& ctx, const registry::DeviceRecord& d)
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
    fleet::list_devices(ctx.fleet(), *status, [&ctx](const registry::DeviceRecord& d) {
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
  auto* show = add_command(device, ctx, "show", "Show one device", [&ctx, show_id] {
    const auto d = fleet::show_device(ctx.fleet(), *show_id);
    ctx.json() ? ctx.print_json(to_json(d)) : print_device(ctx, d);
  });
  show->add_option("ID", *show_id, "Device id")->required();
}

void add_device_revoke(CLI::App& device, Context& ctx)
{
  auto ro = std::make_shared<DeviceRevokeOptions>();
  auto* revoke =
      add_command(device, ctx, "revoke", "Revoke a device: no more keys, grants or tokens for it", [&ctx, ro] {
        const auto d = fleet::revoke_device(ctx.fleet(), ro->id, ro->reason);
        if (ctx.json()) {
          ctx.print_json(to_json(d));
        } else {
          ctx.note(fmt::format("revoked device {}", d.id));
        }
      });
  revoke->add_option("ID", ro->id, "Device id")->required();
  revoke->add_option("--reason", ro->reason, "Why, for the audit trail (1 to 1024 bytes of printable text)")
      ->required()
      ->type_name("TEXT");
}

void add_device_key(CLI::App& device, Context& ctx)
{
  auto ko = std::make_shared<DeviceKeyOptions>();
  auto* key =
      add_command(device, ctx, "key", "Print the device's key (or a purpose subkey) and nothing else", [&ctx, ko] {
        const auto format = ctx.json() ? fleet::KeyFormat::json : fleet::parse_key_format(ko->format);
        auto& fleet = ctx.fleet();
        const auto k = fleet::export_device_key(fleet, ko->id, ko->purpose);
        fleet::KeyMeta meta{"device",    k.device.id,          std::nullopt,  std::nullopt,
                            ko->purpose, k.device.key_version, k.fingerprint, fleet.keyring().is_test_key()};
        ctx.write_secret(fleet::format_key(format, k.key, meta));
      });
  key->add_option("ID", ko->id, "Device id")->required();
  key->add_option("--format", ko->format, "Output format")
      ->check(CLI::IsMember({"hex", "base64", "c", "psk", "json"}))
      ->capture_default_str();
  key->add_option(
         "--purpose", ko->purpose,
         "Derive the subkey for NAME (e.g. enc, mac) instead of K_dev; NAME is 1-32 characters of a-z 0-9 _ . -")
      ->type_name("NAME");
}

} // namespace

void setup_device(CLI::App& app, Context& ctx)
{
  static constexpr Command k_commands[] = {
      {"add", add_device_add},   {"import", setup_device_import}, {"list", add_device_list},
      {"show", add_device_show}, {"revoke", add_device_revoke},   {"key", add_device_key},
  };
  add_group(app, ctx, "device", "Register devices and derive their keys", k_commands);
}

} // namespace fleetkey::cmd
