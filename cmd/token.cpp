// fleetkey token mint | verify | inspect | key | revoke
#include "commands.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/fleet/token_text.hpp>
#include <fleetkey/fleet/tokens.hpp>
#include <fleetkey/util/json_escape.hpp>
#include <fleetkey/util/text.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <unistd.h>

namespace fleetkey::cmd {

namespace {

struct MintOptions
{
  std::string sub;
  std::string role;
  std::optional<std::string> aud;
  std::optional<std::string> ttl; // default 1h, cut to a grant's expiry
  std::vector<std::string> claims;
  std::string format = "cwt";
  std::optional<std::string> now;
};

struct VerifyOptions
{
  std::string token = "-";
  std::optional<std::string> aud;
  std::optional<std::string> now;
  std::optional<std::string> leeway;
};

struct TokenKeyOptions
{
  std::optional<std::string> aud;
  std::string format = "hex";
  std::optional<std::string> for_format; // default: jwt for --format jwk, else cwt
  std::optional<std::string> key_format; // of "key" with --json
};

struct TokenRevokeOptions
{
  std::string token;
  std::string reason;
  bool if_not_revoked = false;
};

} // namespace

std::optional<int64_t> parse_now(const std::optional<std::string>& now)
{
  if (!now) {
    return std::nullopt;
  }
  // @UNIX: checked against a token's range only, which is narrower than parse_time's, so that
  // every time out of it gets the same message.
  if (now->size() > 1 && (*now)[0] == '@') {
    int64_t v = 0;
    const auto [end, ec] = std::from_chars(now->data() + 1, now->data() + now->size(), v);
    if (ec == std::errc() && end == now->data() + now->size()) {
      fleet::check_now(v);
      return v;
    }
  }
  auto t = util::parse_time(*now);
  if (!t) {
    throw Error(Exit::usage, "--now: {}", t.error());
  }
  fleet::check_now(*t);
  return *t;
}

namespace {

// --leeway: a duration, or zero (the default), which parse_duration refuses: a text whose every
// number is 0 ("0", "0s", "0m0s") is zero when the same text with each number 1 is a duration.
int64_t parse_leeway(const std::string& text)
{
  if (text.find('0') != std::string::npos && text.find_first_of("123456789") == std::string::npos) {
    std::string ones;
    for (size_t i = 0; i < text.size(); ++i) {
      if (text[i] != '0') {
        ones += text[i];
      } else if (i == 0 || text[i - 1] != '0') {
        ones += '1';
      }
    }
    if (util::parse_duration(ones)) {
      return 0;
    }
  }
  auto leeway = util::parse_duration(text);
  if (!leeway) {
    throw Error(Exit::usage, "--leeway: {}", leeway.error());
  }
  return *leeway;
}

// The TOKEN argument of inspect and revoke: the text itself, or with "-" one token read from stdin
// (so that it is not on the command line, where other users see it in ps).
std::string token_argument(const std::string& arg)
{
  if (arg != "-") {
    return arg;
  }
  // A little more than the longest token, so that an over-long one is reported as such.
  constexpr size_t k_max_input = fleet::k_max_token_size + 3;
  std::string in(k_max_input, '\0');
  size_t have = 0;
  for (;;) {
    if (have == in.size()) {
      throw Error(Exit::token_malformed, "malformed token: token is longer than {} bytes", fleet::k_max_token_size);
    }
    const ssize_t n = ::read(STDIN_FILENO, in.data() + have, in.size() - have);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      throw Error(Exit::failure, "cannot read stdin: {}", std::strerror(errno));
    }
    if (n == 0) {
      break;
    }
    have += static_cast<size_t>(n);
  }
  in.resize(have);
  if (!in.empty() && in.back() == '\n') {
    in.pop_back();
    if (!in.empty() && in.back() == '\r') {
      in.pop_back();
    }
  }
  if (in.find('\n') != std::string::npos) {
    throw Error(Exit::usage, "expected one token on stdin, got more than one line");
  }
  return in;
}

void add_token_mint(CLI::App& tok, Context& ctx)
{
  auto mo = std::make_shared<MintOptions>();
  auto* mint = add_command(tok, ctx, "mint",
                           "Mint a role token and print it. With --aud D and a --sub that is a registered user, the "
                           "token never exceeds the user's grant on D: its role, its expiry, its epoch (exit 7 "
                           "otherwise; see fleetkey-tokens(5))",
                           [&ctx, mo] {
                             fleet::MintRequest req;
                             req.subject = mo->sub;
                             req.role = mo->role;
                             req.audience = mo->aud;
                             req.ttl = 3600;
                             req.ttl_explicit = mo->ttl.has_value();
                             if (mo->ttl) {
                               auto ttl = util::parse_duration(*mo->ttl);
                               if (!ttl) {
                                 throw Error(Exit::usage, "--ttl: {}", ttl.error());
                               }
                               req.ttl = *ttl;
                             }
                             req.claims = mo->claims;
                             req.format = fleet::parse_token_format(mo->format);
                             req.now = parse_now(mo->now);
                             const auto t = fleet::mint_token(ctx.fleet(), req);
                             if (ctx.json()) {
                               std::string line = R"({"token":)";
                               util::append_json_string(line, t.text);
                               line += fmt::format(R"(,"format":"{}","kid":)", fleet::token_format_name(t.format));
                               util::append_json_string(line, t.kid);
                               line += R"(,"token_id":)";
                               util::append_json_string(line, t.token_id);
                               line += R"(,"claims":)" + fleet::claims_json(t) + "}\n";
                               ctx.print(line);
                               return;
                             }
                             ctx.print(t.text + "\n");
                           });
  mint->add_option("--sub", mo->sub, "Subject: the user or service the token is for")->required()->type_name("NAME");
  mint->add_option("--role", mo->role, "Role, carried in the scope claim (a-z A-Z 0-9 _ . : -)")
      ->required()
      ->type_name("ROLE");
  mint->add_option("--aud", mo->aud,
                   "Audience device: the token is MACed with that device's K_tok_dev so the device can check it "
                   "offline (default: a server token under K_tok)")
      ->type_name("DEVICE");
  mint->add_option("--ttl", mo->ttl,
                   "Lifetime, e.g. 90s, 15m, 12h, 30d (default: 1h, or less to end with the subject's grant on --aud); "
                   "one that outlives the grant is refused (exit 7)")
      ->type_name("DURATION");
  mint->add_option("--claim", mo->claims, "Extra text claim KEY=VALUE (repeatable)")->type_name("K=V");
  mint->add_option("--type", mo->format,
                   "Token type: cwt (COSE_Mac0, HMAC 256/256), cwt64 (HMAC 256/64, for BLE links) or jwt (HS256)")
      ->check(CLI::IsMember({"cwt", "cwt64", "jwt"}))
      ->capture_default_str();
  // The spelling before --format came to mean an output encoding (fleetkey(1), SCRIPTING): deprecated.
  mint->add_option("--format", mo->format)->check(CLI::IsMember({"cwt", "cwt64", "jwt"}))->group("");
  mint->add_option("--now", mo->now, "Issue as of TIME (2026-11-22T00:12:17Z, 2026-11-22 or @UNIX) for fixtures")
      ->type_name("TIME");
}

void add_token_verify(CLI::App& tok, Context& ctx)
{
  auto vo = std::make_shared<VerifyOptions>();
  auto* verify = add_command(tok, ctx, "verify",
                             "Verify a token, or with - (or no argument) one token a line from stdin, printing one "
                             "JSON line each; the exit code names the (first) reason a token was rejected",
                             [&ctx, vo] {
                               fleet::VerifyOptions o;
                               o.audience = vo->aud;
                               o.now = parse_now(vo->now);
                               if (vo->leeway) {
                                 o.leeway = parse_leeway(*vo->leeway);
                               }
                               if (vo->token == "-") {
                                 const auto r = fleet::verify_stream(ctx.fleet(), STDIN_FILENO, stdout, o);
                                 if (r.first_invalid != Exit::ok) {
                                   throw Error(r.first_invalid,
                                               "{} of {} tokens are invalid (the exit code is the first one's reason)",
                                               r.invalid, r.total);
                                 }
                                 return;
                               }
                               const auto v = fleet::verify_token(ctx.fleet(), vo->token, o);
                               if (ctx.json()) {
                                 ctx.print(fleet::verdict_json(*v) + "\n");
                               }
                               fleet::require_valid(*v);
                               if (!ctx.json()) {
                                 const auto s = fleet::summarize(v->verification);
                                 // Escaped: a token's text is its maker's, terminal escapes included.
                                 ctx.print(fmt::format("valid {} token\nkid:      {}\ntoken id: {}\nclaims:   {}\n",
                                                       fleet::token_format_name(s.format), one_line(s.kid),
                                                       one_line(s.token_id), one_line(s.claims_json)));
                               }
                             });
  verify->footer("Exit status: 0 valid, 10 malformed, 11 bad MAC, 12 expired, 13 not yet valid, 14 revoked, 15 unknown "
                 "key, 16 wrong audience; for stdin, that of the first invalid token. See fleetkey-tokens(5).");
  verify->add_option("TOKEN", vo->token, "The token, or - for one token a line on stdin")->capture_default_str();
  verify->add_option("--aud", vo->aud, "Require this audience (the device checking the token)")->type_name("DEVICE");
  verify->add_option("--now", vo->now, "Check exp and nbf as of TIME instead of the clock")->type_name("TIME");
  verify->add_option("--leeway", vo->leeway, "Clock skew allowed on exp and nbf, e.g. 30s (default: 0)")
      ->type_name("DURATION");
}

void add_token_inspect(CLI::App& tok, Context& ctx)
{
  auto io = std::make_shared<std::string>();
  auto* inspect = add_command(tok, ctx, "inspect", "Decode a token WITHOUT verifying it", [&ctx, io] {
    const auto v = fleet::inspect_token(token_argument(*io));
    const auto s = fleet::summarize(*v);
    if (ctx.json()) {
      std::string line = fmt::format(R"({{"verified":false,"format":"{}","alg":"{}","kid":)",
                                     fleet::token_format_name(s.format), fleet::token_alg_name(s.format));
      util::append_json_string(line, s.kid);
      line += R"(,"token_id":)";
      util::append_json_string(line, s.token_id);
      line += R"(,"claims":)" + s.claims_json + "}\n";
      ctx.print(line);
      return;
    }
    ctx.print(fmt::format("NOT VERIFIED: decoded only; the MAC, times and revocation were not checked\n"
                          "format:   {} ({})\nkid:      {}\ntoken id: {}\nclaims:   {}\n",
                          fleet::token_format_name(s.format), fleet::token_alg_name(s.format), one_line(s.kid),
                          one_line(s.token_id), one_line(s.claims_json)));
  });
  inspect
      ->add_option("TOKEN", *io,
                   "The token, or - to read one token from stdin (a token on the command line is visible to "
                   "other users in ps)")
      ->required();
  inspect->footer("Exit status: 0 decoded, 10 malformed. See fleetkey-tokens(5).");
}

void add_token_key(CLI::App& tok, Context& ctx)
{
  auto ko = std::make_shared<TokenKeyOptions>();
  auto* key = add_command(
      tok, ctx, "key", "Print the verifying key, for servers that check tokens with their own JOSE or COSE library",
      [&ctx, ko] {
        // A JWK is a JOSE key: it verifies JWTs unless --for says otherwise.
        if (ko->key_format && !ctx.json()) {
          throw Error(Exit::usage, "--key-format sets the key's encoding in JSON output "
                                   "(--json); --format hex or base64 prints the key alone");
        }
        const auto for_format = ko->for_format.value_or(ko->format == "jwk" ? "jwt" : "cwt");
        const auto k = fleet::export_token_key(ctx.fleet(), ko->aud, fleet::parse_token_format(for_format));
        if (ctx.json()) {
          std::string head = R"({"kid":)";
          util::append_json_string(head, k.kid);
          head += fmt::format(R"(,"for":"{}","fingerprint":"{}","test_key":{},"key":")",
                              fleet::token_format_name(k.format), k.fingerprint, k.test_key);
          ctx.print(head);
          // As device key --json: base64 unless --key-format hex.
          auto text = fleet::format_token_key(k, ko->key_format.value_or("base64"));
          text.truncate(text.size() - 1);
          ctx.write_secret(text);
          ctx.print("\"}\n");
          return;
        }
        ctx.write_secret(fleet::format_token_key(k, ko->format));
      });
  key->add_option("--aud", ko->aud, "The key of this device's tokens, K_tok_dev(DEVICE) (default: K_tok)")
      ->type_name("DEVICE");
  key->add_option("--format", ko->format,
                  "Output: hex, base64 or jwk (RFC 7517; implies --for jwt unless --for is given). Ignored with "
                  "--json, whose object holds the key as --key-format says")
      ->check(CLI::IsMember({"hex", "base64", "jwk"}))
      ->capture_default_str();
  key->add_option("--for", ko->for_format,
                  "The token format the key verifies: cwt, cwt64 or jwt (each has its own key; default: jwt with "
                  "--format jwk, else cwt)")
      ->check(CLI::IsMember({"cwt", "cwt64", "jwt"}))
      ->type_name("FORMAT");
  add_key_format_option(*key, ko->key_format);
  key->footer("With --json: one object {\"kid\", \"for\", \"fingerprint\", \"test_key\", \"key\"}, the key in "
              "base64 (--key-format hex: in hex), as device key --json.");
}

