// Pairing one device: the pairing code (PIN or Matter passcode) from the device key, its payload,
// the label, and the options both `pair` and a production run check. The production run is in
// pairing_batch.cpp.
#include "fleet/convert.hpp"
#include "pairing_checks.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/fleet/devices.hpp>
#include <fleetkey/fleet/pairing.hpp>
#include <fleetkey/pairing/pin.hpp>
#include <fleetkey/registry/store.hpp>
#include <fleetkey/util/file.hpp>
#include <fleetkey/util/text.hpp>
#include <fleetkey/util/thread_pool.hpp>

#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <exception>
#include <fcntl.h>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace fleetkey::fleet {

namespace {

// Decimal, or hexadecimal with 0x; at most `max`.
uint64_t parse_number(std::string_view text, uint64_t max, std::string_view what)
{
  int base = 10;
  std::string_view digits = text;
  if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
    base = 16;
    digits.remove_prefix(2);
  }
  uint64_t v = 0;
  bool ok = !digits.empty() && digits.size() <= 12;
  for (char c : digits) {
    int d = -1;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (base == 16 && c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (base == 16 && c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    }
    if (d < 0) {
      ok = false;
      break;
    }
    v = v * static_cast<uint64_t>(base) + static_cast<uint64_t>(d);
  }
  if (!ok) {
    throw Error(Exit::usage, "{} \"{}\" is not a number (decimal, or hexadecimal with 0x)", what, text);
  }
  if (v > max) {
    throw Error(Exit::usage, "{} {} is out of range (0-{})", what, v, max);
  }
  return v;
}

std::optional<std::string> label_of(const Device& d, const char* key)
{
  if (auto it = d.labels.find(key); it != d.labels.end()) {
    return it->second;
  }
  return std::nullopt;
}

const char* extension(QrFormat f)
{
  switch (f) {
  case QrFormat::png:
    return ".png";
  case QrFormat::svg:
    return ".svg";
  case QrFormat::utf8:
  case QrFormat::ansi:
    return ".txt";
  case QrFormat::none:
    return "";
  }
  return "";
}

} // namespace

void check_options(const PairOptions& o)
{
  if (o.pin_digits < pairing::k_min_pin_digits || o.pin_digits > pairing::k_max_pin_digits) {
    throw Error(Exit::usage, "--pin-digits {} is out of range ({}-{})", o.pin_digits, pairing::k_min_pin_digits,
                pairing::k_max_pin_digits);
  }
  if (o.scheme != PairScheme::matter) {
    const auto& m = o.matter;
    if (m.vendor_id || m.product_id || m.discriminator || m.passcode || m.flow != 0
        || m.discovery != pairing::k_discovery_ble || m.iterations) {
      throw Error(Exit::usage, "--vendor-id, --product-id, --discriminator, --passcode-file, --flow, --discovery and "
                               "--iterations need --scheme matter");
    }
    return;
  }
  if (o.matter.iterations
      && (*o.matter.iterations < pairing::k_spake2p_min_iterations
          || *o.matter.iterations > pairing::k_spake2p_max_iterations)) {
    throw Error(Exit::usage, "--iterations {} is out of range ({}-{})", *o.matter.iterations,
                pairing::k_spake2p_min_iterations, pairing::k_spake2p_max_iterations);
  }
  if (o.matter.flow < 0 || o.matter.flow > 2) {
    throw Error(Exit::usage, "--flow {} is not a commissioning flow (0 standard, 1 user-intent, 2 custom)",
                o.matter.flow);
  }
  if (o.matter.discovery < 1 || o.matter.discovery > 15) {
    throw Error(Exit::usage,
                "--discovery {} is not a discovery bitmask (1 SoftAP, 2 BLE, 4 on-network, 8 Wi-Fi PAF, "
                "or a sum of them)",
                o.matter.discovery);
  }
  if (o.matter.passcode) {
    uint64_t pc = 0;
    try {
      pc = parse_number(crypto::as_text(*o.matter.passcode), 0xffffffff, "passcode");
    } catch (const Error&) {
      // Its message would quote the file's first line, which may be a mistyped secret.
      throw Error(Exit::usage, "--passcode-file refused: its first line is not a number (decimal, or hexadecimal "
                               "with 0x) from 1 to 99999998");
    }
    if (auto problem = pairing::passcode_problem(pc)) {
      throw Error(Exit::usage, "--passcode-file refused: {}", *problem);
    }
  }
  for (const auto& [value, max, what] : {std::tuple{&o.matter.vendor_id, 0xffffu, "--vendor-id"},
                                         std::tuple{&o.matter.product_id, 0xffffu, "--product-id"},
                                         std::tuple{&o.matter.discriminator, 0xfffu, "--discriminator"}}) {
    if (*value) {
      parse_number(**value, max, what);
    }
  }
}

uint32_t iterations_of(const PairOptions& o)
{
  return o.matter.iterations ? static_cast<uint32_t>(*o.matter.iterations) : pairing::k_spake2p_default_iterations;
}

