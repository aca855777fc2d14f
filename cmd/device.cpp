// fleetkey device add | list | show | revoke | key | state
#include "commands.hpp"
#include "render.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/fleet/devices.hpp>
#include <fleetkey/fleet/key_batch.hpp>
#include <fleetkey/fleet/keys.hpp>
#include <fleetkey/fleet/keys_sink.hpp>
#include <fleetkey/fleet/state.hpp>
#include <fleetkey/fleet/tokens.hpp>
#include <fleetkey/fleet/users.hpp>
#include <fleetkey/util/file.hpp>
#include <fleetkey/util/text.hpp>

#include <fmt/format.h>

#include <sys/stat.h>

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

struct DeviceStateOptions
{
  std::optional<std::string> id;
  bool all = false;
  std::optional<std::string> output;
  std::string format = "base64url";
  std::string max_age = "72h";
  std::optional<std::string> now;
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

// --now for fixtures: TIME as token mint takes it (ISO 8601, a date, or @UNIX).
int64_t state_now(const std::optional<std::string>& now)
{
  return parse_now(now).value_or(util::unix_now());
}

Json state_json(const fleet::StateDocument& s)
{
  Json users = Json::array();
  for (const auto& u : s.users) {
    users.push_back(Json{{"user", u.user}, {"uid", util::to_hex(u.uid)}, {"min_epoch", u.min_epoch}});
  }
  Json revoked = Json::array();
  for (const auto& id : s.revoked_ids) {
    revoked.push_back(util::to_hex(id));
  }
  return Json{{"device", s.device},
              {"kid", s.kid},
              {"seq", s.seq},
              {"iat", s.iat},
              {"exp", s.exp},
              {"issued", util::format_time(s.iat)},
              {"expires", util::format_time(s.exp)},
              {"status", s.revoked ? "revoked" : "active"},
              {"users", users},
              {"revoked", revoked},
              {"retired", s.retired},
              {"pairing", s.pairing},
              {"size", s.encoded.size()},
              {"test_key", s.test_key},
              {"document", util::to_base64url(s.encoded)}};
}

// The document in the chosen encoding, as written to stdout or a file.
std::string state_text(const fleet::StateDocument& s, std::string_view format)
{
  if (format == "raw") {
    return {reinterpret_cast<const char*>(s.encoded.data()), s.encoded.size()};
  }
  if (format == "c") {
    return fleet::state_c_array(s);
  }
  return util::to_base64url(s.encoded) + "\n";
}

std::string_view state_suffix(std::string_view format)
{
  return format == "raw" ? ".state" : format == "c" ? ".state.h" : ".state.b64";
}

void add_device_state(CLI::App& device, Context& ctx)
{
  auto so = std::make_shared<DeviceStateOptions>();
  auto* state = add_command(
      device, ctx, "state",
      "Issue the device's state document, which its lock checks with its own key: the device's status, each user's "
      "minimum key epoch, revoked token ids, retired master versions, the pairing counter, under a sequence number "
      "and an expiry (fleetkey-state(5)). Changes nothing in the registry",
      [&ctx, so] {
        // Every option is checked before anything is read or written.
        if (so->all == so->id.has_value()) {
          throw Error(Exit::usage, so->all ? "give either ID or --all, not both" : "give a device ID, or --all -o DIR");
        }
        if (so->all && (!so->output || *so->output == "-")) {
          throw Error(Exit::usage, "--all needs -o DIR");
        }
        const auto age = util::parse_duration(so->max_age);
        if (!age) {
          throw Error(Exit::usage, "--max-age: {}", age.error());
        }
        fleet::check_state_max_age(*age);
        const int64_t now = state_now(so->now);
        auto& fleet = ctx.fleet();
        if (!so->all) {
          if (so->output == "-") {
            so->output.reset(); // -o -: standard output, as without -o
          }
          const auto s = fleet::make_state(fleet, *so->id, now, *age);
          const std::string text = state_text(s, so->format);
          if (so->output) {
            util::AtomicFile file(*so->output, util::Overwrite::yes);
            file.write(text);
            file.commit();
          }
          if (ctx.json()) {
            Json j = state_json(s);
            if (so->output) {
              j["file"] = *so->output;
            }
            ctx.print_json(j);
          } else if (so->output) {
            ctx.note(fmt::format("wrote the state document of {} (seq {}, {} bytes, expires {}) to {}", s.device, s.seq,
                                 s.encoded.size(), util::format_time(s.exp), *so->output));
          } else {
            ctx.print(text);
          }
          return;
        }
        struct stat st
        {
        };
        if (::stat(so->output->c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
          throw Error(Exit::usage, "-o {}: not a directory (--all writes one file a device into an existing directory)",
                      *so->output);
        }
        fleet.keyring(); // a passphrase prompt before the first file, not between two
        uint64_t count = 0;
        fleet::for_each_state(fleet, now, *age, [&](const fleet::StateDocument& s) {
          const std::string path = *so->output + "/" + fleet::state_file_name(s.device, state_suffix(so->format));
          util::AtomicFile file(path, util::Overwrite::yes);
          file.write(state_text(s, so->format));
          file.commit();
          ++count;
          if (ctx.json()) {
            Json j = state_json(s);
            j.erase("document");
            j["file"] = path;
            ctx.print_json(j);
          }
        });
        ctx.note(fmt::format("wrote {} state document{} to {}", count, count == 1 ? "" : "s", *so->output));
      });
  state->add_option("ID", so->id, "Device id")->type_name("ID");
  state->add_flag("--all", so->all, "One document per registered device (revoked ones too), into -o DIR");
  state
      ->add_option("-o,--output", so->output,
                   "Write the document to FILE (replaced if it exists; - is stdout; with --all: into the existing "
                   "directory DIR, "
                   "one file a device, named ID.state, ID.state.b64 or ID.state.h by --format)")
      ->type_name("FILE|DIR");
  state
      ->add_option("--format", so->format,
                   "raw (the COSE_Mac0 bytes), base64url (unpadded, one line) or c (a C array for firmware)")
      ->check(CLI::IsMember({"raw", "base64url", "c"}))
      ->capture_default_str();
  state->add_option("--max-age", so->max_age, "How long the lock may rely on it: exp = iat + DURATION, 1s to 366d")
      ->type_name("DURATION")
      ->capture_default_str();
  state->add_option("--now", so->now, "Issue as of TIME (2026-11-22T00:12:17Z, 2026-11-22 or @UNIX) for fixtures")
      ->type_name("TIME");
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
