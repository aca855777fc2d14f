#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/fleet/devices.hpp>
#include <fleetkey/fleet/pairing.hpp>
#include <fleetkey/pairing/pin.hpp>
#include <fleetkey/registry/store.hpp>
#include <fleetkey/util/error.hpp>
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

std::optional<std::string> label_of(const registry::DeviceRecord& d, const char* key)
{
  if (auto it = d.labels.find(key); it != d.labels.end() && it->is_string()) {
    return it->get<std::string>();
  }
  return std::nullopt;
}

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
      pc = parse_number(*o.matter.passcode, 0xffffffff, "passcode");
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

std::string csv_field(std::string_view s)
{
  if (s.find_first_of(",\"\r\n") == std::string_view::npos && (s.empty() || (s.front() != ' ' && s.back() != ' '))) {
    return std::string(s);
  }
  std::string out = "\"";
  for (char c : s) {
    out += c;
    if (c == '"') {
      out += '"';
    }
  }
  return out + "\"";
}

// Whether `path` is a regular file with one name that holds exactly `data` (pair --resume).
bool holds(const std::string& path, std::string_view data)
{
  util::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  struct stat st
  {
  };
  if (!fd.valid() || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink > 1
      || static_cast<size_t>(st.st_size) != data.size()) {
    return false;
  }
  std::string have(data.size(), '\0');
  size_t got = 0;
  while (got < have.size()) {
    const auto n = ::read(fd.get(), have.data() + got, have.size() - got);
    if (n <= 0) {
      return false;
    }
    got += static_cast<size_t>(n);
  }
  const bool same = sodium_memcmp(have.data(), data.data(), data.size()) == 0;
  sodium_memzero(have.data(), have.size());
  return same;
}

// Labels carry PINs: a label is written only into a regular file of its own that ends up 0600.
// O_NOFOLLOW refuses a symbolic link, O_NONBLOCK a FIFO without a reader; an existing file is
// truncated only once it is known to be a regular file with no other name. On failure the file is
// removed if this call created or truncated it, so that a full disk leaves no partial label.
void write_whole(const std::string& path, std::string_view data, util::Overwrite overwrite)
{
  const int flags = O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
  // O_EXCL first: a file this call creates is known to be its own to remove.
  util::Fd fd(::open(path.c_str(), flags | O_CREAT | O_EXCL, 0600));
  const bool created = fd.valid();
  if (!created && errno == EEXIST && overwrite == util::Overwrite::yes) {
    fd = util::Fd(::open(path.c_str(), flags));
  }
  if (!fd.valid()) {
    if (errno == ELOOP) {
      throw Error(Exit::conflict, "{} is a symbolic link: a label is never written through one", path);
    }
    throw Error(errno == EEXIST ? Exit::conflict : Exit::failure, "cannot create {}: {}", path, std::strerror(errno));
  }
  struct RemoveOnFailure
  {
    const std::string& path;
    bool armed;
    ~RemoveOnFailure()
    {
      if (armed) {
        ::unlink(path.c_str());
      }
    }
  } remove{path, created};
  struct stat st
  {
  };
  if (::fstat(fd.get(), &st) != 0) {
    throw Error(Exit::failure, "cannot write {}: {}", path, std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode) || st.st_nlink > 1) {
    throw Error(Exit::conflict, "{} is not a regular file with one name: a label is never written into it", path);
  }
  remove.armed = true;
  if (((st.st_mode & 07777) != 0600 && ::fchmod(fd.get(), 0600) != 0) || ::ftruncate(fd.get(), 0) != 0) {
    throw Error(Exit::failure, "cannot write {}: {}", path, std::strerror(errno));
  }
  if (!util::write_fully(fd.get(), data)) {
    throw Error(Exit::failure, "cannot write {}: {}", path, std::strerror(errno));
  }
  if (::close(fd.release()) != 0) {
    throw Error(Exit::failure, "cannot write {}: {}", path, std::strerror(errno));
  }
  remove.armed = false;
}

bool directory_empty(const std::string& path)
{
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(path.c_str()), ::closedir);
  if (!dir) {
    throw Error(Exit::failure, "cannot read directory {}: {}", path, std::strerror(errno));
  }
  while (const dirent* e = ::readdir(dir.get())) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
      return false;
    }
  }
  return true;
}

