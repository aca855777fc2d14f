// Fuzzes the pairing payload builders on fields taken from the input: a Matter record that
// payload_problem() accepts becomes an "MT:" payload and a manual code that read back to the same
// fields; a native PIN and device id become an "FK1:" payload that reads back to the same code
// and id. Any record the builders refuse is refused with a reason, never a crash.
#include <fleetkey/pairing/matter.hpp>
#include <fleetkey/pairing/pin.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

using namespace fleetkey::pairing;

namespace {

void check(bool ok)
{
  if (!ok) {
    std::abort();
  }
}

template<typename T>
T take(const uint8_t*& data, size_t& size)
{
  T v{};
  const size_t n = std::min(sizeof v, size);
  std::memcpy(&v, data, n);
  data += n;
  size -= n;
  return v;
}

void matter(const MatterPayload& p)
{
  if (payload_problem(p)) {
    return;
  }
  const std::string qr = matter_qr(p);
  const auto back = parse_matter_qr(qr);
  check(back.ok());
  check(back->version == p.version && back->vendor_id == p.vendor_id && back->product_id == p.product_id
        && back->flow == p.flow && back->discovery == p.discovery && back->discriminator == p.discriminator
        && back->passcode == p.passcode);
  check(base38_decode(qr.substr(3)).value() == pack(p));
  const std::string manual = matter_manual_code(p);
  const auto code = parse_matter_manual_code(group_manual_code(manual));
  check(code.ok());
  check(code->short_discriminator == p.discriminator >> 8 && code->passcode == p.passcode);
  check(code->long_code == (p.flow != 0));
  if (code->long_code) {
    check(code->vendor_id == p.vendor_id && code->product_id == p.product_id);
  }
}

void native(const uint8_t* data, size_t size)
{
  const int digits = k_min_pin_digits + take<uint8_t>(data, size) % (k_max_pin_digits - k_min_pin_digits + 1);
  std::string pin;
  for (int i = 0; i < digits; ++i) {
    pin += static_cast<char>('0' + take<uint8_t>(data, size) % 10);
  }
  const std::string device(reinterpret_cast<const char*>(data), size);
  const std::string code = with_check_digit(pin);
  const std::string payload = native_payload(code, device);
  const auto back = parse_native_payload(payload);
  if (!back) {
    // Refused only for what the builder does not check: a trivial PIN or a device id that is not
    // 1-128 bytes of printable UTF-8 (device ids are checked when they are registered).
    return;
  }
  check(back->code == code && back->device == device);
  check(!is_trivial_pin(pin));
  const auto typed = parse_native_code(group_code(code));
  check(typed && *typed == code);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
  const uint8_t* p = data;
  size_t n = size;
  MatterPayload m;
  m.version = take<uint8_t>(p, n) & 0x0f;
  m.vendor_id = take<uint16_t>(p, n);
  m.product_id = take<uint16_t>(p, n);
  m.flow = take<uint8_t>(p, n) & 0x07;
  m.discovery = take<uint8_t>(p, n);
  m.discriminator = take<uint16_t>(p, n) & 0x1fff;
  m.passcode = take<uint32_t>(p, n) & 0x0fffffff;
  matter(m);
  if (size > 0) {
    native(data, size);
  }
  return 0;
}
