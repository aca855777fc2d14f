// fleetkey: parse the command line, run the chosen command, map errors to exit codes.

#include "commands.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/core/file_error.hpp>
#include <fleetkey/fleet/fleet.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>

namespace {

// The one report of a failed command on stderr, and its exit code.
int report(const fleetkey::cmd::Context& ctx, const fleetkey::Error& e)
{
  std::fflush(stdout);
  const char* env = std::getenv("FLEETKEY_JSON_ERRORS");
  if (ctx.globals.json_errors || (env != nullptr && std::string_view(env) == "1")) {
    // fleetkey(1), SCRIPTING: one JSON object on stderr, error.code a stable name for the reason.
    const fleetkey::cmd::Json j = {{"error",
                                    {{"code", fleetkey::cmd::error_code(e)},
                                     {"exit", e.exit_code()},
                                     {"message", fleetkey::cmd::one_line(e.message())}}}};
    fmt::print(stderr, "{}\n", j.dump());
  } else {
    fmt::print(stderr, "fleetkey: error: {}\n", fleetkey::cmd::one_line(e.message()));
  }
  return e.exit_code();
}

} // namespace

int main(int argc, char** argv)
{
  using fleetkey::Error;
  using fleetkey::Exit;
  // First of all, before any secret exists: no core dump, whatever the signal (Ctrl-\ at a passphrase
  // prompt would otherwise write the master key to disk), and no ptrace or /proc/PID/mem by another
  // process of the same user. Non-dumpable also makes /proc/PID root's. For the whole life.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  const struct rlimit no_core
  {
    0, 0
  };
  ::setrlimit(RLIMIT_CORE, &no_core);
  // Everything fleetkey creates (home, registry, WAL, key files) is private to its owner.
  ::umask(077);
  fleetkey::cmd::Context ctx;
  try {
    fleetkey::fleet::init_library();
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
      throw Error(Exit::usage, "{}",
                  fleetkey::cmd::parse_error_message(*app, e, std::span<char* const>(argv, static_cast<size_t>(argc))));
    }
    if (ctx.action) {
      ctx.pin_clock();
      ctx.action();
    }
    if (std::fflush(stdout) != 0) {
      throw Error(Exit::failure, "cannot write to stdout: {}", std::strerror(errno));
    }
    // The output is delivered: what the command held back (Context::commit_after_output) is committed.
    ctx.commit_held();
    // The command line's ~50 commands and their options hold no secret and no resource: freeing
    // them one by one only delays the exit. Kept reachable, so leak checkers do not flag them.
    static CLI::App* const kept = app.release();
    (void)kept;
    return 0;
  } catch (const Error& e) {
    return report(ctx, e);
  } catch (const fleetkey::util::FileError& e) {
    // util's file errors carry what went wrong, not an exit code: core maps them (core/file_error.hpp).
    return report(ctx, fleetkey::file_error(e));
  } catch (const std::exception& e) {
    std::fflush(stdout);
    fmt::print(stderr, "fleetkey: error: {}\n", fleetkey::cmd::one_line(e.what()));
    return static_cast<int>(Exit::failure);
  }
}
