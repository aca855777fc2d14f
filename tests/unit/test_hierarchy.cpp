// The key hierarchy against the worked example of fleetkey-formats(5), recomputed independently
// with Python's hmac when it was written.
#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/crypto/keyfile.hpp>
#include <fleetkey/util/bytes.hpp>

#include <doctest/doctest.h>

using namespace fleetkey;

namespace {
crypto::Secret seed()
{
  return crypto::Secret::copy_of(*util::from_hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"));
}
std::string hex(const crypto::Secret& s)
{
  return util::to_hex(s.span());
}
} // namespace

TEST_CASE("the worked example of fleetkey-formats(5)")
{
  auto ring = crypto::Keyring::create(1700000000, seed());
  const auto& mk = ring.current().key;
  CHECK(hex(mk) == "0471ec73569bdf0e791e605ddd94d7de6fadcdc1b7158118dd7cc1ad51a013f7");
  CHECK(crypto::fingerprint(mk.span()) == "46dd0fcf04f1426d2a34d8aaa19c08dd");

  const crypto::MasterDeriver master(mk);
  const auto kdev = master.device_key("SN-0001");
  CHECK(hex(kdev) == "ef419cd3c7fb3a1da680469c58f84d10df682604c6469f07208313f21d79d33b");
  CHECK(crypto::fingerprint(kdev.span()) == "8cd660a9aea4d2726388577ff31c2279");

  const crypto::DeviceDeriver dev(kdev);
  CHECK(hex(dev.user_key("alice", 1)) == "9bc8832d1d9f1a7faeefbee7da0f66ad1243ca3ccf45c1b426f8b34d708386d9");
  CHECK(hex(dev.purpose_key("enc")) == "69f36dc9aa92c36aa3668372c469a156fb56eb4e35f550718e0eb27d6db7906c");
}

TEST_CASE("the batch form of device_key equals the allocating form")
{
  auto ring = crypto::Keyring::create(1700000000, seed());
  const crypto::MasterDeriver master(ring.current().key);
  for (const char* id : {"a", "SN-0001", "ünïcode-Ω", "x"}) {
    uint8_t out[32];
    master.device_key(id, out);
    CHECK(util::to_hex(out) == hex(master.device_key(id)));
  }
}

TEST_CASE("keys differ by every input")
{
  auto ring = crypto::Keyring::create(1700000000, seed());
  const crypto::MasterDeriver master(ring.current().key);
  const auto a = master.device_key("SN-1");
  const auto b = master.device_key("SN-2");
  CHECK(hex(a) != hex(b));
  const crypto::DeviceDeriver dev(a);
  CHECK(hex(dev.user_key("alice", 1)) != hex(dev.user_key("alice", 2)));
  CHECK(hex(dev.user_key("alice", 1)) != hex(dev.user_key("alicf", 1)));
  CHECK(hex(dev.token_key("a")) != hex(dev.token_key("b")));
  CHECK(hex(dev.token_key("a")) != hex(master.token_key("a")));
  CHECK(hex(dev.revocation_key()) != hex(dev.purpose_key("revocations")));
  CHECK(dev.pairing_bytes(7, 40).size() == 40);
}

TEST_CASE("test-seed rotation is deterministic and random keys are not")
{
  auto r1 = crypto::Keyring::create(1, seed());
  auto r2 = crypto::Keyring::create(2, seed());
  r1.rotate(3);
  r2.rotate(4);
  CHECK(hex(r1.get(2).key) == hex(r2.get(2).key));
  CHECK(hex(r1.get(1).key) != hex(r1.get(2).key));
  auto x = crypto::Keyring::create(1);
  auto y = crypto::Keyring::create(1);
  CHECK(hex(x.current().key) != hex(y.current().key));
  CHECK_FALSE(x.is_test_key());
}
