// fleetkey init
#include "commands.hpp"

#include <fleetkey/fleet/master.hpp>
#include <fleetkey/util/file.hpp>

#include <fmt/format.h>

namespace fleetkey::cmd {

void setup_init(CLI::App& app, Context& ctx)
{
  auto o = std::make_shared<fleet::InitOptions>();
  auto skip = std::make_shared<bool>(false); // --if-missing
  auto* sub = add_command(app, ctx, "init", "Create the home, the registry and master key version 1", [&ctx, o, skip] {
    const auto& p = ctx.fleet().paths();
    if (*skip && !o->force && fleet::initialised(ctx.fleet())) {
      // Initialised already: checked to be a fleetkey registry (exit 6 if not), and left as it is.
      ctx.fleet().registry();
      if (ctx.json()) {
        ctx.print_json({{"home", p.home}, {"registry", p.registry}, {"master_key", p.master_key}, {"created", false}});
      } else {
        ctx.note(fmt::format("{} is initialised already", p.home));
      }
      return;
    }
    const auto rec = fleet::init(ctx.fleet(), *o);
    if (ctx.json()) {
      Json j{{"home", p.home},
             {"registry", p.registry},
             {"master_key", p.master_key},
             {"version", rec.version},
             {"fingerprint", rec.fingerprint},
             {"encrypted", !o->no_passphrase && !o->pkcs11_uri},
             {"test_key", rec.test_key},
             {"created", true}};
      if (o->pkcs11_uri) {
        j["pkcs11"] = true;
      }
      ctx.print_json(j);
      return;
    }
    if (o->pkcs11_uri) {
      ctx.note(fmt::format("created master key v{} in the PKCS#11 token{} (reference in {})", rec.version,
                           rec.test_key ? ", TEST KEY" : "", p.master_key));
    } else {
      ctx.note(fmt::format("created master key v{} ({}{}) in {}", rec.version,
                           o->no_passphrase ? "unencrypted" : "encrypted", rec.test_key ? ", TEST KEY" : "",
                           p.master_key));
    }
    ctx.note(fmt::format("fingerprint {}", rec.fingerprint));
    ctx.note(fmt::format("created registry {}", p.registry));
  });
  sub->add_flag("--no-passphrase", o->no_passphrase, "Write the master key file unencrypted (protect it otherwise)");
  sub->add_option("--test-seed", o->test_seed_hex,
                  "Derive the master key from HEX (1-64 bytes) for reproducible test fixtures; never for real devices")
      ->type_name("HEX");
  sub->add_option("--kdf", o->kdf_profile, "Argon2id cost of the passphrase key")
      ->check(CLI::IsMember({"interactive", "moderate", "sensitive"}))
      ->capture_default_str();
  sub->add_flag("--if-missing", *skip,
                "Succeed without change if the registry and the master key file exist already (and are a fleetkey "
                "registry); a home with only one of them is still refused");
  sub->add_option("--pkcs11", o->pkcs11_uri,
                  "Keep the master key in the PKCS#11 token URI names (RFC 7512: token=, serial=, object= for the "
                  "label prefix, ?module-path= or $FLEETKEY_PKCS11_MODULE); the PIN comes from --pin-file or "
                  "$FLEETKEY_PKCS11_PIN, the key file becomes a reference to the token, and no passphrase is asked")
      ->type_name("URI");
  sub->add_flag("--force", o->force, "Replace an existing registry and master key (every derived key changes)");
}

} // namespace fleetkey::cmd
