#pragma once
// The option checks and the code of a registry row that `pair` and a production run
// (pairing_batch.cpp) share; defined in pairing.cpp.

#include <fleetkey/fleet/pairing.hpp>
#include <fleetkey/registry/store.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace fleetkey::fleet {

void check_options(const PairOptions& o);

// The PBKDF2 iterations of a Matter verifier: --iterations, else the default.
uint32_t iterations_of(const PairOptions& o);

// A Matter vendor or product id: the option if given, else the device's label `label`; at most `max`.
uint16_t matter_field(const std::optional<std::string>& option, const Device& d, const char* label, uint64_t max,
                      const char* option_name);
uint16_t matter_field(const std::optional<std::string>& option, const registry::DeviceRecord& d, const char* label,
                      uint64_t max, const char* option_name);

// make_pairing_code (fleet/pairing.hpp) of a device as the registry holds it.
PairingCode make_pairing_code(const pairing::StreamDeriver& streams, const registry::DeviceRecord& device,
                              const PairOptions& options, const pairing::Spake2p* spake2p);

void check_label(const LabelOptions& label, bool batch);

const char* scheme_name(PairScheme s);

} // namespace fleetkey::fleet