uint16_t matter_field(const std::optional<std::string>& option, const registry::DeviceRecord& d, const char* label,
                      uint64_t max, const char* option_name)
{
  return matter_field(option, device_of(d), label, max, option_name);
}

uint16_t matter_field(const std::optional<std::string>& option, const Device& d, const char* label, uint64_t max,
                      const char* option_name)
{
  if (option) {
    return static_cast<uint16_t>(parse_number(*option, max, option_name));
  }
  if (auto value = label_of(d, label)) {
    return static_cast<uint16_t>(parse_number(*value, max, fmt::format("label {} of device \"{}\"", label, d.id)));
  }
  throw Error(Exit::usage, "--scheme matter needs {} (or a {} label on device \"{}\")", option_name, label, d.id);
}

void check_label(const LabelOptions& label, bool batch)
{
  if (batch && label.format != QrFormat::png && label.format != QrFormat::svg) {
    throw Error(Exit::usage, "a production run writes png or svg labels (--qr png or --qr svg)");
  }
  if (label.scale < 1 || label.scale > 64) {
    throw Error(Exit::usage, "--scale {} is out of range (1-64)", label.scale);
  }
  if (label.margin < -1 || label.margin > 64) {
    throw Error(Exit::usage, "--margin {} is out of range (0-64)", label.margin);
  }
}

const char* scheme_name(PairScheme s)
{
  return s == PairScheme::matter ? "matter" : "fleetkey";
}

PairScheme parse_pair_scheme(std::string_view name)
{
  if (name == "fleetkey") {
    return PairScheme::fleetkey;
  }
  if (name == "matter") {
    return PairScheme::matter;
  }
  throw Error(Exit::usage, "unknown pairing scheme \"{}\" (fleetkey or matter)", name);
}

QrFormat parse_qr_format(std::string_view name)
{
  static const std::pair<std::string_view, QrFormat> k_names[] = {{"utf8", QrFormat::utf8},
                                                                  {"ansi", QrFormat::ansi},
                                                                  {"png", QrFormat::png},
                                                                  {"svg", QrFormat::svg},
                                                                  {"none", QrFormat::none}};
  for (const auto& [n, f] : k_names) {
    if (n == name) {
      return f;
    }
  }
  throw Error(Exit::usage, "unknown QR format \"{}\" (utf8, ansi, png, svg or none)", name);
}

std::shared_ptr<const crypto::Secret> read_passcode_file(const std::string& path)
{
  auto passcode = std::make_shared<const crypto::Secret>(
      crypto::read_private_line(path, "passcode file", 4096)); // throws Error(key)
  if (passcode->empty()) {
    throw Error(Exit::usage, "passcode file {} holds no passcode on its first line", path);
  }
  return passcode;
}

crypto::SecretText verifier_base64(const PairingCode& code)
{
  crypto::SecretText text(sodium_base64_ENCODED_LEN(code.verifier.size(), sodium_base64_VARIANT_ORIGINAL));
  text.append_base64(code.verifier.span(), sodium_base64_VARIANT_ORIGINAL);
  return text;
}

PairingCode make_pairing_code(const pairing::StreamDeriver& deriver, const registry::DeviceRecord& device,
                              const PairOptions& options, const pairing::Spake2p* spake2p)
{
  return make_pairing_code(deriver, device_of(device), options, spake2p);
}

PairingCode make_pairing_code(const pairing::StreamDeriver& deriver, const Device& device, const PairOptions& options,
                              const pairing::Spake2p* spake2p)
{
  PairingCode c;
  c.device = device.id;
  c.counter = static_cast<uint64_t>(device.pairing_counter);
  c.scheme = options.scheme;
  if (options.scheme == PairScheme::fleetkey) {
    c.code = pairing::with_check_digit(pairing::derive_pin(deriver, c.counter, options.pin_digits));
    c.grouped = pairing::group_code(c.code);
    c.manual_code = c.code;
    c.payload = pairing::native_payload(c.code, device.id);
    return c;
  }
  const auto& m = options.matter;
  pairing::MatterPayload p;
  p.vendor_id = matter_field(m.vendor_id, device, "vendor_id", 0xffff, "--vendor-id");
  p.product_id = matter_field(m.product_id, device, "product_id", 0xffff, "--product-id");
  if (m.discriminator) {
    p.discriminator = static_cast<uint16_t>(parse_number(*m.discriminator, 0xfff, "--discriminator"));
  } else if (auto label = label_of(device, "discriminator")) {
    p.discriminator = static_cast<uint16_t>(
        parse_number(*label, 0xfff, fmt::format("label discriminator of device \"{}\"", device.id)));
  } else {
    p.discriminator = pairing::derive_discriminator(deriver, c.counter);
  }
  p.passcode = m.passcode
                   ? static_cast<uint32_t>(parse_number(crypto::as_text(*m.passcode), 0xffffffff, "--passcode-file"))
                   : pairing::derive_passcode(deriver, c.counter);
  p.flow = static_cast<uint8_t>(m.flow);
  p.discovery = static_cast<uint8_t>(m.discovery);
  if (auto problem = pairing::payload_problem(p)) {
    throw Error(Exit::usage, "{}", *problem);
  }
  c.code = fmt::format("{:08}", p.passcode);
  c.manual_code = pairing::matter_manual_code(p);
  c.grouped = pairing::group_manual_code(c.manual_code);
  c.payload = pairing::matter_qr(p);
  c.matter = p;
  c.iterations = iterations_of(options);
  c.salt = pairing::derive_salt(deriver, c.counter);
  if (!spake2p) {
    throw std::logic_error("make_pairing_code: a Matter code needs a Spake2p");
  }
  auto verifier = spake2p->verifier(p.passcode, c.salt, c.iterations);
  if (!verifier) {
    throw Error(Exit::failure, "device \"{}\": {}", device.id, verifier.error());
  }
  c.verifier = std::move(*verifier);
  return c;
}

