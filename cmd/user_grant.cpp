// fleetkey user grant: a user's role on one or several devices, and the credential bundle (user key
// and token) delivered on stdout, to a file or as a QR code.
#include "commands.hpp"
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

struct GrantOptions
{
  std::string name;
  std::vector<std::string> devices;
  std::optional<std::string> devices_from;
  std::string role;
  std::optional<std::string> ttl;
  std::optional<std::string> qr;
  std::optional<std::string> output;
  bool keep_epoch = false;
  std::optional<std::string> now;
};

// The devices of user grant: every --device, then --devices-from's (FILE, or - for stdin: one id a line;
// blank lines and lines starting with # are skipped). Each once; at least one.
std::vector<std::string> grant_devices(const GrantOptions& o)
{
  std::vector<std::string> out = o.devices;
  if (o.devices_from) {
    auto text = util::read_file(*o.devices_from == "-" ? std::string("/dev/stdin") : *o.devices_from, 64u << 20);
    if (!text) {
      throw Error(Exit::usage, "--devices-from: {}", text.error());
    }
    std::string_view rest = *text;
    while (!rest.empty()) {
      const size_t nl = rest.find('\n');
      std::string_view line = rest.substr(0, nl);
      rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
      if (!line.empty() && line.back() == '\r') {
        line.remove_suffix(1);
      }
      if (!line.empty() && line.front() != '#') {
        out.emplace_back(line);
      }
    }
  }
  if (out.empty()) {
    throw Error(Exit::usage, "user grant needs --device ID or --devices-from FILE (with at least one id)");
  }
  std::vector<std::string_view> seen(out.begin(), out.end());
  std::sort(seen.begin(), seen.end());
  if (const auto dup = std::adjacent_find(seen.begin(), seen.end()); dup != seen.end()) {
    throw Error(Exit::usage, "device {} is named twice", one_line(*dup));
  }
  return out;
}

// What `user grant` prints once the grant is committed (unless the QR code went to stdout).
// The human output of one grant: its summary, with the user key unless it went to a file.
void print_grant_summary(const Context& ctx, const fleet::GrantBundle& b, bool with_key)
{
  const auto& g = b.grant;
  fleet::KeyMeta meta{"user",       g.device.id,          g.grant.user,  g.grant.epoch,
                      std::nullopt, g.device.key_version, g.fingerprint, b.test_key};
  ctx.print(fmt::format("user:         {}\ndevice:       {}\nrole:         {}\nepoch:        {}\nexpires:      {}\n",
                        g.grant.user, g.grant.device, g.grant.role, g.grant.epoch, g.grant.expires.value_or("never")));
  if (with_key) {
    ctx.print("user key:     ");
    ctx.write_secret(fleet::format_key(fleet::KeyFormat::base64, g.user_key, meta));
  }
  ctx.print(fmt::format("fingerprint:  {}\ntoken:        {}\ntoken id:     {}\n", g.fingerprint, b.token.text,
                        b.token.token_id));
}

void print_grant(Context& ctx, const GrantOptions& go, const fleet::GrantBundle& b, const crypto::Secret& bundle,
                 bool qr)
{
  const auto& g = b.grant;
  if (ctx.json() && go.output) {
    // The file is the delivery: stdout gets the bundle's members but the user key, and the file.
    ctx.print_json({{"type", "fleetkey-grant"},
                    {"version", 1},
                    {"user", g.grant.user},
                    {"device", g.device.id},
                    {"role", g.grant.role},
                    {"epoch", g.grant.epoch},
                    {"key_version", g.device.key_version},
                    {"expires", g.grant.expires ? Json(*g.grant.expires) : Json(nullptr)},
                    {"fingerprint", g.fingerprint},
                    {"test_key", b.test_key},
                    {"token", b.token.text},
                    {"token_id", b.token.token_id},
                    {"file", *go.output}});
    return;
  }
  if (ctx.json()) {
    ctx.write_secret(bundle);
    ctx.print("\n");
    return;
  }
  print_grant_summary(ctx, b, !go.output); // with -o, the key is in the file only
  if (go.output) {
    ctx.note(fmt::format("wrote {} to {}", qr ? "the QR code" : "the bundle", *go.output));
  }
  if (g.kept) {
    ctx.note(fmt::format("kept the active grant (epoch {}): only the token is new", g.grant.epoch));
  }
}

// user grant on several devices: one transaction, committed once every bundle is printed (a device that
// fails fails the command, and nothing is granted); nothing is printed before all are made.
void grant_many(Context& ctx, const GrantOptions& go, const std::vector<std::string>& devices,
                std::optional<int64_t> ttl, fleet::KeepEpoch keep, std::optional<int64_t> now)
{
  if (go.output || go.qr) {
    throw fleetkey::Error(Exit::usage, "-o and --qr deliver one bundle: give one device");
  }
  auto& fleet = ctx.fleet();
  ctx.commit_after_output();
  std::vector<fleet::GrantBundle> made;
  for (const auto& device : devices) {
    made.push_back(fleet::grant_with_token(fleet, go.name, device, go.role, ttl, {}, keep, now));
  }
  for (size_t i = 0; i < made.size(); ++i) {
    if (ctx.json()) {
      ctx.write_secret(fleet::bundle_json(made[i])); // JSON Lines: one bundle a device
      ctx.print("\n");
      continue;
    }
    ctx.print(i > 0 ? "\n" : "");
    print_grant_summary(ctx, made[i], true);
    if (made[i].grant.kept) {
      ctx.note(fmt::format("kept the active grant (epoch {}): only the token is new", made[i].grant.grant.epoch));
    }
  }
}

