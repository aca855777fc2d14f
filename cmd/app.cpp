#include "commands.hpp"

namespace fleetkey::cmd {

namespace {

using Setup = void (*)(CLI::App&, Context&);

// Explicit on purpose: self-registering objects can be dropped by the linker from static libraries.
constexpr Setup k_command_groups[] = {
    setup_init, setup_master, setup_device, setup_user, setup_token, setup_pair,
};

} // namespace

std::unique_ptr<CLI::App> build_app(Context& ctx)
{
  auto app = std::make_unique<CLI::App>(
      "fleetkey provisions keys for fleets of small devices and their users: one master key, per-device and per-user "
      "keys derived with HKDF, HMAC-bound role tokens, pairing codes and an SQLite registry.",
      "fleetkey");
  app->set_version_flag("--version", std::string("fleetkey ") + FLEETKEY_VERSION, "Print the version and exit");
  app->set_help_flag("-h,--help", "Print this help and exit");
  app->require_subcommand(1);
  app->fallthrough();
  auto& g = ctx.globals;
  app->option_defaults()->group("Global options");
  app->add_option("--home", g.home,
                  "Directory of the registry and master key (default: $FLEETKEY_HOME, "
                  "$XDG_DATA_HOME/fleetkey, ~/.local/share/fleetkey)")
      ->type_name("DIR");
  app->add_option("--registry", g.registry, "Registry file (default: HOME/registry.db, $FLEETKEY_REGISTRY)")
      ->type_name("FILE");
  app->add_option("--master-key", g.master_key, "Master key file (default: HOME/master.key, $FLEETKEY_MASTER_KEY)")
      ->type_name("FILE");
  app->add_option("--passphrase-file", g.passphrase_file,
                  "Read the master key passphrase from the first line of FILE (default: $FLEETKEY_PASSPHRASE_FILE)")
      ->type_name("FILE");
  app->add_flag("--json", g.json, "Print JSON (JSON Lines for lists and streams)");
  app->add_flag("-q,--quiet", g.quiet, "Print only what a command exists to print");
  app->add_flag("-v,--verbose", g.verbose, "Say more on stderr (repeatable)");
  app->option_defaults()->group("Options");
  for (Setup setup : k_command_groups) {
    setup(*app, ctx);
  }
  return app;
}

} // namespace fleetkey::cmd