std::string render_label(std::string_view payload, const LabelOptions& label)
{
  if (label.format == QrFormat::none) {
    return {};
  }
  const auto m = qr::encode(payload, label.ec);
  const bool terminal = label.format == QrFormat::utf8 || label.format == QrFormat::ansi;
  const int margin = label.margin >= 0 ? label.margin : terminal ? 2 : 4;
  switch (label.format) {
  case QrFormat::utf8:
    return qr::render_utf8(m, margin, label.colors);
  case QrFormat::ansi:
    return qr::render_ansi(m, margin);
  case QrFormat::svg:
    return qr::render_svg(m, label.scale, margin);
  case QrFormat::png: {
    const auto png = qr::render_png(m, label.scale, margin);
    return std::string(png.begin(), png.end());
  }
  case QrFormat::none:
    break;
  }
  return {};
}

PairResult pair_device(Fleet& fleet, std::string_view id, const PairOptions& options, const LabelOptions& label,
                       const std::optional<std::string>& out_arg, Rotate rotate, util::Overwrite overwrite)
{
  check_options(options);
  check_label(label, false);
  // -o - is standard output: the rendering is returned (r.rendering), in any format, png included.
  const bool to_stdout = out_arg && *out_arg == "-";
  const auto out = to_stdout ? std::nullopt : out_arg;
  if ((label.format == QrFormat::png) && !out && !to_stdout) {
    throw Error(Exit::usage, "--qr png writes a file: give -o FILE");
  }
  if (label.format == QrFormat::none && out_arg) {
    throw Error(Exit::usage, "-o FILE needs a QR format other than none");
  }
  auto& reg = fleet.registry();
  auto device = require_device(fleet, id);
  if (device.status != "active") {
    throw Error(Exit::conflict, "device \"{}\" is revoked: it is not paired any more", id);
  }
  // Refuse what we can before the key file is read (and a passphrase asked for).
  if (options.scheme == PairScheme::matter) {
    matter_field(options.matter.vendor_id, device, "vendor_id", 0xffff, "--vendor-id");
    matter_field(options.matter.product_id, device, "product_id", 0xffff, "--product-id");
  }
  if (out && overwrite == util::Overwrite::no && util::exists(*out)) {
    throw Error(Exit::conflict, "{} already exists (use --force to replace it)", *out).with_reason("file_exists");
  }
  const auto key = derive_device_key(fleet, device); // before the transaction: it may ask for a passphrase
  std::optional<pairing::Spake2p> spake2p;
  if (options.scheme == PairScheme::matter) {
    spake2p.emplace();
  }
  registry::Transaction tx(reg);
  if (rotate == Rotate::yes) {
    device.pairing_counter = reg.bump_pairing_counter(device.id);
  }
  PairResult r;
  r.code = make_pairing_code(pairing::StreamDeriver(key.span()), device, options, spake2p ? &*spake2p : nullptr);
  r.rendering = render_label(r.code.payload, label);
  nlohmann::json details = {{"counter", r.code.counter}, {"scheme", scheme_name(options.scheme)}};
  if (out) {
    details["file"] = *out;
  }
  reg.audit(rotate == Rotate::yes ? "device.pair.rotate" : "device.pair", device.id, details);
  std::optional<util::AtomicFile> file;
  if (out) {
    file.emplace(*out, overwrite);
    file->write(r.rendering);
    r.file = *out;
    r.rendering.clear();
  }
  tx.commit();
  if (file) {
    // After the commit: a label exists only for a counter the registry has.
    file->commit();
  }
  return r;
}

std::string label_file_name(std::string_view device_id, QrFormat format)
{
  std::string out;
  for (size_t i = 0; i < device_id.size(); ++i) {
    const auto c = static_cast<unsigned char>(device_id[i]);
    const bool safe = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'
                      || (c == '.' && i > 0);
    out += safe ? std::string(1, static_cast<char>(c)) : fmt::format("%{:02X}", c);
  }
  if (out.size() > 240) {
    // Past what file systems take (255 bytes): a prefix and a digest; '~' never appears otherwise.
    uint8_t digest[32];
    crypto::sha256(util::as_bytes(device_id), digest);
    out = out.substr(0, 200) + "~" + util::to_hex(util::ByteView(digest, 8));
  }
  return out + extension(format);
}

} // namespace fleetkey::fleet