// `user grant`: the grant and its bundle, written to -o FILE or stdout.
void run_user_grant(Context& ctx, GrantOptions go)
{
  std::optional<int64_t> ttl = fleet::k_default_grant_ttl;
  if (go.ttl && *go.ttl == "never") {
    ttl = std::nullopt;
  } else if (go.ttl) {
    auto d = util::parse_duration(*go.ttl);
    if (!d) {
      throw fleetkey::Error(Exit::usage, "--ttl: {}", d.error());
    }
    ttl = *d;
  }
  const auto now = parse_now(go.now);
  const auto devices = grant_devices(go);
  const auto keep = go.keep_epoch ? fleet::KeepEpoch::yes : fleet::KeepEpoch::no;
  if (devices.size() > 1) {
    grant_many(ctx, go, devices, ttl, keep, now);
    return;
  }
  const std::string& device = devices.front();
  const auto qr_mode = go.qr ? std::optional(fleet::parse_qr_mode(*go.qr)) : std::nullopt;
  // -o -: the bundle (or its QR code, png included) alone on stdout, as -o FILE would hold it.
  const bool to_stdout = go.output == "-";
  if (to_stdout) {
    if (ctx.json()) {
      throw fleetkey::Error(Exit::usage, "-o - writes the bundle (or its QR code) to stdout: not with --json");
    }
    go.output.reset();
  }
  // Checked before anything is recorded, so that bad options change nothing.
  if (qr_mode && !go.output && !to_stdout && (ctx.json() || *qr_mode == fleet::QrMode::png)) {
    throw fleetkey::Error(Exit::usage, "--qr {} needs -o FILE{}", *go.qr, ctx.json() ? " with --json" : "");
  }
  auto& fleet = ctx.fleet();
  if (!go.output) {
    ctx.commit_after_output(); // with -o, the file is the delivery, named once the grant is committed
  }
  fleet::GrantDelivery delivery{go.output, qr_mode, fleet::QrColors::none};
  if (qr_mode && !go.output && ::isatty(STDOUT_FILENO) != 0 && colour_allowed()) {
    // On a terminal, explicit colours: the same code in a dark and a light terminal.
    delivery.colors = fleet::QrColors::black_on_white;
  }
  if (qr_mode) {
    delivery.fit_columns = terminal_columns(); // --qr utf8 is drawn to fit the terminal
  }
  const auto delivered = fleet::grant_and_deliver(fleet, go.name, device, go.role, ttl, keep, now, delivery);
  if (delivered.qr) {
    ctx.write_secret(*delivered.qr);
    return;
  }
  if (to_stdout) {
    ctx.write_secret(delivered.json);
    ctx.print("\n");
    return;
  }
  print_grant(ctx, go, delivered.bundle, delivered.json, qr_mode.has_value());
}

} // namespace

void add_user_grant(CLI::App& user, Context& ctx)
{
  auto go = std::make_shared<GrantOptions>();
  auto* grant =
      add_command(user, ctx, "grant",
                  "Grant a user a role on a device and print their credential bundle: the user key and a "
                  "token for the device. Granting a user who already has an active grant on the device replaces it: "
                  "the key epoch goes up by one, so the previous user key and every token of the old grant stop "
                  "working, and the new grant has only the new --role and --ttl",
                  [&ctx, go] { run_user_grant(ctx, *go); });
  grant->add_option("NAME", go->name, "User name")->required();
  grant
      ->add_option("--device", go->devices,
                   "Device id; repeat it (or use --devices-from) to grant the user on several devices in one "
                   "transaction: all or nothing, one bundle per device (with --json, one line each)")
      ->type_name("ID");
  grant
      ->add_option("--devices-from", go->devices_from,
                   "Also the devices listed in FILE, - for stdin: one id a line, blank lines and # comments skipped")
      ->type_name("FILE");
  grant->add_option("--role", go->role, "Role, e.g. owner, guest, service")->required()->type_name("ROLE");
  grant
      ->add_option("--ttl", go->ttl,
                   "Grant lifetime, 1s to 10 years, e.g. 90s, 12h, 30d, 1w2d, or never for no expiry (default: 30d); "
                   "also the token's. An expired grant's key and tokens are refused until the user is granted again")
      ->type_name("DURATION");
  grant
      ->add_option(
          "--qr", go->qr,
          "Also render the bundle as a QR code for the phone: utf8 (terminal: half blocks, made to fit its width, see "
          "SCRIPTING in fleetkey(1)), png or svg; png (and any "
          "mode with --json) needs -o")
      ->check(CLI::IsMember({"utf8", "png", "svg"}));
  grant
      ->add_option("-o,--output", go->output,
                   "Write the QR code (or, without --qr, the bundle JSON) to FILE, created 0600; stdout keeps the "
                   "summary without the user key (with --json: the bundle's members but user_key, and \"file\"). "
                   "FILE must not exist; if it cannot be written, nothing is granted. - is stdout: the bundle or "
                   "QR code alone (png included; not with --json)")
      ->type_name("FILE");
  grant->add_flag("--keep-epoch", go->keep_epoch,
                  "If the user's grant on the device is active, unexpired and for the same --role, keep it as it is "
                  "(same epoch, user key and expiry; --ttl is not applied) and print it with a new token; else "
                  "grant as without it. Safe to re-run");
  grant
      ->add_option("--now", go->now,
                   "Grant as of TIME (2026-11-22T00:12:17Z, 2026-11-22 or @UNIX): created, expires and the token's "
                   "iat and exp, for reproducible fixtures")
      ->type_name("TIME");
}

} // namespace fleetkey::cmd
