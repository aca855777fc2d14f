// fleetkey pair DEVICE | pair --all | pair --from FILE | pair decode CODE
//
// `decode` is a subcommand of `pair` and DEVICE a positional: a device literally named "decode"
// is reached with `fleetkey pair [OPTIONS] -- decode` (after "--" every argument is a positional,
// so options go before it).
#include "pair.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/fleet/pairing.hpp>
#include <fleetkey/fleet/qr.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <unistd.h>

namespace fleetkey::cmd {

namespace {

struct PairCliOptions
{
  std::optional<std::string> device;
  std::string scheme = "fleetkey";
  std::optional<std::string> qr;
  std::optional<std::string> out;
  int pin_digits = 8;
  bool rotate = false;
  std::string ec = "M";
  int scale = 8;
  std::optional<int> margin;
  fleet::MatterSettings matter;
  std::optional<std::string> passcode_file;
  bool all = false;
  std::optional<std::string> from;
  int jobs = 0;
  bool force = false;
  bool resume = false;
};

fleet::QrFormat qr_format(const PairCliOptions& o, bool batch)
{
  if (o.qr) {
    return fleet::parse_qr_format(*o.qr);
  }
  if (batch) {
    return fleet::QrFormat::png;
  }
  // -o label.png or label.svg says the format.
  const auto ends = [&](std::string_view ext) {
    return o.out && o.out->size() > ext.size() && o.out->compare(o.out->size() - ext.size(), ext.size(), ext) == 0;
  };
  return ends(".png") ? fleet::QrFormat::png : ends(".svg") ? fleet::QrFormat::svg : fleet::QrFormat::utf8;
}

// A production run (--all or --from FILE).
void run_pair_batch(Context& ctx, const PairCliOptions& o, const fleet::PairOptions& po,
                    const fleet::LabelOptions& label, util::Overwrite overwrite)
{
  if (o.device) {
    throw Error(Exit::usage, "give DEVICE, --all or --from FILE, not several");
  }
  if (o.all && o.from) {
    throw Error(Exit::usage, "--all and --from are exclusive");
  }
  if (o.rotate) {
    throw Error(Exit::usage, "--rotate works on one device at a time");
  }
  if (!o.out || *o.out == "-") {
    throw Error(Exit::usage, "a production run needs -o DIR");
  }
  fleet::BatchOptions bo{po, label, *o.out, o.from, o.jobs, overwrite};
  bo.resume = o.resume;
  const auto r = fleet::pair_batch(ctx.fleet(), bo);
  if (ctx.json()) {
    Json j{{"count", r.count}, {"dir", r.dir}, {"manifest", r.manifest}, {"scheme", o.scheme}};
    if (!r.matter_files.empty()) {
      j["iterations"] = r.iterations;
      j["matter_files"] = r.matter_files;
    }
    ctx.print_json(j);
  } else if (r.matter_files.empty()) {
    ctx.note(fmt::format("wrote {} labels and {}", r.count, r.manifest));
  } else {
    // "wrote 3 labels, DIR/manifest.csv, DIR/spake2p.csv, ... and DIR/esp-matter-master.csv"
    ctx.note(fmt::format("wrote {} labels, {}, {} and {}", r.count, r.manifest,
                         fmt::join(r.matter_files.begin(), r.matter_files.end() - 1, ", "), r.matter_files.back()));
  }
}

// What `pair DEVICE` prints: the code and payload (with --json, as an object), then the rendering.
void print_pairing(Context& ctx, const PairCliOptions& o, const fleet::PairResult& r)
{
  const auto& c = r.code;
  if (ctx.json()) {
    Json j{{"device", c.device}, {"scheme", o.scheme}, {"counter", c.counter}};
    if (c.matter) {
      j.update(matter_json(*c.matter));
      j["iterations"] = c.iterations;
      j["salt"] = util::to_base64(c.salt);
      j["verifier"] = std::string(fleet::verifier_base64(c).view());
      j["manual_code"] = c.manual_code;
      j["manual_code_grouped"] = c.grouped;
    } else {
      j["pin"] = c.code;
      j["pin_grouped"] = c.grouped;
      j["pin_digits"] = o.pin_digits;
    }
    j["payload"] = c.payload;
    j["file"] = r.file ? Json(*r.file) : Json(nullptr);
    ctx.print_json(j);
    return;
  }
  if (ctx.globals.quiet) {
    ctx.print(c.grouped + "\n");
  } else {
    ctx.print(fmt::format("device:        {}\n", c.device));
    ctx.print(fmt::format("counter:       {}\n", c.counter));
    if (c.matter) {
      print_matter(ctx, *c.matter);
      ctx.print(fmt::format("iterations:    {}\n", c.iterations));
      ctx.print(fmt::format("salt:          {}\n", util::to_base64(c.salt)));
      ctx.print("verifier:      ");
      ctx.print(fleet::verifier_base64(c).view());
      ctx.print("\n");
      ctx.print(fmt::format("manual code:   {}\n", c.grouped));
    } else {
      ctx.print(fmt::format("PIN:           {}\n", c.grouped));
    }
    ctx.print(fmt::format("payload:       {}\n", c.payload));
  }
  if (!r.rendering.empty()) {
    ctx.print(ctx.globals.quiet ? "" : "\n");
    ctx.print(r.rendering);
  }
  if (r.file) {
    ctx.note(fmt::format("wrote {}", *r.file));
  }
}

void run_pair(Context& ctx, const PairCliOptions& o)
{
  fleet::PairOptions po{fleet::parse_pair_scheme(o.scheme), o.pin_digits, o.matter};
  if (o.passcode_file) {
    po.matter.passcode = fleet::read_passcode_file(*o.passcode_file);
  }
  const bool batch = o.all || o.from;
  if (o.margin && *o.margin < 0) {
    throw Error(Exit::usage, "--margin {} is out of range (0-64)", *o.margin); // -1 is the default, never given
  }
  fleet::LabelOptions label{qr_format(o, batch), fleet::parse_qr_ec(o.ec), o.scale, o.margin.value_or(-1)};
  if ((!o.out || *o.out == "-") && ::isatty(STDOUT_FILENO) != 0 && colour_allowed()) {
    label.colors = fleet::QrColors::black_on_white; // the same code in a dark and a light terminal
  }
  const auto overwrite = o.force ? util::Overwrite::yes : util::Overwrite::no;
  if (o.resume && !batch) {
    throw Error(Exit::usage, "--resume completes a production run (--all or --from FILE)");
  }
  if (batch) {
    run_pair_batch(ctx, o, po, label, overwrite);
    return;
  }
  if (!o.device) {
    throw Error(Exit::usage, "pair needs DEVICE, --all or --from FILE (or: pair decode CODE)");
  }
  if (o.jobs != 0) {
    throw Error(Exit::usage, "--jobs is for production runs (--all or --from)");
  }
  const bool to_stdout = o.out && *o.out == "-"; // -o -: the rendering alone on stdout
  if (to_stdout && ctx.json()) {
    throw Error(Exit::usage, "-o - writes the QR rendering to stdout: not with --json");
  }
  if (!o.out || to_stdout) {
    ctx.commit_after_output(); // with -o, the file is the delivery, named only once the registry has it
  }
  const auto r = fleet::pair_device(ctx.fleet(), *o.device, po, label, o.out,
                                    o.rotate ? fleet::Rotate::yes : fleet::Rotate::no, overwrite);
  if (to_stdout) {
    ctx.print(r.rendering);
    return;
  }
  print_pairing(ctx, o, r);
}

void add_pair_options(CLI::App& pair, PairCliOptions& o)
{
  pair.add_option("DEVICE", o.device, "Device id (for a device named \"decode\": pair [OPTIONS] -- decode)");
  pair.add_option("--scheme", o.scheme, "Pairing scheme")
      ->check(CLI::IsMember({"fleetkey", "matter"}))
      ->capture_default_str();
  pair.add_option("--qr", o.qr,
                  "QR rendering: utf8 (half blocks), ansi (half blocks with colours), png, svg or none (default: "
                  "from -o's extension, else utf8; png for --all and --from)")
      ->check(CLI::IsMember({"utf8", "ansi", "png", "svg", "none"}));
  pair.add_option("-o,--output", o.out,
                  "Write the QR rendering to FILE, or with - to stdout alone (a production run: label files into DIR)")
      ->type_name("FILE|DIR");
  pair.add_option("--pin-digits", o.pin_digits, "PIN length before the check digit (6-12)")->capture_default_str();
  pair.add_flag("--rotate", o.rotate, "Issue a new code: add one to the device's pairing counter (audited)");
  pair.add_option("--ec", o.ec, "QR error correction level")
      ->check(CLI::IsMember({"L", "M", "Q", "H"}))
      ->capture_default_str();
  pair.add_option("--scale", o.scale, "Pixels per module for png and svg (1-64)")->capture_default_str();
  pair.add_option("--margin", o.margin, "Quiet zone in modules (default: 4 for png and svg, 2 in a terminal)");
  pair.add_option("--vendor-id", o.matter.vendor_id, "Matter vendor id (default: the device's vendor_id label)")
      ->type_name("N");
  pair.add_option("--product-id", o.matter.product_id, "Matter product id (default: the device's product_id label)")
      ->type_name("N");
  pair.add_option("--discriminator", o.matter.discriminator,
                  "Matter discriminator, 12 bits (default: the device's discriminator label, else derived from its "
                  "key)")
      ->type_name("N");
  pair.add_option("--passcode-file", o.passcode_file,
                  "Matter passcode for fixtures from the first line of FILE, which must not be accessible by group or "
                  "others (default: derived from the device key); invalid ones are refused")
      ->type_name("FILE");
  pair.add_option("--flow", o.matter.flow,
                  "Matter commissioning flow: 0 standard, 1 user-intent, 2 custom (1 and 2 give a 21-digit manual "
                  "code)")
      ->capture_default_str();
  pair.add_option("--discovery", o.matter.discovery,
                  "Matter discovery bitmask: 1 SoftAP, 2 BLE, 4 on-network, 8 Wi-Fi PAF")
      ->capture_default_str();
  pair.add_option("--iterations", o.matter.iterations,
                  fmt::format("PBKDF2 iterations of the Matter SPAKE2+ verifier, {}-{} (default: {})",
                              fleet::k_matter_min_iterations, fleet::k_matter_max_iterations,
                              fleet::k_matter_default_iterations))
      ->type_name("N");
  pair.add_flag("--all", o.all, "Production run: a label for every active device into -o DIR, with manifest.csv");
  pair.add_option("--from", o.from, "Production run: the devices listed in FILE, one id a line")->type_name("FILE");
  pair.add_option("--jobs", o.jobs, "Threads for a production run (default: one per core)")->type_name("N");
  pair.add_flag("--force", o.force, "Replace an existing -o FILE, or write into a non-empty -o DIR");
  pair.add_flag("--resume", o.resume,
                "Production run: complete a run into -o DIR that was cut off (killed, disk full): labels that hold "
                "what this run writes are kept untouched, the others written, the manifest written anew; "
                "safe to re-run");
}

} // namespace

void setup_pair(CLI::App& app, Context& ctx)
{
  auto* pair = app.add_subcommand(
      "pair",
      "Show a device's pairing code (PIN or Matter passcode) and its QR code, or write labels for many devices");
  auto o = std::make_shared<PairCliOptions>();
  auto* decode = add_pair_decode(*pair, ctx);

  // Not add_command: its callback must not replace the action `decode` set.
  pair->callback([&ctx, o, decode, pair] {
    if (!decode->parsed()) {
      ctx.action = [&ctx, o] { run_pair(ctx, *o); };
      return;
    }
    // `pair SN-1 --rotate decode CODE` would otherwise drop SN-1 and --rotate without a word.
    for (const CLI::Option* opt : pair->get_options()) {
      if (opt->count() > 0) {
        throw Error(Exit::usage, "pair decode takes none of pair's own arguments and options ({} given)",
                    opt->get_name());
      }
    }
  });
  add_pair_options(*pair, *o);
}

} // namespace fleetkey::cmd
