/* A lock's firmware skeleton on bare metal (Cortex-M): what the library needs from a board, and
 * the main loop of fleetkey-device(7). bench/device_size.sh links it to measure the lock side's
 * flash: every call below is the lock side (no phone role, no pairing codes).
 * The board_* functions are weak stubs here; a board support package provides the real ones. */
#include <fleetkey_device.h>

#define FW_DOC_MAX 512

__attribute__((weak)) int board_rtc_seconds(uint64_t* t)
{
  *t = 0;
  return 0;
}
__attribute__((weak)) int board_flash_read(uint8_t* b, size_t n)
{
  (void)b;
  (void)n;
  return 1;
}
__attribute__((weak)) int board_flash_write(const uint8_t* b, size_t n)
{
  (void)b;
  (void)n;
  return 0;
}
__attribute__((weak)) int board_trng(uint8_t* b, size_t n)
{
  while (n--) {
    b[n] = *(volatile const uint8_t*)0x40000000u;
  }
  return 0;
}
__attribute__((weak)) size_t board_receive(uint8_t* b, size_t cap)
{
  (void)b;
  (void)cap;
  return 0;
}
__attribute__((weak)) void board_send(const uint8_t* b, size_t n)
{
  (void)b;
  (void)n;
}
__attribute__((weak)) void board_unlock(void) {}
__attribute__((weak)) void board_factory_key(uint8_t k[32], uint32_t* version)
{
  unsigned i;
  for (i = 0; i < 32; i++) {
    k[i] = *(volatile const uint8_t*)(0x0007f000u + i); /* a key page written at provisioning */
  }
  *version = 1;
}

static int pf_now(void* c, uint64_t* t)
{
  return (void)c, board_rtc_seconds(t);
}
static int pf_load(void* c, uint8_t* b, size_t n)
{
  return (void)c, board_flash_read(b, n);
}
static int pf_store(void* c, const uint8_t* b, size_t n)
{
  return (void)c, board_flash_write(b, n);
}
static int pf_random(void* c, uint8_t* b, size_t n)
{
  return (void)c, board_trng(b, n);
}

int main(void);
int main(void)
{
  static const fk_platform pf = {0, pf_now, pf_load, pf_store, pf_random};
  static const char* const roles[] = {"owner", "guest"};
  static fk_lock lock;
  static fk_session session;
  static uint8_t doc[FW_DOC_MAX], msg[FW_DOC_MAX + 64], out[64];
  uint8_t k_dev[32];
  uint32_t version;
  board_factory_key(k_dev, &version);
  if (fk_lock_init(&lock, &pf, k_dev, "SN-0001", 7, version, 0, doc, sizeof doc) != FK_OK) {
    return 1;
  }
  fk_wipe(k_dev, sizeof k_dev);
  for (;;) {
    size_t n = board_receive(msg, sizeof msg), k;
    fk_status st = FK_MALFORMED;
    if (n == 0) {
      continue;
    }
    switch (msg[0]) {
    case 0x00: /* hello */
      st = fk_lock_challenge(&lock, &session, out);
      n = FK_CHALLENGE_LEN;
      break;
    case 0x02: /* the phone's response */
      st = fk_lock_respond(&lock, &session, msg, n, roles, 2, out);
      n = FK_CONFIRM_LEN;
      break;
    case 0x10: /* a state document, 10 || document */
      st = fk_lock_apply_state(&lock, msg + 1, n - 1);
      out[0] = 0x11;
      n = 1;
      break;
    case 0x20: /* a frame, 20 || frame */
      st = fk_channel_open(&session.ch, msg + 1, n - 1, out, sizeof out, &k);
      if (st == FK_OK && k == 1 && out[0] == 'O') {
        board_unlock();
        st = fk_channel_seal(&session.ch, (const uint8_t*)"K", 1, out, sizeof out, &n);
      }
      break;
    default:
      break;
    }
    if (st != FK_OK) {
      out[0] = 0xee;
      out[1] = (uint8_t)st;
      n = 2;
    }
    board_send(out, n);
  }
}

/* The vector table and reset for the size measurement (the board's startup code in firmware). */
extern uint32_t _estack;
void fw_reset(void);
void fw_reset(void)
{
  (void)main();
}
__attribute__((section(".vectors"), used)) static const void* const fw_vectors[2] = {&_estack, (const void*)fw_reset};
