/* The device test suite on an emulated Cortex-M3 (qemu-system-arm -M mps2-an385), reporting
 * through semihosting, and the stack each lock operation uses, measured by painting. */
#include "fk_tests.h"
#include "fk_vectors.h"

#include <fleetkey_device.h>
#include <string.h>

extern uint32_t _sbss, _ebss, _estack;
int main(void);
void reset_handler(void);
void fault_handler(void);

static int semihost(int op, const void* arg)
{
  register int r0 __asm__("r0") = op;
  register const void* r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

static void print(const char* s)
{
  semihost(0x04, s); /* SYS_WRITE0 */
}

static void semihost_exit(int ok)
{
  semihost(0x18, (const void*)(ok ? 0x20026 : 0x20023)); /* ApplicationExit, else RunTimeErrorUnknown */
  for (;;) {
  }
}

__attribute__((section(".vectors"), used)) static const void* const vectors[16] = {&_estack,
                                                                                   (const void*)reset_handler,
                                                                                   (const void*)fault_handler,
                                                                                   (const void*)fault_handler,
                                                                                   (const void*)fault_handler,
                                                                                   (const void*)fault_handler,
                                                                                   (const void*)fault_handler};

void fault_handler(void)
{
  print("fault\n");
  semihost_exit(0);
}

void reset_handler(void)
{
  uint32_t* p;
  for (p = &_sbss; p < &_ebss; p++) {
    *p = 0;
  }
  semihost_exit(main() == 0);
}

/* ---- stack measurement: paint below the caller's frame, run one operation, find the deepest
 * word written. The figure is the library's own use, from its entry point down. */
#define PAINT_WORDS 2048
static uint32_t* g_paint_low;

static __attribute__((noinline)) void paint(void)
{
  uintptr_t sp;
  unsigned i;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  g_paint_low = (uint32_t*)(sp - 64 - 4 * PAINT_WORDS); /* below this frame */
  for (i = 0; i < PAINT_WORDS; i++) {
    g_paint_low[i] = 0xdeadbeefu;
  }
}

/* Bytes from the caller's stack pointer down to the deepest word written. */
static unsigned used_below(uintptr_t sp)
{
  unsigned i;
  for (i = 0; i < PAINT_WORDS && g_paint_low[i] == 0xdeadbeefu; i++) {
  }
  return (unsigned)(sp - (uintptr_t)(g_paint_low + i));
}

static void print_uint(unsigned v)
{
  char b[12];
  int i = 11;
  b[i] = 0;
  do {
    b[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  print(b + i);
}

typedef struct m3_platform
{
  uint64_t now;
  uint8_t flash[FK_PERSIST_SIZE];
  int stored;
  const uint8_t* rnd;
} m3_platform;
static int m_now(void* c, uint64_t* t)
{
  *t = ((m3_platform*)c)->now;
  return 0;
}
static int m_load(void* c, uint8_t* b, size_t n)
{
  m3_platform* p = (m3_platform*)c;
  if (!p->stored) {
    return 1;
  }
  memcpy(b, p->flash, n);
  return 0;
}
static int m_store(void* c, const uint8_t* b, size_t n)
{
  m3_platform* p = (m3_platform*)c;
  memcpy(p->flash, b, n);
  p->stored = 1;
  return 0;
}
static int m_random(void* c, uint8_t* b, size_t n)
{
  memcpy(b, ((m3_platform*)c)->rnd, n);
  return 0;
}

static const v_step* step(const char* name)
{
  size_t i;
  for (i = 0; i < sizeof v_steps / sizeof v_steps[0]; i++) {
    if (strcmp(v_steps[i].name, name) == 0) {
      return &v_steps[i];
    }
  }
  return &v_steps[0];
}

static fk_lock g_lock;
static fk_session g_ls, g_ps;
static uint8_t g_doc[1024], g_tok[600], g_m2[700], g_m3[FK_CONFIRM_LEN], g_m1[FK_CHALLENGE_LEN], g_fr[64], g_pt[64];
static size_t g_tok_len, g_m2_len, g_fr_len, g_pt_len;
static fk_platform g_pf, g_ppf;
static m3_platform g_mp, g_pp;
static fk_status g_st;

static void report(const char* what, unsigned bytes)
{
  print("stack ");
  print(what);
  print(" ");
  print_uint(bytes);
  print(g_st == FK_OK ? "\n" : " (FAILED)\n");
}

#define MEASURE(name, call)                                                                                            \
  do {                                                                                                                 \
    uintptr_t sp0;                                                                                                     \
    __asm__ volatile("mov %0, sp" : "=r"(sp0));                                                                        \
    paint();                                                                                                           \
    g_st = (call);                                                                                                     \
    report(name, used_below(sp0));                                                                                     \
    if (g_st != FK_OK) {                                                                                               \
      failures++;                                                                                                      \
    }                                                                                                                  \
  } while (0)

static int measure(void)
{
  int failures = 0;
  const v_step* sb = step("state_b");
  g_pf.ctx = &g_mp;
  g_pf.now = m_now;
  g_pf.load = m_load;
  g_pf.store = m_store;
  g_pf.random = m_random;
  g_ppf = g_pf;
  g_ppf.ctx = &g_pp;
  g_mp.rnd = v_hs_n_lock;
  g_pp.rnd = v_hs_n_phone;
  g_mp.now = V_HS_NOW;
  g_tok_len = sizeof g_tok;
  fk_base64url_decode(v_hs_token, strlen(v_hs_token), g_tok, &g_tok_len);
  MEASURE("fk_lock_init",
          fk_lock_init(&g_lock, &g_pf, v_k_dev, V_DEVICE_ID, strlen(V_DEVICE_ID), 1, NULL, g_doc, sizeof g_doc));
  MEASURE("fk_lock_apply_state", fk_lock_apply_state(&g_lock, sb->doc, sb->doc_len));
  MEASURE("fk_lock_check_token", fk_lock_check_token(&g_lock, g_tok, g_tok_len, NULL, 0, NULL));
  MEASURE("fk_lock_challenge", fk_lock_challenge(&g_lock, &g_ls, g_m1));
  g_m2_len = sizeof g_m2;
  MEASURE("fk_phone_response", fk_phone_response(&g_ps, &g_ppf, g_m1, sizeof g_m1, V_DEVICE_ID, strlen(V_DEVICE_ID),
                                                 v_k_user_alice_2, g_tok, g_tok_len, g_m2, &g_m2_len));
  MEASURE("fk_lock_respond", fk_lock_respond(&g_lock, &g_ls, g_m2, g_m2_len, NULL, 0, g_m3));
  MEASURE("fk_phone_confirm", fk_phone_confirm(&g_ps, V_DEVICE_ID, strlen(V_DEVICE_ID), g_m3, sizeof g_m3));
  MEASURE("fk_channel_seal", fk_channel_seal(&g_ps.ch, (const uint8_t*)"open", 4, g_fr, sizeof g_fr, &g_fr_len));
  MEASURE("fk_channel_open", fk_channel_open(&g_ls.ch, g_fr, g_fr_len, g_pt, sizeof g_pt, &g_pt_len));
  {
    char code[16];
    MEASURE("fk_pairing_code", fk_pairing_code(&g_lock.dev, 0, 8, code, sizeof code));
  }
  return failures;
}

int main(void)
{
  int rc;
  print("fleetkey device tests on Cortex-M3\n");
  rc = fk_run_tests(print);
  rc |= measure();
  print(rc == 0 ? "PASS\n" : "FAIL\n");
  return rc;
}
