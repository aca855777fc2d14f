#pragma once
// Matter onboarding codes (Matter Core Specification 5.1): the QR payload "MT:" + base38 of the
// 88-bit packed record, and the 11- or 21-digit manual pairing code. Layouts in fleetkey-pairing(5).

#include <fleetkey/pairing/stream.hpp>
#include <fleetkey/util/bytes.hpp>
#include <fleetkey/util/result.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fleetkey::pairing {

inline constexpr std::string_view k_base38_alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-.";
inline constexpr uint32_t k_max_passcode = 99999998;

enum class MatterFlow : uint8_t { standard = 0, user_intent = 1, custom = 2 };

// Discovery capabilities bitmask.
inline constexpr uint8_t k_discovery_softap = 1;
inline constexpr uint8_t k_discovery_ble = 2;
inline constexpr uint8_t k_discovery_on_network = 4;

struct MatterPayload
{
  uint8_t version = 0; // 3 bits; 0 is the only version defined
  uint16_t vendor_id = 0;
  uint16_t product_id = 0;
  uint8_t flow = 0; // MatterFlow, 2 bits
  uint8_t discovery = k_discovery_ble;
  uint16_t discriminator = 0; // 12 bits
  uint32_t passcode = 0;      // 27 bits, 1..99999998 and not a forbidden value
};

// Why a passcode is refused, or nullopt for a valid one: 0, above 99999998, eight repeated
// digits (11111111 ... 99999999), 12345678, 87654321.
std::optional<std::string> passcode_problem(uint64_t passcode);

// Why the fields cannot form a payload (ranges, reserved flow, empty discovery), or nullopt.
std::optional<std::string> payload_problem(const MatterPayload& p);

// Base38: each 3 bytes (little endian) become 5 characters, least significant first; a final 2
// bytes become 4 characters and a final byte 2.
std::string base38_encode(util::ByteView bytes);
Result<util::Bytes> base38_decode(std::string_view text);

// The 11 bytes of the packed record, least significant bit first. Requires a valid payload.
util::Bytes pack(const MatterPayload& p);
std::string matter_qr(const MatterPayload& p);          // "MT:..."
std::string matter_manual_code(const MatterPayload& p); // 11 digits, or 21 for a non-standard flow
// "3497-011-2332"; 21 digits: "3497-011-2332-12345-67890".
std::string group_manual_code(std::string_view code);

// Reads "MT:" + base38 back; refuses bad characters, lengths, versions, padding and passcodes.
Result<MatterPayload> parse_matter_qr(std::string_view text);

struct ManualCode
{
  uint8_t short_discriminator = 0; // the upper 4 bits of the 12-bit discriminator
  uint32_t passcode = 0;
  bool long_code = false; // 21 digits: vendor and product id follow
  uint16_t vendor_id = 0;
  uint16_t product_id = 0;
};

// Reads 11 or 21 digits ('-' and ' ' between them are ignored) and checks the Verhoeff digit.
Result<ManualCode> parse_matter_manual_code(std::string_view typed);

// The passcode and discriminator of device D at pairing counter n: uniform over the valid
// values, from the streams "pairing-matter-passcode" and "pairing-matter-discriminator".
uint32_t derive_passcode(const StreamDeriver& device, uint64_t counter);
uint16_t derive_discriminator(const StreamDeriver& device, uint64_t counter);

} // namespace fleetkey::pairing