std::vector<registry::DeviceRecord> batch_devices(Fleet& fleet, const BatchOptions& o)
{
  std::vector<registry::DeviceRecord> devices;
  auto& reg = fleet.registry();
  if (!o.from) {
    reg.for_each_device("active", [&](const registry::DeviceRecord& d) { devices.push_back(d); });
    return devices;
  }
  // Read line by line, each bounded by the longest device id: a file of one huge line costs nothing.
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(o.from->c_str(), "re"), &std::fclose);
  if (!file) {
    throw Error(Exit::failure, "cannot read {}: {}", *o.from, std::strerror(errno));
  }
  std::set<std::string, std::less<>> seen;
  size_t line_no = 0;
  std::string text;
  for (bool more = true; more;) {
    text.clear();
    int c = 0;
    while ((c = getc_unlocked(file.get())) != EOF && c != '\n' && text.size() <= 129) {
      text.push_back(static_cast<char>(c));
    }
    if (c == EOF) {
      if (std::ferror(file.get()) != 0) {
        throw Error(Exit::failure, "cannot read {}: {}", *o.from, std::strerror(errno));
      }
      more = false;
      if (text.empty()) {
        break;
      }
    }
    ++line_no;
    std::string_view line = text;
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    if (line.empty()) {
      continue;
    }
    if (line.size() > 128) {
      throw Error(Exit::usage, "{}:{}: line is longer than 128 bytes (the longest device id)", *o.from, line_no);
    }
    if (!seen.emplace(line).second) {
      throw Error(Exit::usage, "{}:{}: device \"{}\" is listed twice", *o.from, line_no, line);
    }
    auto d = reg.device(line);
    if (!d) {
      throw Error(Exit::not_found, "{}:{}: device \"{}\" is not registered", *o.from, line_no, line);
    }
    if (d->status != "active") {
      throw Error(Exit::conflict, "{}:{}: device \"{}\" is revoked", *o.from, line_no, line);
    }
    devices.push_back(std::move(*d));
  }
  return devices;
}

const char* scheme_name(PairScheme s)
{
  return s == PairScheme::matter ? "matter" : "fleetkey";
}

} // namespace

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

PairingCode make_pairing_code(const pairing::StreamDeriver& deriver, const registry::DeviceRecord& device,
                              const PairOptions& options, const pairing::Spake2p* spake2p)
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
  p.passcode = m.passcode ? static_cast<uint32_t>(parse_number(*m.passcode, 0xffffffff, "--passcode-file"))
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
  auto device = show_device(fleet, id);
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

