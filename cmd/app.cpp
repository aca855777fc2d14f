#include "commands.hpp"
#include "terminal.hpp"

#include <algorithm>
#include <stdexcept>

namespace fleetkey::cmd {

namespace {

// Explicit on purpose: self-registering objects can be dropped by the linker from static libraries.
constexpr Command k_command_groups[] = {
    {"init", setup_init},           {"master", setup_master},
    {"device", setup_device},       {"user", setup_user},
    {"token", setup_token},         {"pair", setup_pair},
    {"audit", setup_audit},         {"agent", setup_agent},
    {"registry", setup_registry},   {"completion", setup_completion},
    {"__complete", setup_complete},
};

// The global options that take a value (in build_app below).
constexpr std::string_view k_global_valued[] = {"--home", "--registry", "--master-key", "--passphrase-file",
                                                "--pin-file"};
constexpr std::string_view k_global_flags[] = {"--json", "--json-errors", "-q", "--quiet", "-v", "--verbose"};

bool is_one_of(std::string_view arg, std::span<const std::string_view> names)
{
  return std::find(names.begin(), names.end(), arg) != names.end();
}

// The command group the arguments name, found as CLI11 will find it: the first argument that is
// neither a global option nor its value; and the argument after it, which may name one of the
// group's commands. No group when in doubt (anything unusual, help, version), and then every group
// is built.
struct Named
{
  const Command* group = nullptr;
  std::string_view command;
};

Named named_group(std::span<char* const> args)
{
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string_view arg = args[i];
    if (is_one_of(arg, k_global_valued)) {
      ++i;
      continue;
    }
    const size_t eq = arg.find('=');
    if ((eq != std::string_view::npos && is_one_of(arg.substr(0, eq), k_global_valued))
        || is_one_of(arg, k_global_flags)) {
      continue;
    }
    for (const auto& g : k_command_groups) {
      if (arg == g.name) {
        return {&g, i + 1 < args.size() ? std::string_view(args[i + 1]) : std::string_view()};
      }
    }
    return {};
  }
  return {};
}

// named_group() must know each global option and whether it takes a value. One it does not know
// only costs speed (every group is built), but a flag it took for a valued option would make it
// skip a group name. Checked on every full build (help, version, the docs), so tests catch drift.
void check_globals_known(const CLI::App& app)
{
  for (const CLI::Option* opt : app.get_options()) {
    const bool flag = opt->get_expected_max() == 0; // as fleetkey-gendocs tells flags from options
    auto check = [&](const std::string& name) {
      if (name == "-h" || name == "--help" || name == "--version") {
        return;
      }
      if (!is_one_of(name, flag ? std::span<const std::string_view>(k_global_flags)
                                : std::span<const std::string_view>(k_global_valued))) {
        throw std::logic_error("cmd/app.cpp: add global option " + name + " to k_global_"
                               + (flag ? "flags" : "valued"));
      }
    };
    for (const auto& n : opt->get_lnames()) {
      check("--" + n);
    }
    for (const auto& n : opt->get_snames()) {
      check("-" + n);
    }
  }
}

} // namespace

