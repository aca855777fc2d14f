#include "context.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/fleet/master.hpp>
#include <fleetkey/util/file.hpp>
#include <fleetkey/util/text.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

namespace fleetkey::cmd {

fleet::Fleet& Context::fleet()
{
  if (!m_fleet) {
    fleet::Options o{globals.home, globals.registry, globals.master_key, globals.passphrase_file, globals.pin_file};
    m_fleet = std::make_unique<fleet::Fleet>(o, [this](std::string_view msg) { warn(msg); });
    if (globals.quiet) {
      m_fleet->hush_test_key();
    }
    if (globals.verbose > 0) {
      const auto& p = m_fleet->paths();
      fmt::print(stderr, "fleetkey: home {}, registry {}, master key {}\n", one_line(p.home), one_line(p.registry),
                 one_line(p.master_key));
    }
  }
  return *m_fleet;
}

void Context::pin_clock()
{
  // SOURCE_DATE_EPOCH is pinned when a test key's registry opens (Fleet::registry): opened before the
  // command reads the clock. What fails here is left for the command to meet (init makes the registry).
  if (const char* sde = std::getenv("SOURCE_DATE_EPOCH"); sde != nullptr && *sde != '\0') {
    try {
      if (fleet::initialised(fleet())) {
        fleet().registry();
      }
    } catch (const Error& e) {
      if (e.code() == Exit::usage) {
        throw; // a malformed SOURCE_DATE_EPOCH
      }
    } catch (const util::FileError&) {
      // Left for the command to meet, as above.
    }
  }
}

void Context::print(std::string_view text) const
{
  std::fwrite(text.data(), 1, text.size(), stdout);
}

void Context::print_json(const Json& value) const
{
  print(value.dump(-1, ' ', false, Json::error_handler_t::replace));
  print("\n");
}

void Context::note(std::string_view text) const
{
  if (!globals.quiet && !globals.json) {
    print(text);
    print("\n");
  }
}

void Context::warn(std::string_view text) const
{
  fmt::print(stderr, "fleetkey: warning: {}\n", one_line(text));
}

std::string error_code(const Error& e)
{
  if (e.reason() != nullptr) {
    return e.reason();
  }
  switch (e.code()) {
  case Exit::ok:
    return "ok";
  case Exit::failure:
    return "failure";
  case Exit::usage:
    return "usage";
  case Exit::not_found:
    return "not_found";
  case Exit::conflict:
    return "conflict";
  case Exit::key:
    return "key";
  case Exit::registry:
    return "registry";
  case Exit::exceeds_grant:
    return "exceeds_grant";
  case Exit::token_malformed:
    return "token_malformed";
  case Exit::token_bad_mac:
    return "token_bad_mac";
  case Exit::token_expired:
    return "token_expired";
  case Exit::token_not_yet_valid:
    return "token_not_yet_valid";
  case Exit::token_revoked:
    return "token_revoked";
  case Exit::token_unknown_key:
    return "token_unknown_key";
  case Exit::token_wrong_audience:
    return "token_wrong_audience";
  case Exit::audit_chain:
    return "audit_chain";
  }
  return "failure";
}

std::string one_line(std::string_view text)
{
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if (c == '\n') {
        out += "\\n";
      } else if (c == '\t') {
        out += "\\t";
      } else if (c == '\r') {
        out += "\\r";
      } else if (c < 0x20 || c == 0x7f) {
        out += fmt::format("\\x{:02x}", c);
      } else {
        out += static_cast<char>(c);
      }
      ++i;
      continue;
    }
    const size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    const auto seq = text.substr(i, len);
    if (len == 1 || seq.size() != len || !util::is_valid_utf8(seq)) {
      out += fmt::format("\\x{:02x}", c);
      ++i;
      continue;
    }
    uint32_t cp = c & (0x7fu >> len);
    for (size_t k = 1; k < len; ++k) {
      cp = (cp << 6) | (static_cast<unsigned char>(seq[k]) & 0x3fu);
    }
    // C1 controls, line separators, and the bidi controls that make text display as other text.
    const bool bidi =
        cp == 0x61c || cp == 0x200e || cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
    if ((cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 || bidi) {
      out += fmt::format("\\u{:04x}", cp);
    } else {
      out += seq;
    }
    i += len;
  }
  return out;
}

void Context::write_secret(const crypto::Secret& text) const
{
  // Past stdio, straight to the descriptor: stdio's buffer would keep a copy until exit, unzeroed.
  if (std::fflush(stdout) != 0 || !util::write_fully(STDOUT_FILENO, text.span())) {
    throw Error(Exit::failure, "cannot write to stdout: {}", std::strerror(errno));
  }
}

bool colour_allowed()
{
  const char* no_color = std::getenv("NO_COLOR");
  return no_color == nullptr || *no_color == '\0';
}

SecretOutput::SecretOutput(const std::optional<std::string>& path)
{
  if (path && *path != "-") {
    m_file = std::make_unique<util::AtomicFile>(*path, util::Overwrite::no);
  }
}

SecretOutput::~SecretOutput() = default;

void SecretOutput::write(const Context& ctx, const crypto::Secret& text)
{
  if (!m_file) {
    ctx.write_secret(text);
    return;
  }
  m_file->write(text.span());
  m_file->commit();
}

void add_key_format_option(CLI::App& command, std::optional<std::string>& key_format)
{
  command
      .add_option("--key-format", key_format,
                  "Encoding of the key in JSON output (--json, --format json): base64 (the default) or hex")
      ->check(CLI::IsMember({"base64", "hex"}))
      ->type_name("ENCODING");
}

fleet::KeyEncoding json_key_encoding(fleet::KeyFormat format, const std::optional<std::string>& key_format)
{
  if (!key_format) {
    return fleet::KeyEncoding::base64;
  }
  if (format != fleet::KeyFormat::json) {
    throw Error(Exit::usage, "--key-format sets the key's encoding in JSON output (--json or --format json); "
                             "--format hex or base64 prints the key alone");
  }
  return fleet::parse_key_encoding(*key_format);
}

CLI::App* add_command(CLI::App& parent, Context& ctx, const std::string& name, const std::string& help,
                      std::function<void()> run)
{
  CLI::App* sub = parent.add_subcommand(name, help);
  sub->callback([&ctx, run = std::move(run)] { ctx.action = run; });
  return sub;
}

void add_group(CLI::App& app, Context& ctx, const std::string& name, const std::string& help,
               std::span<const Command> commands)
{
  CLI::App* group = app.add_subcommand(name, help);
  group->require_subcommand(1);
  for (const auto& c : commands) {
    if (c.name == ctx.named_command) {
      c.setup(*group, ctx);
      return;
    }
  }
  for (const auto& c : commands) {
    c.setup(*group, ctx);
  }
}

} // namespace fleetkey::cmd