BatchResult pair_batch(Fleet& fleet, const BatchOptions& o)
{
  check_options(o.pair);
  check_label(o.label, true);
  if (o.pair.matter.passcode) {
    throw Error(Exit::usage, "--passcode-file gives one passcode: a production run derives one per device");
  }
  if (o.out_dir.empty()) {
    throw Error(Exit::usage, "a production run needs -o DIR");
  }
  if (o.jobs < 0 || o.jobs > 256) {
    throw Error(Exit::usage, "--jobs {} is out of range (0-256)", o.jobs);
  }
  auto devices = batch_devices(fleet, o);
  if (o.pair.scheme == PairScheme::matter) {
    for (const auto& d : devices) {
      // Refuse a missing vendor or product id before any file is written.
      matter_field(o.pair.matter.vendor_id, d, "vendor_id", 0xffff, "--vendor-id");
      matter_field(o.pair.matter.product_id, d, "product_id", 0xffff, "--product-id");
    }
  }
  struct stat st
  {
  };
  const bool dir_exists = ::stat(o.out_dir.c_str(), &st) == 0;
  if (dir_exists) {
    if (!S_ISDIR(st.st_mode)) {
      throw Error(Exit::conflict, "{} exists and is not a directory", o.out_dir);
    }
    if (o.overwrite == util::Overwrite::no && !o.resume && !directory_empty(o.out_dir)) {
      throw Error(Exit::conflict, "output directory {} is not empty (use --force to write into it)", o.out_dir)
          .with_reason("file_exists");
    }
    // Refuse before any label is replaced; write_whole checks again as it opens each file.
    for (const auto& d : devices) {
      const auto path = o.out_dir + "/" + label_file_name(d.id, o.label.format);
      if (::lstat(path.c_str(), &st) == 0 && (!S_ISREG(st.st_mode) || st.st_nlink > 1)) {
        throw Error(Exit::conflict, "{} is not a regular file with one name: a label is never written into it", path);
      }
    }
  }
  // Every master key version the devices need, loaded once before the workers start.
  std::map<uint32_t, const crypto::MasterKey*> masters;
  for (const auto& d : devices) {
    if (!masters.count(d.key_version)) {
      masters[d.key_version] = &fleet.master_key(d.key_version);
    }
  }
  if (!dir_exists) {
    util::make_directories(o.out_dir, 0700);
  }

  const bool matter = o.pair.scheme == PairScheme::matter;
  struct Row
  {
    std::string code;
    std::string manual;
    std::string payload;
    std::string file;
    uint16_t discriminator = 0; // Matter
    util::Bytes salt;           // Matter
    bool kept = false;          // --resume: the label was there already
  };
  std::vector<Row> rows(devices.size());
  // Matter: the verifiers, 97 bytes a device, in guarded memory.
  crypto::Secret verifiers(matter ? devices.size() * pairing::k_spake2p_verifier_len : 0);
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  const auto work = [&] {
    try {
      std::map<uint32_t, crypto::MasterDeriver> derivers; // one per thread: an Expander is not shared
      crypto::Secret key(crypto::k_key_len);
      pairing::StreamDeriver streams; // rekeyed per device: no allocation per key
      std::optional<pairing::Spake2p> spake2p;
      if (matter) {
        spake2p.emplace();
      }
      uint8_t fp[16];
      // Small blocks of devices per fetch keep both cores busy to the end.
      constexpr size_t k_block = 16;
      while (!failed) {
        const size_t begin = next.fetch_add(k_block);
        if (begin >= devices.size()) {
          break;
        }
        for (size_t i = begin; i < std::min(begin + k_block, devices.size()); ++i) {
          const auto& d = devices[i];
          auto it = derivers.find(d.key_version);
          if (it == derivers.end()) {
            it = derivers.emplace(d.key_version, crypto::MasterDeriver(*masters.at(d.key_version))).first;
          }
          it->second.device_key(d.id, std::span<uint8_t, crypto::k_key_len>(key.data(), crypto::k_key_len));
          crypto::fingerprint(key.span(), fp);
          if (util::to_hex(fp) != d.fingerprint) {
            throw Error(Exit::key, "device \"{}\": derived key does not match its registered fingerprint", d.id);
          }
          streams.rekey(key.span());
          const auto code = make_pairing_code(streams, d, o.pair, spake2p ? &*spake2p : nullptr);
          Row& row = rows[i];
          row.file = label_file_name(d.id, o.label.format);
          const auto path = o.out_dir + "/" + row.file;
          const auto label = render_label(code.payload, o.label);
          row.kept = o.resume && holds(path, label);
          if (!row.kept) {
            write_whole(path, label, o.resume ? util::Overwrite::yes : o.overwrite);
          }
          row.code = code.code;
          row.manual = code.manual_code;
          if (code.matter) {
            row.discriminator = code.matter->discriminator;
            row.salt = code.salt;
            std::copy(code.verifier.span().begin(), code.verifier.span().end(),
                      verifiers.data() + i * pairing::k_spake2p_verifier_len);
          }
          row.payload = code.payload;
        }
      }
    } catch (...) {
      std::lock_guard lock(error_mutex);
      if (!error) {
        error = std::current_exception();
      }
      failed = true;
    }
  };
  const size_t cores = std::max(1u, std::thread::hardware_concurrency());
  // By default a thread per core, but none for fewer than 64 devices (4 with Matter's verifiers,
  // whose PBKDF2 is the run's work); --jobs N as asked.
  const size_t per_thread = matter ? 4 : 64;
  const size_t jobs = o.jobs > 0 ? std::min(static_cast<size_t>(o.jobs), std::max<size_t>(devices.size(), 1))
                                 : std::min(cores, devices.size() / per_thread + 1);
  {
    util::ThreadPool pool(jobs - 1);
    for (size_t t = 1; t < jobs; ++t) {
      pool.enqueue(work);
    }
    work();
  } // joins
  // Leaves no partial run behind: removes the labels this run wrote (a label that failed removed
  // itself) and DIR if this run created it.
  const auto remove_run = [&] {
    for (const auto& row : rows) {
      if (!row.payload.empty() && !row.kept) {
        ::unlink((o.out_dir + "/" + row.file).c_str());
      }
    }
    if (!dir_exists) {
      ::rmdir(o.out_dir.c_str());
    }
  };
  if (error) {
    remove_run();
    std::rethrow_exception(error);
  }

  BatchResult result;
  result.count = devices.size();
  result.dir = o.out_dir;
  result.manifest = o.out_dir + "/manifest.csv";
  result.iterations = matter ? iterations_of(o.pair) : 0;
  // The files hold passcodes and verifiers: their text is built in guarded memory. Bounds: the
  // quoted fields' lengths plus at most 256 bytes for the rest of a line.
  size_t room = 512;
  for (size_t i = 0; i < devices.size(); ++i) {
    room += csv_field(devices[i].id).size() + csv_field(rows[i].payload).size() + csv_field(rows[i].file).size() + 256;
  }
  const auto verifier_of = [&](size_t i) {
    return std::span<const uint8_t>(verifiers.data() + i * pairing::k_spake2p_verifier_len,
                                    pairing::k_spake2p_verifier_len);
  };
  const auto base64 = [](crypto::SecretText& t, std::span<const uint8_t> bytes) {
    t.append_base64(bytes, sodium_base64_VARIANT_ORIGINAL);
  };
  crypto::SecretText csv(room);
  csv.append(matter ? "device,passcode,manual_code,payload,file,discriminator,iterations,salt,verifier\n"
                    : "device,pin,manual_code,payload,file\n");
  for (size_t i = 0; i < devices.size(); ++i) {
    const auto& r = rows[i];
    csv.append(csv_field(devices[i].id)).append(",").append(r.code).append(",").append(r.manual).append(",");
    csv.append(csv_field(r.payload)).append(",").append(csv_field(r.file));
    if (matter) {
      csv.append(fmt::format(",{},{},", r.discriminator, iterations_of(o.pair)));
      base64(csv, r.salt);
      csv.append(",");
      base64(csv, verifier_of(i));
    }
    csv.append("\n");
  }
  // Matter: the same verifiers in the layouts of connectedhomeip's `spake2p gen-verifier` and of
  // esp-matter-mfg-tool's --csv (the keys) and --mcsv (one row a device), in the manifest's order.
  std::vector<std::pair<std::string, crypto::SecretText>> extra;
  if (matter) {
    crypto::SecretText spake(room);
    crypto::SecretText master(room);
    spake.append("Index,PIN Code,Iteration Count,Salt,Verifier\n");
    master.append("discriminator,iteration-count,salt,verifier\n");
    for (size_t i = 0; i < devices.size(); ++i) {
      spake.append(fmt::format("{},{},{},", i, rows[i].code, iterations_of(o.pair)));
      base64(spake, rows[i].salt);
      spake.append(",");
      base64(spake, verifier_of(i));
      spake.append("\n");
      master.append(fmt::format("{},{},", rows[i].discriminator, iterations_of(o.pair)));
      base64(master, rows[i].salt);
      master.append(",");
      base64(master, verifier_of(i));
      master.append("\n");
    }
    crypto::SecretText config(256);
    config.append("chip-factory,namespace,\ndiscriminator,data,u32\niteration-count,data,u32\n"
                  "salt,data,string\nverifier,data,string\n");
    extra.emplace_back(o.out_dir + "/spake2p.csv", std::move(spake));
    extra.emplace_back(o.out_dir + "/esp-matter-config.csv", std::move(config));
    extra.emplace_back(o.out_dir + "/esp-matter-master.csv", std::move(master));
  }
  auto& reg = fleet.registry();
  std::vector<std::unique_ptr<util::AtomicFile>> files; // the Matter files, then the manifest
  try {
    registry::Transaction tx(reg);
    nlohmann::json details = {
        {"count", result.count}, {"scheme", scheme_name(o.pair.scheme)}, {"manifest", result.manifest}};
    if (matter) {
      details["iterations"] = iterations_of(o.pair);
    }
    reg.audit("device.pair.batch", o.out_dir, details);
    for (const auto& [path, text] : extra) {
      files.push_back(std::make_unique<util::AtomicFile>(path, o.resume ? util::Overwrite::yes : o.overwrite));
      files.back()->write(text.view());
      result.matter_files.push_back(path);
    }
    files.push_back(std::make_unique<util::AtomicFile>(result.manifest, o.resume ? util::Overwrite::yes : o.overwrite));
    files.back()->write(csv.view());
    tx.commit();
  } catch (...) {
    files.clear(); // their temporary files, before DIR is removed
    remove_run();
    throw;
  }
  for (auto& f : files) {
    f->commit();
  }
  return result;
}

} // namespace fleetkey::fleet
