#pragma once
// fleetkey's own pairing codes, specified byte by byte in fleetkey-pairing(5):
//
//   stream(label, n) = HKDF-Expand(PRK_dev(D), info(label, n), L), read as 8-byte big-endian words
//   PIN(D, n)        = the first word w of stream("pairing", n) with w < floor(2^64 / 10^N) * 10^N
//                      whose N-digit decimal form of (w mod 10^N) is not trivial
//   code             = PIN || Verhoeff(PIN)          shown as "4821-0937-4"
//   payload          = "FK1:" code ":" device-id    the QR code's text

#include <fleetkey/pairing/stream.hpp>
#include <fleetkey/util/result.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace fleetkey::pairing {

inline constexpr int k_min_pin_digits = 6;
inline constexpr int k_max_pin_digits = 12;
inline constexpr int k_default_pin_digits = 8;
inline constexpr std::string_view k_payload_scheme = "FK";
inline constexpr int k_payload_version = 1;

// The first word of `info`'s stream that is below the largest multiple of `bound` (so that
// w mod bound is uniform) and whose residue `accept` takes, as that residue. The stream is read
// 64 bytes first and, in the rare case that every word of those is rejected, as the whole
// 8160-byte HKDF-Expand output (whose first 64 bytes are the same); throws Error past that.
uint64_t sample(const StreamDeriver& device, const crypto::Info& info, uint64_t bound,
                const std::function<bool(uint64_t)>& accept);

// One digit repeated, or each digit one more (ascending) or one less (descending) than the one
// before it, modulo 10: "00000000", "12345678", "78901234", "98765432", "21098765".
bool is_trivial_pin(std::string_view digits);

// PIN(D, n) of `digits` digits (6-12), without its check digit.
std::string derive_pin(const StreamDeriver& device, uint64_t counter, int digits);

// PIN followed by its Verhoeff digit.
std::string with_check_digit(std::string_view pin);

// Groups of four from the left, the check digit alone: "4821-0937-4"; 6 digits: "4821-09-3".
std::string group_code(std::string_view code);

std::string native_payload(std::string_view code, std::string_view device_id);

struct NativePayload
{
  std::string code; // PIN and check digit
  std::string device;
};

// Checks everything but whether the PIN belongs to the device: scheme, version, digits, length,
// check digit, triviality and the device id's form. The error says what is wrong.
Result<NativePayload> parse_native_payload(std::string_view payload);
// A typed code: digits with optional '-' or ' ' between them; checks length, digit and triviality.
Result<std::string> parse_native_code(std::string_view typed);

} // namespace fleetkey::pairing
