#pragma once
// The error type that every layer throws and `main` catches once, mapping it to an exit code. In core/,
// not util/: its exit codes are fleetkey's command-line contract, which util knows nothing of.

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <string_view>

namespace fleetkey {

// Exit codes are part of the command-line contract: documented in fleetkey(1), never renumbered.
enum class Exit : int {
  ok = 0,
  failure = 1,       // I/O, SQLite or another failure that is not the caller's input
  usage = 2,         // bad arguments or malformed input
  not_found = 3,     // unknown device, user, grant, token or master key version
  conflict = 4,      // already exists, already revoked, file exists
  key = 5,           // passphrase missing or wrong, key file unsafe or corrupted
  registry = 6,      // no registry, not a fleetkey registry, schema newer than this binary
  exceeds_grant = 7, // token mint: more (role, lifetime, a grant at all) than the subject's grant on the device
  // token verify: one code per reason a token is rejected.
  token_malformed = 10,
  token_bad_mac = 11,
  token_expired = 12,
  token_not_yet_valid = 13,
  token_revoked = 14,
  token_unknown_key = 15,
  token_wrong_audience = 16,
  // audit verify and audit checkpoint: a row of the audit trail was changed, deleted or inserted,
  // or rows after a checkpoint were cut off.
  audit_chain = 20,
};

class Error : public std::runtime_error
{
public:
  Error(Exit code, const std::string& message)
      : std::runtime_error(message)
      , m_message(message)
      , m_code(code)
  {
  }

  template<typename... Args>
  Error(Exit code, fmt::format_string<Args...> format, Args&&... args)
      : Error(code, fmt::format(format, std::forward<Args>(args)...))
  {
  }

  // The whole message: what() ends at the first NUL byte a quoted input may hold.
  const std::string& message() const noexcept { return m_message; }
  Exit code() const noexcept { return m_code; }
  int exit_code() const noexcept { return static_cast<int>(m_code); }
  // A stable name for the reason, more precise than the exit code (fleetkey(1), SCRIPTING): printed
  // as error.code with --json, and what an idempotent form (--if-missing, --if-not-revoked) accepts.
  // `throw Error(Exit::conflict, "...").with_reason("exists");`
  Error&& with_reason(const char* reason) && noexcept
  {
    m_reason = reason;
    return std::move(*this);
  }
  const char* reason() const noexcept { return m_reason; }
  bool has_reason(std::string_view reason) const noexcept { return m_reason != nullptr && reason == m_reason; }

private:
  std::string m_message;
  Exit m_code;
  const char* m_reason = nullptr;
};

} // namespace fleetkey
