/* The device library's test suite: RFC known answers and every vector fleetkey generated
 * (fk_vectors.h, from gen_vectors.py). The same code runs on the host and on a Cortex-M3. */
#include "fk_tests.h"
#include "fk_vectors.h"

#include <fleetkey_device.h>
#include <string.h>

static void (*g_print)(const char*);
static unsigned g_failures, g_checks;

static void put_uint(unsigned long v)
{
  char b[24];
  int i = 23;
  b[i] = 0;
  do {
    b[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  g_print(b + i);
}

static void check(int ok, const char* what, int line)
{
  g_checks++;
  if (!ok) {
    g_failures++;
    g_print("FAIL line ");
    put_uint((unsigned long)line);
    g_print(": ");
    g_print(what);
    g_print("\n");
  }
}
#define CHECK(x) check((x) != 0, #x, __LINE__)
#define CHECK_ST(got, want) check_status((got), (want), #got, __LINE__)

static void check_status(fk_status got, fk_status want, const char* what, int line)
{
  check(got == want, what, line);
  if (got != want) {
    g_print("  got ");
    g_print(fk_status_name(got));
    g_print(", want ");
    g_print(fk_status_name(want));
    g_print("\n");
  }
}

static int unhex(const char* h, uint8_t* out, size_t n)
{
  size_t i;
  for (i = 0; i < n; i++) {
    unsigned v = 0, k;
    for (k = 0; k < 2; k++) {
      char c = h[2 * i + k];
      v = v * 16 + (unsigned)(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    out[i] = (uint8_t)v;
  }
  return h[2 * n] == 0;
}

/* A platform in RAM: a settable clock, 28 bytes of "flash", scripted random bytes. */
typedef struct test_platform
{
  uint64_t now;
  uint8_t flash[FK_PERSIST_SIZE];
  int stored, fail_store;
  const uint8_t* rnd;
  size_t rnd_len;
} test_platform;

static int tp_now(void* ctx, uint64_t* t)
{
  *t = ((test_platform*)ctx)->now;
  return 0;
}
static int tp_load(void* ctx, uint8_t* b, size_t n)
{
  test_platform* p = (test_platform*)ctx;
  if (!p->stored) {
    return 1;
  }
  memcpy(b, p->flash, n);
  return 0;
}
static int tp_store(void* ctx, const uint8_t* b, size_t n)
{
  test_platform* p = (test_platform*)ctx;
  if (p->fail_store) {
    return -1;
  }
  memcpy(p->flash, b, n);
  p->stored = 1;
  return 0;
}
static int tp_random(void* ctx, uint8_t* b, size_t n)
{
  test_platform* p = (test_platform*)ctx;
  size_t i;
  for (i = 0; i < n; i++) {
    b[i] = p->rnd_len ? p->rnd[i % p->rnd_len] : (uint8_t)(0xa5 ^ i);
  }
  return 0;
}

static uint8_t g_doc[1024];

static void lock_new(fk_lock* l, fk_platform* pf, test_platform* tp, const fk_lock_config* cfg)
{
  pf->ctx = tp;
  pf->now = tp_now;
  pf->load = tp_load;
  pf->store = tp_store;
  pf->random = tp_random;
  CHECK_ST(fk_lock_init(l, pf, v_k_dev, V_DEVICE_ID, strlen(V_DEVICE_ID), 1, cfg, g_doc, sizeof g_doc), FK_OK);
}

static void test_sha_hkdf(void)
{
  uint8_t out[82], prk[32], want[82], ikm[80], salt[80], info[80];
  fk_sha256 c;
  size_t i;
  fk_sha256_init(&c);
  fk_sha256_update(&c, (const uint8_t*)"abc", 3);
  fk_sha256_final(&c, out);
  unhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", want, 32);
  CHECK(memcmp(out, want, 32) == 0);
  /* RFC 5869 A.1 */
  memset(ikm, 0x0b, 22);
  unhex("000102030405060708090a0b0c", salt, 13);
  unhex("f0f1f2f3f4f5f6f7f8f9", info, 10);
  fk_hkdf_extract(salt, 13, ikm, 22, prk);
  unhex("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5", want, 32);
  CHECK(memcmp(prk, want, 32) == 0);
  CHECK_ST(fk_hkdf_expand(prk, info, 10, out, 42), FK_OK);
  unhex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865", want, 42);
  CHECK(memcmp(out, want, 42) == 0);
  /* A.2: long inputs, several blocks */
  for (i = 0; i < 80; i++) {
    ikm[i] = (uint8_t)i;
    salt[i] = (uint8_t)(0x60 + i);
    info[i] = (uint8_t)(0xb0 + i);
  }
  fk_hkdf_extract(salt, 80, ikm, 80, prk);
  unhex("06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244", want, 32);
  CHECK(memcmp(prk, want, 32) == 0);
  CHECK_ST(fk_hkdf_expand(prk, info, 80, out, 82), FK_OK);
  unhex("b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f0"
        "9b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87",
        want, 82);
  CHECK(memcmp(out, want, 82) == 0);
  /* A.3: empty salt and info */
  memset(ikm, 0x0b, 22);
  fk_hkdf_extract(NULL, 0, ikm, 22, prk);
  CHECK_ST(fk_hkdf_expand(prk, NULL, 0, out, 42), FK_OK);
  unhex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8", want, 42);
  CHECK(memcmp(out, want, 42) == 0);
  CHECK_ST(fk_hkdf_expand(prk, NULL, 0, out, 255 * 32 + 1), FK_INVALID_ARGUMENT);
  CHECK(fk_equal(want, want, 42) == 1);
  want[41] ^= 0x80;
  CHECK(fk_equal(out, want, 42) == 0);
}

static void test_aead(void)
{
  static const char pt[] =
      "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, "
      "sunscreen would be it.";
  uint8_t key[32], nonce[12], aad[12], ct[114], tag[16], want[130], back[114];
  size_t i;
  for (i = 0; i < 32; i++) {
    key[i] = (uint8_t)(0x80 + i);
  }
  unhex("070000004041424344454647", nonce, 12);
  unhex("50515253c0c1c2c3c4c5c6c7", aad, 12);
  unhex("d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b"
        "2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586ce"
        "c64b61161ae10b594f09e26a7e902ecbd0600691",
        want, 130);
  fk_aead_seal(key, nonce, aad, 12, (const uint8_t*)pt, 114, ct, tag);
  CHECK(memcmp(ct, want, 114) == 0);
  CHECK(memcmp(tag, want + 114, 16) == 0);
  CHECK_ST(fk_aead_open(key, nonce, aad, 12, ct, 114, tag, back), FK_OK);
  CHECK(memcmp(back, pt, 114) == 0);
  ct[113] ^= 1;
  CHECK_ST(fk_aead_open(key, nonce, aad, 12, ct, 114, tag, back), FK_BAD_MAC);
  ct[113] ^= 1;
  aad[0] ^= 1;
  CHECK_ST(fk_aead_open(key, nonce, aad, 12, ct, 114, tag, back), FK_BAD_MAC);
  for (i = 0; i < sizeof v_aead_cases / sizeof v_aead_cases[0]; i++) {
    const v_aead* v = &v_aead_cases[i];
    uint8_t c2[160], t2[16], p2[160];
    fk_aead_seal(v->key, v->nonce, v->aad, v->aad_len, v->pt, v->pt_len, c2, t2);
    CHECK(memcmp(c2, v->ct, v->pt_len) == 0 && memcmp(t2, v->ct + v->pt_len, 16) == 0);
    CHECK_ST(fk_aead_open(v->key, v->nonce, v->aad, v->aad_len, v->ct, v->pt_len, v->ct + v->pt_len, p2), FK_OK);
    CHECK(memcmp(p2, v->pt, v->pt_len) == 0);
  }
}

static void test_keys(void)
{
  fk_device d;
  uint8_t k[32];
  char code[16];
  uint32_t passcode = 0;
  uint16_t disc = 0;
  CHECK_ST(fk_device_init(&d, v_k_dev, V_DEVICE_ID, strlen(V_DEVICE_ID), 1), FK_OK);
  CHECK_ST(fk_user_key(&d, "alice", 5, 1, k), FK_OK);
  CHECK(memcmp(k, v_k_user_alice_1, 32) == 0);
  CHECK_ST(fk_user_key(&d, "alice", 5, 2, k), FK_OK);
  CHECK(memcmp(k, v_k_user_alice_2, 32) == 0);
  CHECK_ST(fk_purpose_key(&d, "enc", 3, k), FK_OK);
  CHECK(memcmp(k, v_k_purpose_enc, 32) == 0);
  CHECK_ST(fk_pairing_code(&d, 0, V_PIN_DIGITS, code, sizeof code), FK_OK);
  CHECK(strcmp(code, V_PIN_CODE) == 0);
  CHECK_ST(fk_pairing_code(&d, 0, 13, code, sizeof code), FK_INVALID_ARGUMENT);
  CHECK_ST(fk_matter_passcode(&d, 0, &passcode, &disc), FK_OK);
  CHECK(passcode == V_MATTER_PASSCODE);
  CHECK(disc == V_MATTER_DISCRIMINATOR);
  CHECK_ST(fk_device_init(&d, v_k_dev, V_DEVICE_ID, 0, 1), FK_INVALID_ARGUMENT);
}

static fk_status check_text(fk_lock* l, const char* text, const char* scope, fk_token* t)
{
  uint8_t buf[600];
  size_t n = sizeof buf;
  const char* scopes[1];
  fk_status st = fk_base64url_decode(text, strlen(text), buf, &n);
  scopes[0] = scope;
  if (st != FK_OK) {
    return st;
  }
  return fk_lock_check_token(l, buf, n, scopes, scope ? 1 : 0, t);
}

static const v_step* find_step(const char* name)
{
  size_t i;
  for (i = 0; i < sizeof v_steps / sizeof v_steps[0]; i++) {
    if (strcmp(v_steps[i].name, name) == 0) {
      return &v_steps[i];
    }
  }
  return NULL;
}

static void test_steps(void)
{
  test_platform tp;
  fk_platform pf;
  fk_lock l;
  fk_token t;
  size_t i;
  memset(&tp, 0, sizeof tp);
  lock_new(&l, &pf, &tp, NULL);
  for (i = 0; i < sizeof v_steps / sizeof v_steps[0]; i++) {
    const v_step* s = &v_steps[i];
    fk_status st;
    tp.now = s->now;
    if (s->kind == 't') {
      st = check_text(&l, s->token, s->scope, &t);
    } else if (s->kind == 's') {
      st = fk_lock_apply_state(&l, s->doc, s->doc_len);
    } else {
      st = fk_lock_restore_state(&l, s->doc, s->doc_len);
    }
    if (st != (fk_status)s->expect) {
      g_print("  step ");
      g_print(s->name);
      g_print("\n");
    }
    CHECK_ST(st, (fk_status)s->expect);
  }
  /* the persistent state survives a reboot; the document comes back with restore */
  CHECK(tp.stored && memcmp(tp.flash, "FKD\x01", 4) == 0);
  lock_new(&l, &pf, &tp, NULL);
  CHECK(l.seq == V_SEQ_C && l.doc_len == 0);
  CHECK_ST(check_text(&l, find_step("alice_e2")->token, NULL, &t), FK_STALE);
  tp.flash[0] ^= 1;
  CHECK_ST(fk_lock_init(&l, &pf, v_k_dev, V_DEVICE_ID, 7, 1, NULL, g_doc, sizeof g_doc), FK_PLATFORM_ERROR);
}

/* exp + leeway and now + leeway must not wrap around */
static void test_time_overflow(void)
{
  test_platform tp;
  fk_platform pf;
  fk_lock l;
  fk_lock_config cfg;
  fk_token t;
  memset(&tp, 0, sizeof tp);
  memset(&cfg, 0, sizeof cfg);
  cfg.leeway = UINT64_MAX;
  cfg.grace = UINT64_MAX;
  lock_new(&l, &pf, &tp, &cfg);
  tp.now = V_T0 + 60;
  CHECK_ST(fk_lock_apply_state(&l, find_step("state_a")->doc, find_step("state_a")->doc_len), FK_OK);
  CHECK_ST(check_text(&l, find_step("alice_expired")->token, NULL, &t), FK_OK);
  CHECK_ST(check_text(&l, find_step("alice_future")->token, NULL, &t), FK_OK);
  tp.now = UINT64_MAX;
  CHECK_ST(check_text(&l, find_step("alice_e1")->token, NULL, &t), FK_OK);
  cfg.leeway = 0;
  cfg.grace = 0;
  lock_new(&l, &pf, &tp, &cfg);
  CHECK_ST(check_text(&l, find_step("alice_e1")->token, NULL, &t), FK_EXPIRED);
}

/* every truncation is malformed; no flipped bit is accepted */
static void test_mutations(void)
{
  test_platform tp;
  fk_platform pf;
  fk_lock l;
  fk_token t;
  fk_state_doc sd;
  uint8_t tok[600], doc[600];
  size_t n = sizeof tok, i;
  const v_step* sa = find_step("state_a");
  const char* text = find_step("alice_e1")->token;
  memset(&tp, 0, sizeof tp);
  lock_new(&l, &pf, &tp, NULL);
  tp.now = V_T0 + 60;
  CHECK_ST(fk_lock_apply_state(&l, sa->doc, sa->doc_len), FK_OK);
  CHECK_ST(fk_base64url_decode(text, strlen(text), tok, &n), FK_OK);
  CHECK_ST(fk_lock_check_token(&l, tok, n, NULL, 0, &t), FK_OK);
  CHECK(fk_str_is(t.sub, "alice") && fk_str_is(t.scope, "owner") && t.has_epoch && t.epoch == 1);
  for (i = 0; i < n; i++) {
    unsigned b;
    CHECK_ST(fk_token_decode(tok, i, &t), FK_MALFORMED);
    for (b = 0; b < 8; b++) {
      tok[i] ^= (uint8_t)(1u << b);
      check(fk_lock_check_token(&l, tok, n, NULL, 0, &t) != FK_OK, "token bit flip refused", __LINE__);
      tok[i] ^= (uint8_t)(1u << b);
    }
  }
  memcpy(doc, sa->doc, sa->doc_len);
  for (i = 0; i < sa->doc_len; i++) {
    CHECK_ST(fk_state_decode(doc, i, &sd), FK_MALFORMED);
    doc[i] ^= 0x40;
    check(fk_lock_apply_state(&l, doc, sa->doc_len) != FK_OK, "state byte flip refused", __LINE__);
    doc[i] ^= 0x40;
  }
  n = sizeof tok;
  CHECK_ST(fk_base64url_decode("AB=", 3, tok, &n), FK_MALFORMED);
  CHECK_ST(fk_base64url_decode("AB", 2, tok, &n), FK_MALFORMED); /* unused bits set */
  CHECK_ST(fk_base64url_decode("AA", 2, tok, &n), FK_OK);
  CHECK(n == 1 && tok[0] == 0);
}

static void test_handshake(void)
{
  test_platform tp, phone_tp;
  fk_platform pf, phone_pf;
  fk_lock l;
  fk_session ls, ps;
  uint8_t m1[FK_CHALLENGE_LEN], m2[600], m3[FK_CONFIRM_LEN], tok[600], fr[64], pt[64];
  size_t m2_len = sizeof m2, tok_len = sizeof tok, n, k;
  const v_step* sb = find_step("state_b");
  memset(&tp, 0, sizeof tp);
  memset(&phone_tp, 0, sizeof phone_tp);
  lock_new(&l, &pf, &tp, NULL);
  tp.now = V_HS_NOW;
  CHECK_ST(fk_lock_apply_state(&l, sb->doc, sb->doc_len), FK_OK);
  CHECK_ST(fk_base64url_decode(v_hs_token, strlen(v_hs_token), tok, &tok_len), FK_OK);
  tp.rnd = v_hs_n_lock;
  tp.rnd_len = 16;
  phone_pf = pf;
  phone_pf.ctx = &phone_tp;
  phone_tp.rnd = v_hs_n_phone;
  phone_tp.rnd_len = 16;
  CHECK_ST(fk_lock_challenge(&l, &ls, m1), FK_OK);
  CHECK(m1[0] == 1 && memcmp(m1 + 1, v_hs_n_lock, 16) == 0);
  CHECK_ST(fk_phone_response(&ps, &phone_pf, m1, sizeof m1, V_DEVICE_ID, strlen(V_DEVICE_ID), v_k_user_alice_2, tok,
                             tok_len, m2, &m2_len),
           FK_OK);
  CHECK(m2_len == v_hs_m2_len && memcmp(m2, v_hs_m2, m2_len) == 0);
  CHECK_ST(fk_lock_respond(&l, &ls, m2, m2_len, NULL, 0, m3), FK_OK);
  CHECK(memcmp(m3, v_hs_m3, sizeof m3) == 0);
  CHECK(fk_str_is(ls.sub, "alice") && fk_str_is(ls.scope, "owner"));
  CHECK(memcmp(ls.ch.recv_key, v_hs_p2l, 32) == 0 && memcmp(ls.ch.send_key, v_hs_l2p, 32) == 0);
  CHECK_ST(fk_phone_confirm(&ps, V_DEVICE_ID, strlen(V_DEVICE_ID), m3, sizeof m3), FK_OK);
  CHECK(memcmp(ps.ch.send_key, v_hs_p2l, 32) == 0 && memcmp(ps.ch.recv_key, v_hs_l2p, 32) == 0);

  /* frames as the oracle computed them */
  CHECK_ST(fk_channel_seal(&ps.ch, (const uint8_t*)"open", 4, fr, sizeof fr, &n), FK_OK);
  CHECK(n == v_frame_0_len && memcmp(fr, v_frame_0, n) == 0);
  CHECK_ST(fk_channel_open(&ls.ch, fr, n, pt, sizeof pt, &k), FK_OK);
  CHECK(k == 4 && memcmp(pt, "open", 4) == 0);
  CHECK_ST(fk_channel_open(&ls.ch, fr, n, pt, sizeof pt, &k), FK_REPLAYED);
  CHECK_ST(fk_channel_seal(&ls.ch, (const uint8_t*)"opened", 6, fr, sizeof fr, &n), FK_OK);
  CHECK(n == v_frame_1_len && memcmp(fr, v_frame_1, n) == 0);
  fr[9] ^= 1;
  CHECK_ST(fk_channel_open(&ps.ch, fr, n, pt, sizeof pt, &k), FK_BAD_MAC);
  fr[9] ^= 1;
  CHECK_ST(fk_channel_open(&ps.ch, fr, n, pt, sizeof pt, &k), FK_OK);
  CHECK_ST(fk_channel_seal(&ps.ch, (const uint8_t*)"status", 6, fr, sizeof fr, &n), FK_OK);
  CHECK(n == v_frame_2_len && memcmp(fr, v_frame_2, n) == 0);
  CHECK_ST(fk_channel_open(&ls.ch, fr, 7, pt, sizeof pt, &k), FK_MALFORMED);

  /* the replay window: out of order inside it is accepted once, beyond it refused */
  {
    uint8_t frames[70][FK_FRAME_OVERHEAD + 1];
    size_t j;
    for (j = 0; j < 70; j++) {
      CHECK_ST(fk_channel_seal(&ps.ch, (const uint8_t*)"x", 1, frames[j], sizeof frames[j], &n), FK_OK);
    }
    CHECK_ST(fk_channel_open(&ls.ch, frames[69], n, pt, sizeof pt, &k), FK_OK); /* counter 71 */
    CHECK_ST(fk_channel_open(&ls.ch, frames[10], n, pt, sizeof pt, &k), FK_OK); /* 12: 59 back */
    CHECK_ST(fk_channel_open(&ls.ch, frames[10], n, pt, sizeof pt, &k), FK_REPLAYED);
    CHECK_ST(fk_channel_open(&ls.ch, frames[2], n, pt, sizeof pt, &k), FK_REPLAYED); /* 4: 67 back */
    CHECK_ST(fk_channel_open(&ls.ch, frames[6], n, pt, sizeof pt, &k), FK_OK);       /* 8: 63 back */
    CHECK_ST(fk_channel_open(&ls.ch, frames[5], n, pt, sizeof pt, &k), FK_REPLAYED); /* 7: 64 back */
  }

  /* a recorded handshake opens nothing: not again, not against a new challenge */
  CHECK_ST(fk_lock_respond(&l, &ls, m2, m2_len, NULL, 0, m3), FK_REPLAYED);
  tp.rnd = v_hs_n_phone;
  CHECK_ST(fk_lock_challenge(&l, &ls, m1), FK_OK);
  CHECK_ST(fk_lock_respond(&l, &ls, m2, m2_len, NULL, 0, m3), FK_BAD_MAC);
  /* a recorded token alone, without K_user, neither */
  CHECK_ST(fk_lock_challenge(&l, &ls, m1), FK_OK);
  m2_len = sizeof m2;
  CHECK_ST(fk_phone_response(&ps, &phone_pf, m1, sizeof m1, V_DEVICE_ID, strlen(V_DEVICE_ID), v_k_user_alice_1, tok,
                             tok_len, m2, &m2_len),
           FK_OK);
  CHECK_ST(fk_lock_respond(&l, &ls, m2, m2_len, NULL, 0, m3), FK_BAD_MAC);
  /* the scope is enforced at the handshake too */
  CHECK_ST(fk_lock_challenge(&l, &ls, m1), FK_OK);
  m2_len = sizeof m2;
  CHECK_ST(fk_phone_response(&ps, &phone_pf, m1, sizeof m1, V_DEVICE_ID, strlen(V_DEVICE_ID), v_k_user_alice_2, tok,
                             tok_len, m2, &m2_len),
           FK_OK);
  {
    const char* guest[1] = {"guest"};
    CHECK_ST(fk_lock_respond(&l, &ls, m2, m2_len, guest, 1, m3), FK_FORBIDDEN);
  }
  /* a forged confirmation is refused by the phone */
  m3[5] ^= 1;
  ps.stage = 1;
  CHECK_ST(fk_phone_confirm(&ps, V_DEVICE_ID, strlen(V_DEVICE_ID), m3, sizeof m3), FK_BAD_MAC);
}

int fk_run_tests(void (*print)(const char*))
{
  g_print = print;
  test_sha_hkdf();
  test_aead();
  test_keys();
  test_steps();
  test_time_overflow();
  test_mutations();
  test_handshake();
  put_uint(g_checks);
  print(" checks, ");
  put_uint(g_failures);
  print(" failures\n");
  return g_failures == 0 ? 0 : 1;
}
