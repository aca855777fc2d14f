#pragma once
// Where the master key lives, seen from the code that derives from it: something that computes
// HKDF-Expand(PRK[v], info, L) for a batch of infos, with PRK[v] = HKDF-Extract("fleetkey/v1", MK[v])
// (fleetkey-formats(5), KEY HIERARCHY). The key file's ring computes it in-process; the agent
// (fleetkey agent start) computes it in another process that holds the ring.

#include <fleetkey/util/bytes.hpp>

#include <cstdint>
#include <span>

namespace fleetkey::crypto {

class KeySource
{
public:
  virtual ~KeySource() = default;
  // Writes HKDF-Expand(PRK[version], infos[i], length) to out[i * length, (i + 1) * length) for
  // every i; `out` holds infos.size() * length bytes. Safe to call from several threads at once.
  virtual void expand(uint32_t version, std::span<const util::ByteView> infos, size_t length,
                      std::span<uint8_t> out) const = 0;
};

} // namespace fleetkey::crypto
