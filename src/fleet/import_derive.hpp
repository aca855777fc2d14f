#pragma once
// Pass 2 of `device import`, the producer: K_dev and its fingerprint derived for batches of
// spilled rows on a worker thread, with the --keys-out lines (import_derive.cpp).

#include "import_spill.hpp"

#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/crypto/secret.hpp>
#include <fleetkey/fleet/import.hpp>
#include <fleetkey/fleet/keys_sink.hpp>
#include <fleetkey/util/file.hpp>
#include <fleetkey/util/thread_pool.hpp>

#include <sodium.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fleetkey::fleet {

constexpr size_t k_batch_rows = 2048;
constexpr size_t k_batches_in_flight = 4;
// A keys-out line: JSON punctuation and names (~60 bytes), the id escaped (at most 2 x 128),
// base64 of the key (44), the version (10) and the fingerprint (32).
constexpr size_t k_max_key_line = 448;

// Rows read back from the spill with their derived keys, handed from the worker to the inserter.
struct Batch
{
  std::string arena;
  std::vector<Offsets> offsets;
  std::string fingerprints; // 32 hex digits a row
  crypto::Secret keys{k_batch_rows * crypto::k_key_len};
  crypto::Secret text{k_batch_rows * k_max_key_line}; // --keys-out lines
  std::vector<size_t> line_ends;
  std::vector<std::string_view> ids; // into arena, for MasterDeriver::device_keys
  bool last = false;

  size_t size() const { return offsets.size(); }
  std::string_view id(size_t i) const { return {arena.data() + offsets[i].id, offsets[i].id_len}; }
};

enum class KeysOut { none, jsonl, csv, nvs };

// The NVS namespace of --keys-out-format nvs, and the longest key name NVS stores.
constexpr std::string_view k_nvs_namespace = "fleetkey";
constexpr size_t k_nvs_key_max = 15;

// The audit digest: SHA-256 over each imported id followed by a line feed.
void hash_id(crypto_hash_sha256_state& digest, std::string_view id);

// Pass 2's producer: reads the spill in batches and derives K_dev and its fingerprint for each
// row on its own thread, at most k_batches_in_flight batches ahead of the inserter.
class Deriver
{
public:
  // Without ids to skip (the registry held no device), every row is imported and the worker
  // also feeds the digest and the keys file, leaving the inserting thread only SQLite's work.
  struct Direct
  {
    crypto_hash_sha256_state* digest = nullptr;
    KeysSink* out = nullptr;
  };

  Deriver(util::InputBuffer& spill, const crypto::MasterKey& mk, KeysOut keys_out, KeyEncoding encoding,
          std::optional<Direct> direct);

  Deriver(const Deriver&) = delete;
  Deriver& operator=(const Deriver&) = delete;

  ~Deriver();

  // The next batch in input order; rethrows the worker's error.
  std::unique_ptr<Batch> pop();

  void recycle(std::unique_ptr<Batch> b);

private:
  void run();

  void fill(Batch& b, const crypto::MasterDeriver& deriver);

  util::InputBuffer& m_spill;
  const crypto::MasterKey& m_key;
  uint32_t m_version;
  KeysOut m_keys_out;
  KeyEncoding m_encoding;
  std::optional<Direct> m_direct;
  std::mutex m_mutex;
  std::condition_variable m_cv;
  std::deque<std::unique_ptr<Batch>> m_ready;
  std::vector<std::unique_ptr<Batch>> m_free;
  std::exception_ptr m_error;
  bool m_cancel = false;
  util::ThreadPool m_worker{1}; // last: starts after, and is joined before, the members above go
};

} // namespace fleetkey::fleet
