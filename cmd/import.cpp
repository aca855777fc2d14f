// fleetkey device import
#include "commands.hpp"

#include <fleetkey/fleet/import.hpp>

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <unistd.h>

namespace fleetkey::cmd {

namespace {

struct ImportOptions
{
  std::string source;
  std::optional<std::string> format;
  std::optional<std::string> keys_out;
  std::optional<std::string> keys_out_format;
  std::string key_format = "base64";
  bool skip_existing = false;
  std::string progress = "auto";
};

std::string with_commas(uint64_t n)
{
  std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) {
      out.push_back(',');
    }
    out.push_back(digits[i]);
  }
  return out;
}

// A one-line progress bar on stderr, redrawn at most ten times a second.
class ProgressBar
{
public:
  void update(const fleet::ImportProgress& p)
  {
    const auto now = std::chrono::steady_clock::now();
    const bool done = p.total > 0 && p.done >= p.total;
    if (!done && m_drawn && now - m_last < std::chrono::milliseconds(100)) {
      return;
    }
    m_last = now;
    m_drawn = true;
    const double frac = p.total > 0 ? static_cast<double>(p.done) / static_cast<double>(p.total) : 0.0;
    constexpr int k_width = 24;
    const int filled = static_cast<int>(frac * k_width);
    const std::string bar =
        std::string(static_cast<size_t>(filled), '#') + std::string(static_cast<size_t>(k_width - filled), '.');
    std::string line;
    if (p.phase == fleet::ImportProgress::Phase::validating) {
      line = p.total > 0 ? fmt::format("validating [{}] {:3.0f}%  {:.1f} MB", bar, frac * 100,
                                       static_cast<double>(p.done) / 1e6)
                         : fmt::format("validating {:.1f} MB", static_cast<double>(p.done) / 1e6);
    } else {
      const double rate = p.seconds > 0 ? static_cast<double>(p.done) / p.seconds : 0.0;
      const double eta = rate > 0 ? static_cast<double>(p.total - p.done) / rate : 0.0;
      line = fmt::format("importing  [{}] {:3.0f}%  {}/{}  {}/s  ETA {:.0f}s", bar, frac * 100, with_commas(p.done),
                         with_commas(p.total), with_commas(static_cast<uint64_t>(rate)), eta);
    }
    fmt::print(stderr, "\r\x1b[K{}", line);
    std::fflush(stderr);
  }

  ~ProgressBar()
  {
    if (m_drawn) {
      fmt::print(stderr, "\r\x1b[K");
      std::fflush(stderr);
    }
  }

private:
  std::chrono::steady_clock::time_point m_last;
  bool m_drawn = false;
};

// The library's options from the command line's.
fleet::ImportOptions import_options(const ImportOptions& o)
{
  fleet::ImportOptions opts;
  opts.source = o.source;
  if (o.format) {
    opts.format = fleet::parse_import_format(*o.format);
  }
  opts.keys_out = o.keys_out;
  if (o.keys_out_format) {
    opts.keys_out_format = fleet::parse_keys_out_format(*o.keys_out_format);
  }
  opts.key_encoding = fleet::parse_key_encoding(o.key_format);
  opts.skip_existing = o.skip_existing ? fleet::SkipExisting::yes : fleet::SkipExisting::no;
  return opts;
}

// The summary line (or JSON object), and with -v the time of each phase.
void print_import_summary(Context& ctx, const fleet::ImportSummary& s)
{
  const double rate = s.seconds > 0 ? static_cast<double>(s.imported) / s.seconds : 0.0;
  // --keys-out -: standard output holds the keys alone, the summary goes to standard error.
  const auto summary = [&ctx, to_stderr = s.keys_to_stdout](const std::string& text) {
    if (to_stderr) {
      std::fputs(text.c_str(), stderr);
    } else {
      ctx.print(text);
    }
  };
  if (ctx.json()) {
    summary(
        Json{{"rows", s.rows},
             {"imported", s.imported},
             {"skipped", s.skipped},
             {"key_version", s.key_version},
             {"ids_sha256", s.ids_sha256},
             {"keys_out", s.keys_out ? Json(*s.keys_out) : Json(nullptr)},
             {"seconds", s.seconds},
             {"rate", rate},
             {"phases", {{"validate", s.validate_seconds}, {"insert", s.insert_seconds}, {"commit", s.commit_seconds}}}}
            .dump(-1, ' ', false, Json::error_handler_t::replace)
        + "\n");
  } else if (!ctx.globals.quiet) {
    summary(fmt::format("imported {} devices, skipped {}, in {:.2f} s ({} devices/s)\n", s.imported, s.skipped,
                        s.seconds, static_cast<uint64_t>(rate)));
  }
  if (ctx.globals.verbose > 0) {
    fmt::print(stderr, "fleetkey: validate {:.3f} s, derive and insert {:.3f} s, commit {:.3f} s\n", s.validate_seconds,
               s.insert_seconds, s.commit_seconds);
  }
}

void run_device_import(Context& ctx, const ImportOptions& o)
{
  const auto opts = import_options(o);
  const bool show = o.progress == "always" || (o.progress == "auto" && ::isatty(STDERR_FILENO) != 0);
  std::optional<ProgressBar> bar;
  fleet::ProgressFn progress;
  if (show) {
    bar.emplace();
    progress = [&bar](const fleet::ImportProgress& p) { bar->update(p); };
  }
  const auto s = fleet::import_devices(ctx.fleet(), opts, progress);
  bar.reset();
  print_import_summary(ctx, s);
}

} // namespace

void setup_device_import(CLI::App& device, Context& ctx)
{
  auto o = std::make_shared<ImportOptions>();
  auto* sub = add_command(device, ctx, "import", "Register many devices at once from CSV or JSON Lines, all or nothing",
                          [&ctx, o] { run_device_import(ctx, *o); });
  sub->add_option("FILE", o->source, "CSV or JSON Lines file of devices (fleetkey-import(5)), or - for stdin")
      ->required();
  sub->add_option("--input-format", o->format, "Input format (default: from the file name; required for stdin)")
      ->check(CLI::IsMember({"csv", "jsonl", "ndjson"}));
  // The spelling before --format came to mean an output encoding (fleetkey(1), SCRIPTING): deprecated.
  sub->add_option("--format", o->format)->check(CLI::IsMember({"csv", "jsonl", "ndjson"}))->group("");
  sub->add_option("--keys-out", o->keys_out,
                  "Also write the imported devices' keys to FILE, created 0600 and named once the registry has "
                  "committed (never overwritten); or, after the commit, to - (stdout: the summary then goes to "
                  "stderr), a FIFO or /dev/fd/N, written in place")
      ->type_name("FILE");
  sub->add_option("--keys-out-format", o->keys_out_format,
                  "Keys file format: jsonl, csv, or nvs (ESP-IDF nvs_partition_gen.py CSV) (default: csv if FILE ends "
                  "in .csv, else jsonl)")
      ->check(CLI::IsMember({"jsonl", "csv", "nvs"}))
      ->type_name("FORMAT");
  sub->add_option("--key-format", o->key_format, "Encoding of the keys in the keys file")
      ->check(CLI::IsMember({"base64", "hex"}))
      ->capture_default_str();
  sub->add_flag("--skip-existing", o->skip_existing,
                "Skip ids that are already registered (and count them) instead of failing");
  sub->add_option("--progress", o->progress, "When to show a progress bar on stderr (auto: when stderr is a terminal)")
      ->check(CLI::IsMember({"auto", "always", "never"}))
      ->capture_default_str();
}

} // namespace fleetkey::cmd