std::unique_ptr<CLI::App> build_app(Context& ctx, std::span<char* const> args)
{
  auto app = std::make_unique<CLI::App>(
      "fleetkey provisions keys for fleets of small devices and their users: one master key, per-device and per-user "
      "keys derived with HKDF, HMAC-bound role tokens, pairing codes and an SQLite registry.",
      "fleetkey");
  app->set_version_flag("--version", std::string("fleetkey ") + FLEETKEY_VERSION, "Print the version and exit");
  app->set_help_flag("-h,--help", "Print this help and exit");
  // Before any command is added: each inherits its parent's formatter.
  app->formatter(wrapping_formatter(terminal_columns()));
  app->require_subcommand(1);
  app->fallthrough();
  auto& g = ctx.globals;
  app->option_defaults()->group("Global options");
  app->add_option("--home", g.home,
                  "Directory of the registry and master key (default: $FLEETKEY_HOME, "
                  "$XDG_DATA_HOME/fleetkey, ~/.local/share/fleetkey)")
      ->type_name("DIR");
  app->add_option("--registry", g.registry,
                  "Registry: an SQLite file (default: HOME/registry.db, $FLEETKEY_REGISTRY), or a PostgreSQL "
                  "postgresql:// URI or service=NAME")
      ->type_name("FILE");
  app->add_option("--master-key", g.master_key, "Master key file (default: HOME/master.key, $FLEETKEY_MASTER_KEY)")
      ->type_name("FILE");
  app->add_option(
         "--passphrase-file", g.passphrase_file,
         "Read the master key passphrase from the first line of FILE, which group and others must not be able to "
         "read; at most 64 KiB (default: $FLEETKEY_PASSPHRASE_FILE)")
      ->type_name("FILE");
  app->add_option("--pin-file", g.pin_file,
                  "Read the user PIN of the PKCS#11 token that holds the master key (init --pkcs11) from the first "
                  "line of FILE, which group and others must not be able to read (default: $FLEETKEY_PKCS11_PIN_FILE, "
                  "then $FLEETKEY_PKCS11_PIN, then the terminal)")
      ->type_name("FILE");
  app->add_flag("--json", g.json, "Print JSON (JSON Lines for lists and streams)");
  app->add_flag("--json-errors", g.json_errors,
                "Write an error as one JSON object {\"error\": {\"code\", \"exit\", \"message\"}} on stderr instead "
                "of the \"fleetkey: error:\" line (also $FLEETKEY_JSON_ERRORS=1); see SCRIPTING in fleetkey(1)");
  app->add_flag("-q,--quiet", g.quiet, "Print only what a command exists to print");
  app->add_flag("-v,--verbose", g.verbose, "Say more on stderr (repeatable)");
  app->option_defaults()->group("Options");
  // Building all ~50 commands costs more than a small command's work; a command line that names
  // its group needs only that one, and within it only the command it names (add_group). Help
  // and docs (no arguments) get every group.
  if (const Named named = named_group(args); named.group != nullptr) {
    ctx.named_command = named.command;
    named.group->setup(*app, ctx);
  } else {
    check_globals_known(*app);
    for (const auto& group : k_command_groups) {
      group.setup(*app, ctx);
    }
  }
  return app;
}

std::string parse_error_message(const CLI::App& app, const CLI::ParseError& e, std::span<char* const> args)
{
  // The commands parsed, outermost first, and where each one's name is in argv.
  std::vector<const CLI::App*> chain{&app};
  std::vector<size_t> at{0};
  for (auto subs = app.get_subcommands(); !subs.empty(); subs = chain.back()->get_subcommands()) {
    size_t i = at.back() + 1;
    while (i < args.size() && subs.front()->get_name() != args[i]) {
      ++i;
    }
    chain.push_back(subs.front());
    at.push_back(i);
  }
  // The path and help page of chain[0..level].
  auto path = [&](size_t level) {
    std::string p;
    for (size_t i = 1; i <= level; ++i) {
      p += (i > 1 ? " " : "") + chain[i]->get_name();
    }
    return p;
  };
  auto help = [&](size_t level) {
    return level == 0 ? std::string("fleetkey --help") : "fleetkey " + path(level) + " --help";
  };
  const std::string what = e.what();
  if (e.get_name() != "RequiredError" || what != "A subcommand is required") {
    // An error about a global option: only the top-level help lists those.
    for (const auto globals :
         {std::span<const std::string_view>(k_global_valued), std::span<const std::string_view>(k_global_flags)}) {
      for (const std::string_view name : globals) {
        if (what.starts_with(name) && what.substr(name.size()).starts_with(':')) {
          return fmt::format("{} (see {})", what, help(0));
        }
      }
    }
    return fmt::format("{} (see {})", what, help(chain.size() - 1));
  }
  // CLI11 says "A subcommand is required" both for a group given no command and for a word that is
  // not a command: the deepest command parsed lacks one, and its unknown words (fallthrough) are in
  // the root's remaining(). A word belongs to the last command named before it.
  const CLI::App* cur = chain.back();
  for (const std::string& word : app.remaining(true)) {
    size_t pos = 1;
    while (pos < args.size() && word != args[pos]) {
      ++pos;
    }
    size_t level = 0;
    while (level + 1 < at.size() && at[level + 1] < pos) {
      ++level;
    }
    if (word.starts_with("-")) {
      return fmt::format("The following argument was not expected: {} (see {})", word, help(level));
    }
    const auto named = cur->get_subcommands([&word](const CLI::App* sub) { return sub->check_name(word); });
    if (level + 1 == chain.size() && !named.empty()) {
      continue; // a command's name given after "--": the group still lacks a command
    }
    const std::string where = path(level);
    return fmt::format("unknown command: {}{}{} (see {})", where, where.empty() ? "" : " ", word, help(level));
  }
  std::string names;
  for (const CLI::App* sub : cur->get_subcommands([](const CLI::App* s) { return !s->get_group().empty(); })) {
    names += (names.empty() ? "" : ", ") + sub->get_name();
  }
  const std::string where = path(chain.size() - 1);
  return fmt::format("{} needs a command: {} (see {})", where.empty() ? "fleetkey" : where, names,
                     help(chain.size() - 1));
}

} // namespace fleetkey::cmd
