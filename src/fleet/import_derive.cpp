// The derivation worker of `device import` (pass 2's producer) and the keys file's lines.
#include "import_derive.hpp"

#include <fmt/format.h>

#include <cstring>
#include <span>

namespace fleetkey::fleet {

namespace {

void append_key_line(Batch& b, size_t i, size_t& at, KeysOut format, KeyEncoding encoding, uint32_t key_version)
{
  char* out = reinterpret_cast<char*>(b.text.data());
  const auto put = [&](std::string_view s) {
    std::memcpy(out + at, s.data(), s.size());
    at += s.size();
  };
  const std::string_view id = b.id(i);
  const auto put_csv_field = [&](std::string_view field) {
    // Ids are printable: only a comma or a quote makes the field need quoting.
    if (field.find_first_of(",\"") == std::string_view::npos) {
      put(field);
      return;
    }
    put("\"");
    for (char c : field) {
      put(c == '"' ? std::string_view("\"\"") : std::string_view(&c, 1));
    }
    put("\"");
  };
  // Base64 (44 characters) or hex (64) of the key, with its terminating NUL.
  char encoded[2 * crypto::k_key_len + 1];
  const uint8_t* key = b.keys.data() + i * crypto::k_key_len;
  if (encoding == KeyEncoding::hex) {
    sodium_bin2hex(encoded, sizeof encoded, key, crypto::k_key_len);
  } else {
    sodium_bin2base64(encoded, sizeof encoded, key, crypto::k_key_len, sodium_base64_VARIANT_ORIGINAL);
  }
  const std::string_view key_text(encoded);
  char version[16];
  const auto vlen = fmt::format_to_n(version, sizeof version, "{}", key_version).size;
  const std::string_view fp(b.fingerprints.data() + i * 32, 32);
  if (format == KeysOut::nvs) {
    if (id.size() > k_nvs_key_max) {
      throw Error(Exit::usage,
                  "line {}: device id \"{}\" is longer than {} bytes, the longest NVS key: --keys-out-format nvs "
                  "names each entry by its device id",
                  b.offsets[i].line, id, k_nvs_key_max);
    }
    put_csv_field(id);
    put(encoding == KeyEncoding::hex ? ",data,hex2bin," : ",data,base64,");
    put(key_text);
    put("\n");
  } else if (format == KeysOut::csv) {
    put_csv_field(id);
    put(",");
    put(key_text);
    put(",");
    put({version, vlen});
    put(",");
    put(fp);
    put("\n");
  } else {
    put("{\"id\":\"");
    for (char c : id) {
      if (c == '"' || c == '\\') {
        put("\\");
      }
      put(std::string_view(&c, 1));
    }
    put("\",\"key\":\"");
    put(key_text);
    put("\",\"key_version\":");
    put({version, vlen});
    put(",\"fingerprint\":\"");
    put(fp);
    put("\"}\n");
  }
  sodium_memzero(encoded, sizeof encoded);
}

} // namespace

// The audit digest: SHA-256 over each imported id followed by a line feed.
void hash_id(crypto_hash_sha256_state& digest, std::string_view id)
{
  crypto_hash_sha256_update(&digest, reinterpret_cast<const uint8_t*>(id.data()), id.size());
  crypto_hash_sha256_update(&digest, reinterpret_cast<const uint8_t*>("\n"), 1);
}

Deriver::Deriver(util::InputBuffer& spill, const crypto::MasterKey& mk, KeysOut keys_out, KeyEncoding encoding,
                 std::optional<Direct> direct)
    : m_spill(spill)
    , m_key(mk)
    , m_version(mk.version)
    , m_keys_out(keys_out)
    , m_encoding(encoding)
    , m_direct(direct)
{
  for (size_t i = 0; i < k_batches_in_flight; ++i) {
    m_free.push_back(std::make_unique<Batch>());
  }
  m_worker.enqueue([this] { run(); });
}

Deriver::~Deriver()
{
  {
    std::lock_guard lock(m_mutex);
    m_cancel = true;
  }
  m_cv.notify_all();
  m_worker.shut_down();
}

std::unique_ptr<Batch> Deriver::pop()
{
  std::unique_lock lock(m_mutex);
  m_cv.wait(lock, [this] { return !m_ready.empty() || m_error; });
  if (m_ready.empty()) {
    std::rethrow_exception(m_error);
  }
  auto b = std::move(m_ready.front());
  m_ready.pop_front();
  return b;
}

void Deriver::recycle(std::unique_ptr<Batch> b)
{
  {
    std::lock_guard lock(m_mutex);
    m_free.push_back(std::move(b));
  }
  m_cv.notify_all();
}

void Deriver::run()
{
  try {
    const crypto::MasterDeriver deriver(m_key);
    for (bool last = false; !last;) {
      std::unique_ptr<Batch> b;
      {
        std::unique_lock lock(m_mutex);
        m_cv.wait(lock, [this] { return !m_free.empty() || m_cancel; });
        if (m_cancel) {
          return;
        }
        b = std::move(m_free.back());
        m_free.pop_back();
      }
      fill(*b, deriver);
      if (m_direct) {
        for (size_t i = 0; i < b->size(); ++i) {
          hash_id(*m_direct->digest, b->id(i));
        }
        if (m_direct->out != nullptr && b->size() > 0) {
          m_direct->out->write(std::string_view(reinterpret_cast<const char*>(b->text.data()), b->line_ends.back()));
        }
      }
      last = b->last;
      {
        std::lock_guard lock(m_mutex);
        m_ready.push_back(std::move(b));
      }
      m_cv.notify_all();
    }
  } catch (...) {
    {
      std::lock_guard lock(m_mutex);
      m_error = std::current_exception();
    }
    m_cv.notify_all();
  }
}

void Deriver::fill(Batch& b, const crypto::MasterDeriver& deriver)
{
  b.arena.clear();
  b.offsets.clear();
  b.line_ends.clear();
  Offsets o;
  while (b.offsets.size() < k_batch_rows && read_record(m_spill, b.arena, o)) {
    b.offsets.push_back(o);
  }
  b.last = b.offsets.size() < k_batch_rows;
  b.fingerprints.resize(b.size() * 32);
  // The whole batch in one call: one request when the agent holds the key.
  b.ids.clear();
  for (size_t i = 0; i < b.size(); ++i) {
    b.ids.push_back(b.id(i));
  }
  deriver.device_keys(b.ids, std::span(b.keys.data(), b.size() * crypto::k_key_len));
  size_t at = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    const std::span<uint8_t, crypto::k_key_len> key(b.keys.data() + i * crypto::k_key_len, crypto::k_key_len);
    uint8_t fp[16];
    crypto::fingerprint(key, fp);
    char hex[33];
    sodium_bin2hex(hex, sizeof hex, fp, sizeof fp);
    std::memcpy(b.fingerprints.data() + i * 32, hex, 32);
    if (m_keys_out != KeysOut::none) {
      append_key_line(b, i, at, m_keys_out, m_encoding, m_version);
      b.line_ends.push_back(at);
    }
  }
}

} // namespace fleetkey::fleet
