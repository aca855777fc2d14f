// libFuzzer target for the device library's decoders (device/): the first byte picks what the
// rest is: 0 a token, 1 a state document, 2 u16be(n) || a state document of n bytes || a token
// (applied, then checked: the lock's rules past the MAC), 3 base64url text, 4 a handshake response
// after a challenge, 5 channel frames. The lock's key is the K_dev of SN-0001 under the test seed
// of fleetkey-formats(5), so that seeds made with that fleet pass the MAC and mutations go deeper.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fleetkey_device.h>

namespace {

const uint8_t k_dev[32] = {0xef, 0x41, 0x9c, 0xd3, 0xc7, 0xfb, 0x3a, 0x1d, 0xa6, 0x80, 0x46,
                           0x9c, 0x58, 0xf8, 0x4d, 0x10, 0xdf, 0x68, 0x26, 0x04, 0xc6, 0x46,
                           0x9f, 0x07, 0x20, 0x83, 0x13, 0xf2, 0x1d, 0x79, 0xd3, 0x3b};

struct Platform
{
  uint8_t flash[FK_PERSIST_SIZE];
  int stored = 0;
};

int now(void*, uint64_t* t)
{
  *t = 1796083260; // 2026-12-01T00:01:00Z, inside the seeds' validity
  return 0;
}
int load(void* c, uint8_t* b, size_t n)
{
  auto* p = static_cast<Platform*>(c);
  if (!p->stored) {
    return 1;
  }
  std::memcpy(b, p->flash, n);
  return 0;
}
int store(void* c, const uint8_t* b, size_t n)
{
  auto* p = static_cast<Platform*>(c);
  std::memcpy(p->flash, b, n);
  p->stored = 1;
  return 0;
}
int random_bytes(void*, uint8_t* b, size_t n)
{
  std::memset(b, 0x5a, n);
  return 0;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
  if (size < 1) {
    return 0;
  }
  const uint8_t mode = data[0];
  data++;
  size--;
  Platform plat;
  const fk_platform pf = {&plat, now, load, store, random_bytes};
  static uint8_t doc[4096];
  fk_lock lock;
  if (fk_lock_init(&lock, &pf, k_dev, "SN-0001", 7, 1, nullptr, doc, sizeof doc) != FK_OK) {
    __builtin_trap();
  }
  fk_token t;
  fk_state_doc s;
  static const char* const scopes[] = {"owner", "guest"};
  switch (mode % 6) {
  case 0:
    (void)fk_token_decode(data, size, &t);
    (void)fk_lock_check_token(&lock, data, size, scopes, 2, &t);
    break;
  case 1:
    (void)fk_state_decode(data, size, &s);
    (void)fk_lock_apply_state(&lock, data, size);
    break;
  case 2: {
    if (size < 2) {
      break;
    }
    const size_t n = (size_t(data[0]) << 8) | data[1];
    if (n > size - 2) {
      break;
    }
    (void)fk_lock_apply_state(&lock, data + 2, n);
    (void)fk_lock_check_token(&lock, data + 2 + n, size - 2 - n, scopes, 2, &t);
    break;
  }
  case 3: {
    static uint8_t out[8192];
    size_t n = sizeof out;
    (void)fk_base64url_decode(reinterpret_cast<const char*>(data), size, out, &n);
    break;
  }
  case 4: {
    fk_session session;
    uint8_t challenge[FK_CHALLENGE_LEN], confirm[FK_CONFIRM_LEN];
    (void)fk_lock_challenge(&lock, &session, challenge);
    (void)fk_lock_respond(&lock, &session, data, size, scopes, 2, confirm);
    break;
  }
  default: {
    fk_channel ch;
    std::memset(&ch, 0, sizeof ch);
    ch.open = 1;
    uint8_t pt[512];
    for (size_t off = 0; off + 2 <= size;) { // frames as u16be(n) || frame
      const size_t n = (size_t(data[off]) << 8) | data[off + 1];
      if (n > size - off - 2) {
        break;
      }
      size_t k;
      (void)fk_channel_open(&ch, data + off + 2, n, pt, sizeof pt, &k);
      off += 2 + n;
    }
  }
  }
  return 0;
}
