// fleetkey pair decode CODE: a QR payload, PIN or Matter manual code read back and checked; and the
// Matter payload's fields as `pair` prints them too (cmd/pair.hpp).
#include "pair.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/fleet/decode.hpp>

#include <fmt/format.h>

namespace fleetkey::cmd {

namespace {

struct DecodeOptions
{
  std::string code;
  std::string scheme = "any";
};

std::string discovery_text(unsigned bits)
{
  static constexpr std::pair<unsigned, const char*> k_names[] = {
      {1, "SoftAP"}, {2, "BLE"}, {4, "on-network"}, {8, "Wi-Fi PAF"}};
  std::string out;
  for (const auto& [bit, name] : k_names) {
    if (bits & bit) {
      out += (out.empty() ? "" : "+") + std::string(name);
    }
  }
  if (bits & ~15u) {
    out += (out.empty() ? "" : "+") + std::string("reserved bits");
  }
  return out.empty() ? "none" : out;
}

const char* flow_text(unsigned flow)
{
  static constexpr const char* k_flows[] = {"standard", "user-intent", "custom", "reserved"};
  return k_flows[flow & 3];
}

// A Matter passcode in JSON: a string of 8 digits, zero-padded ("04311742"), as it is printed and typed.
std::string passcode_text(uint32_t passcode)
{
  return fmt::format("{:08}", passcode);
}

} // namespace

Json matter_json(const fleet::MatterPayload& p)
{
  return Json{{"version", p.version},
              {"vendor_id", p.vendor_id},
              {"product_id", p.product_id},
              {"flow", p.flow},
              {"discovery", p.discovery},
              {"discriminator", p.discriminator},
              {"passcode", passcode_text(p.passcode)}};
}

void print_matter(Context& ctx, const fleet::MatterPayload& p)
{
  ctx.print(fmt::format("vendor id:     {} (0x{:04X})\n", p.vendor_id, p.vendor_id));
  ctx.print(fmt::format("product id:    {} (0x{:04X})\n", p.product_id, p.product_id));
  ctx.print(fmt::format("flow:          {} ({})\n", p.flow, flow_text(p.flow)));
  ctx.print(fmt::format("discovery:     {} ({})\n", p.discovery, discovery_text(p.discovery)));
  ctx.print(fmt::format("discriminator: {}\n", p.discriminator));
  ctx.print(fmt::format("passcode:      {:08}\n", p.passcode));
}

namespace {

void run_decode(Context& ctx, const DecodeOptions& o)
{
  using Kind = fleet::DecodedCode::Kind;
  const auto d = fleet::decode_pairing_code(o.code, o.scheme);
  const bool json = ctx.json();
  if (d.kind == Kind::fleetkey_payload) {
    if (json) {
      ctx.print_json(Json{{"kind", "fleetkey-payload"},
                          {"scheme", "fleetkey"},
                          {"version", d.version},
                          {"device", d.device},
                          {"pin", d.pin},
                          {"pin_grouped", d.pin_grouped},
                          {"pin_digits", d.pin_digits},
                          {"check_digit", "ok"}});
      return;
    }
    ctx.print(fmt::format("kind:          fleetkey payload, version {}\n", d.version));
    ctx.print(fmt::format("device:        {}\n", d.device));
    ctx.print(fmt::format("PIN:           {} ({} digits, check digit ok)\n", d.pin_grouped, d.pin_digits));
  } else if (d.kind == Kind::fleetkey_pin) {
    if (json) {
      ctx.print_json(Json{{"kind", "fleetkey-pin"},
                          {"scheme", "fleetkey"},
                          {"pin", d.pin},
                          {"pin_grouped", d.pin_grouped},
                          {"pin_digits", d.pin_digits},
                          {"check_digit", "ok"}});
      return;
    }
    ctx.print("kind:          fleetkey PIN\n");
    ctx.print(fmt::format("PIN:           {} ({} digits, check digit ok)\n", d.pin_grouped, d.pin_digits));
  } else if (d.kind == Kind::matter_qr) {
    const auto& m = *d.matter;
    if (json) {
      Json j{{"kind", "matter-qr"}, {"scheme", "matter"}};
      j.update(matter_json(m));
      j["manual_code"] = d.manual_code;
      ctx.print_json(j);
      return;
    }
    ctx.print(fmt::format("kind:          Matter QR payload, version {}\n", m.version));
    print_matter(ctx, m);
    ctx.print(fmt::format("manual code:   {}\n", d.manual_grouped));
  } else {
    const auto& c = *d.manual;
    if (json) {
      Json j{{"kind", "matter-manual"},
             {"scheme", "matter"},
             {"digits", c.long_code ? 21 : 11},
             {"short_discriminator", c.short_discriminator},
             {"passcode", passcode_text(c.passcode)},
             {"check_digit", "ok"}};
      if (c.long_code) {
        j["vendor_id"] = c.vendor_id;
        j["product_id"] = c.product_id;
      }
      ctx.print_json(j);
      return;
    }
    ctx.print(fmt::format("kind:          Matter manual code, {} digits, check digit ok\n", c.long_code ? 21 : 11));
    ctx.print(fmt::format("discriminator: {} (upper 4 of its 12 bits: {}-{})\n", c.short_discriminator,
                          c.short_discriminator << 8, (c.short_discriminator << 8) | 0xff));
    ctx.print(fmt::format("passcode:      {:08}\n", c.passcode));
    if (c.long_code) {
      ctx.print(fmt::format("vendor id:     {} (0x{:04X})\n", c.vendor_id, c.vendor_id));
      ctx.print(fmt::format("product id:    {} (0x{:04X})\n", c.product_id, c.product_id));
    }
  }
}

} // namespace

CLI::App* add_pair_decode(CLI::App& pair, Context& ctx)
{
  auto d = std::make_shared<DecodeOptions>();

  auto* decode = add_command(pair, ctx, "decode", "Read a QR payload, PIN or Matter manual code back and check it",
                             [&ctx, d] { run_decode(ctx, *d); });
  decode->add_option("CODE", d->code, "FK1:... or MT:... payload, a PIN, or an 11- or 21-digit manual code")
      ->required();
  decode
      ->add_option("--scheme", d->scheme,
                   "Read digits as this scheme (11 digits are both a Matter manual code and "
                   "a fleetkey code with a 10-digit PIN: any reads 11 and 21 digits as "
                   "Matter)")
      ->check(CLI::IsMember({"any", "fleetkey", "matter"}))
      ->capture_default_str();
  return decode;
}

} // namespace fleetkey::cmd