void add_token_revoke(CLI::App& tok, Context& ctx)
{
  auto ro = std::make_shared<TokenRevokeOptions>();
  auto* revoke = add_command(tok, ctx, "revoke", "Revoke a token by its text or its token id", [&ctx, ro] {
    std::optional<fleet::RevokedToken> revoked;
    try {
      revoked = fleet::revoke_token(ctx.fleet(), token_argument(ro->token), ro->reason);
    } catch (const Error& e) {
      if (!ro->if_not_revoked || !e.has_reason("already_revoked")) {
        throw;
      }
      // e.message() names the token id: "token ID is already revoked".
      ctx.json() ? ctx.print_json(Json{{"already_revoked", true}}) : ctx.note(e.message());
      return;
    }
    const auto& r = *revoked;
    if (ctx.json()) {
      Json j{{"token_id", r.token_id}, {"reason", r.reason}, {"created", r.created}};
      j["exp"] = r.exp ? Json(*r.exp) : Json(nullptr);
      if (ro->if_not_revoked) {
        j["already_revoked"] = false;
      }
      ctx.print_json(j);
      return;
    }
    ctx.note(fmt::format("revoked token {}", r.token_id));
  });
  revoke
      ->add_option("TOKEN", ro->token,
                   "The token, its id (hex of the cti, or the jti; hex in either case), or - to read the token or id "
                   "from stdin (a token on the command line is visible to other users in ps)")
      ->required();
  revoke->add_flag("--if-not-revoked", ro->if_not_revoked,
                   "Succeed without change (exit 0, \"already revoked\") if the token is already revoked");
  revoke->footer("Exit status: 0 revoked (or, with --if-not-revoked, already revoked), 2 usage, 4 already revoked, 10 "
                 "malformed, 11 bad MAC, 15 unknown key "
                 "(a token must be one of this registry's keys; an id is taken as given). See fleetkey-tokens(5).");
  revoke->add_option("--reason", ro->reason, "Why, for the audit trail (1 to 1024 bytes of printable text)")
      ->required()
      ->type_name("TEXT");
}

} // namespace

void setup_token(CLI::App& app, Context& ctx)
{
  static constexpr Command k_commands[] = {
      {"mint", add_token_mint}, {"verify", add_token_verify}, {"inspect", add_token_inspect},
      {"key", add_token_key},   {"revoke", add_token_revoke},
  };
  add_group(app, ctx, "token", "Mint, verify, inspect and revoke role tokens (CWT and JWT)", k_commands);
}

} // namespace fleetkey::cmd
