// fleetkey: parse the command line, run the chosen command, map errors to exit codes.

#include "commands.hpp"

#include <fleetkey/crypto/secret.hpp>
#include <fleetkey/util/error.hpp>

#include <fmt/format.h>

#include <cstdio>
#include <sys/stat.h>

int main(int argc, char** argv)
{
  using fleetkey::Error;
  using fleetkey::Exit;
  // Everything fleetkey creates (home, registry, WAL, key files) is private to its owner.
  ::umask(077);
  fleetkey::cmd::Context ctx;
  try {
    fleetkey::crypto::init();
    auto app = fleetkey::cmd::build_app(ctx, std::span<char* const>(argv, static_cast<size_t>(argc)));
    try {
      app->parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
      return app->exit(e);
    } catch (const CLI::CallForAllHelp& e) {
      return app->exit(e);
    } catch (const CLI::CallForVersion& e) {
      return app->exit(e);
    } catch (const CLI::ParseError& e) {
      fmt::print(stderr, "fleetkey: error: {}\n",
                 fleetkey::cmd::one_line(fleetkey::cmd::parse_error_message(
                     *app, e, std::span<char* const>(argv, static_cast<size_t>(argc)))));
      return static_cast<int>(Exit::usage);
    }
    if (ctx.action) {
      ctx.action();
    }
    if (std::fflush(stdout) != 0) {
      throw Error(Exit::failure, "cannot write to stdout");
    }
    // The command line's ~50 commands and their options hold no secret and no resource: freeing
    // them one by one only delays the exit. Kept reachable, so leak checkers do not flag them.
    static CLI::App* const kept = app.release();
    (void)kept;
    return 0;
  } catch (const Error& e) {
    std::fflush(stdout);
    fmt::print(stderr, "fleetkey: error: {}\n", fleetkey::cmd::one_line(e.what()));
    return e.exit_code();
  } catch (const std::exception& e) {
    std::fflush(stdout);
    fmt::print(stderr, "fleetkey: error: {}\n", fleetkey::cmd::one_line(e.what()));
    return static_cast<int>(Exit::failure);
  }
}
