// fleetkey device state: the state document a device's lock checks with its own key
// (fleetkey-state(5)), for one device or, with --all, for every device into a directory.
#include "commands.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/fleet/state.hpp>
#include <fleetkey/util/file.hpp>
#include <fleetkey/util/text.hpp>

#include <fmt/format.h>

#include <sys/stat.h>

namespace fleetkey::cmd {

namespace {

struct DeviceStateOptions
{
  std::optional<std::string> id;
  bool all = false;
  std::optional<std::string> output;
  std::string format = "base64url";
  std::string max_age = "72h";
  std::optional<std::string> now;
};

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

// One device's document: on stdout, or written to -o FILE.
void write_state(Context& ctx, DeviceStateOptions& so, int64_t now, int64_t max_age)
{
  if (so.output == "-") {
    so.output.reset(); // -o -: standard output, as without -o
  }
  const auto s = fleet::make_state(ctx.fleet(), *so.id, now, max_age);
  const std::string text = state_text(s, so.format);
  if (so.output) {
    util::AtomicFile file(*so.output, util::Overwrite::yes);
    file.write(text);
    file.commit();
  }
  if (ctx.json()) {
    Json j = state_json(s);
    if (so.output) {
      j["file"] = *so.output;
    }
    ctx.print_json(j);
  } else if (so.output) {
    ctx.note(fmt::format("wrote the state document of {} (seq {}, {} bytes, expires {}) to {}", s.device, s.seq,
                         s.encoded.size(), util::format_time(s.exp), *so.output));
  } else {
    ctx.print(text);
  }
}

// --all -o DIR: one file a device into the existing directory DIR.
void write_all_states(Context& ctx, const DeviceStateOptions& so, int64_t now, int64_t max_age)
{
  auto& fleet = ctx.fleet();
  struct stat st
  {
  };
  if (::stat(so.output->c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw Error(Exit::usage, "-o {}: not a directory (--all writes one file a device into an existing directory)",
                *so.output);
  }
  fleet.keyring(); // a passphrase prompt before the first file, not between two
  uint64_t count = 0;
  fleet::for_each_state(fleet, now, max_age, [&](const fleet::StateDocument& s) {
    const std::string path = *so.output + "/" + fleet::state_file_name(s.device, state_suffix(so.format));
    util::AtomicFile file(path, util::Overwrite::yes);
    file.write(state_text(s, so.format));
    file.commit();
    ++count;
    if (ctx.json()) {
      Json j = state_json(s);
      j.erase("document");
      j["file"] = path;
      ctx.print_json(j);
    }
  });
  ctx.note(fmt::format("wrote {} state document{} to {}", count, count == 1 ? "" : "s", *so.output));
}

void run_device_state(Context& ctx, DeviceStateOptions& so)
{
  // Every option is checked before anything is read or written.
  if (so.all == so.id.has_value()) {
    throw Error(Exit::usage, so.all ? "give either ID or --all, not both" : "give a device ID, or --all -o DIR");
  }
  if (so.all && (!so.output || *so.output == "-")) {
    throw Error(Exit::usage, "--all needs -o DIR");
  }
  const auto age = util::parse_duration(so.max_age);
  if (!age) {
    throw Error(Exit::usage, "--max-age: {}", age.error());
  }
  fleet::check_state_max_age(*age);
  const int64_t now = state_now(so.now);
  if (so.all) {
    write_all_states(ctx, so, now, *age);
  } else {
    write_state(ctx, so, now, *age);
  }
}

} // namespace

void add_device_state(CLI::App& device, Context& ctx)
{
  auto so = std::make_shared<DeviceStateOptions>();
  auto* state = add_command(
      device, ctx, "state",
      "Issue the device's state document, which its lock checks with its own key: the device's status, each user's "
      "minimum key epoch, revoked token ids, retired master versions, the pairing counter, under a sequence number "
      "and an expiry (fleetkey-state(5)). Changes nothing in the registry",
      [&ctx, so] { run_device_state(ctx, *so); });
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

} // namespace fleetkey::cmd
