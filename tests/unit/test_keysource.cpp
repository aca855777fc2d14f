// MasterDeriver over a KeySource (the agent's path) gives what it gives over the key itself.
#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/crypto/keyfile.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

using namespace fleetkey;

namespace {

// Computes HKDF-Expand(PRK, info, L) as the agent does, and counts the requests.
class LocalSource final : public crypto::KeySource
{
public:
  explicit LocalSource(const crypto::Secret& mk)
      : m_prk(crypto::hkdf_extract(util::as_bytes(crypto::k_salt), mk.span()).span())
  {
  }
  void expand(uint32_t version, std::span<const util::ByteView> infos, size_t length,
              std::span<uint8_t> out) const override
  {
    REQUIRE(version == 3);
    REQUIRE(out.size() == infos.size() * length);
    ++requests;
    for (size_t i = 0; i < infos.size(); ++i) {
      m_prk.expand(infos[i], out.subspan(i * length, length));
    }
  }
  mutable std::atomic<int> requests{0};

private:
  crypto::Expander m_prk;
};

bool same(const crypto::Secret& a, const crypto::Secret& b)
{
  return crypto::equal(a.span(), b.span());
}

} // namespace

TEST_CASE("a MasterDeriver over a KeySource derives byte for byte what the key gives")
{
  auto mk = crypto::Secret::random(crypto::k_key_len);
  auto source = std::make_shared<LocalSource>(mk);
  crypto::MasterKey held;
  held.version = 3;
  held.source = source;
  held.source_fingerprint = "f";
  const crypto::MasterDeriver local(mk);
  const crypto::MasterDeriver remote(held);
  CHECK(held.fingerprint() == "f");

  CHECK(same(local.device_key("SN-1"), remote.device_key("SN-1")));
  CHECK(same(local.token_key("hmac256/64"), remote.token_key("hmac256/64")));
  CHECK(same(local.derive(crypto::Info("x").add_u64(7), 77), remote.derive(crypto::Info("x").add_u64(7), 77)));
  CHECK(source->requests == 3);

  // A batch is one request, and equals the keys one by one.
  std::vector<std::string> names;
  for (int i = 0; i < 300; ++i) {
    names.push_back("device-" + std::to_string(i * 7919));
  }
  std::vector<std::string_view> ids(names.begin(), names.end());
  crypto::Secret batch(ids.size() * crypto::k_key_len);
  crypto::Secret one_by_one(ids.size() * crypto::k_key_len);
  remote.device_keys(ids, batch.span());
  CHECK(source->requests == 4);
  local.device_keys(ids, one_by_one.span());
  CHECK(same(batch, one_by_one));
  for (size_t i = 0; i < ids.size(); i += 97) {
    const auto k = local.device_key(ids[i]);
    CHECK(std::equal(k.span().begin(), k.span().end(), batch.data() + i * crypto::k_key_len));
  }
}

TEST_CASE("a key ring held elsewhere cannot be written to a file")
{
  crypto::MasterKey held;
  held.version = 1;
  held.source = std::make_shared<LocalSource>(crypto::Secret::random(crypto::k_key_len));
  std::vector<crypto::MasterKey> versions;
  versions.push_back(std::move(held));
  const auto ring = crypto::Keyring::held_elsewhere(std::move(versions), 1, true);
  CHECK(ring.is_test_key());
  CHECK(ring.current_version() == 1);
  CHECK_THROWS_AS(ring.serialize(), Error);
}
