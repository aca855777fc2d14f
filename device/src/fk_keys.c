/* Keys and codes a device recomputes from K_dev(D): fleetkey-formats(5), fleetkey-pairing(5). */
#include "fk_internal.h"

static const char k_salt[] = "fleetkey/v1";

fk_status fk_device_init(fk_device* d, const uint8_t k_dev[32], const char* id, size_t id_len, uint32_t key_version)
{
  if (id_len < 1 || id_len > sizeof d->id || key_version == 0) {
    return FK_INVALID_ARGUMENT;
  }
  memset(d, 0, sizeof *d);
  fk_hkdf_extract((const uint8_t*)k_salt, sizeof k_salt - 1, k_dev, 32, d->prk_dev);
  memcpy(d->id, id, id_len);
  d->id_len = (uint8_t)id_len;
  d->key_version = key_version;
  return FK_OK;
}

void fk_derive(const uint8_t prk[32], const char* label, size_t label_len, const uint8_t* x, size_t x_len, int has_n,
               uint64_t n, uint8_t out[32])
{
  static const uint8_t one = 1;
  fk_hmac c; /* T(1) = HMAC(PRK, info || 01) */
  fk_hmac_init(&c, prk, 32);
  fk_hmac_field(&c, (const uint8_t*)label, label_len);
  if (x != NULL) {
    fk_hmac_field(&c, x, x_len);
  }
  if (has_n) {
    fk_hmac_field_u64(&c, n);
  }
  fk_hmac_update(&c, &one, 1);
  fk_hmac_final(&c, out);
}

void fk_derive_session(const uint8_t prk[32], const char* direction, const uint8_t mac_p[32], uint8_t out[32])
{
  static const uint8_t one = 1;
  fk_hmac c;
  fk_hmac_init(&c, prk, 32);
  fk_hmac_field(&c, (const uint8_t*)"session", 7);
  fk_hmac_field(&c, (const uint8_t*)direction, 13); /* "phone-to-lock" or "lock-to-phone" */
  fk_hmac_field(&c, mac_p, 32);
  fk_hmac_update(&c, &one, 1);
  fk_hmac_final(&c, out);
}

fk_status fk_user_key(const fk_device* d, const char* user, size_t user_len, uint64_t epoch, uint8_t out[32])
{
  if (user_len > 0xffff) {
    return FK_INVALID_ARGUMENT;
  }
  fk_derive(d->prk_dev, FK_LIT("user"), (const uint8_t*)user, user_len, 1, epoch, out);
  return FK_OK;
}

fk_status fk_purpose_key(const fk_device* d, const char* purpose, size_t purpose_len, uint8_t out[32])
{
  if (purpose_len > 0xffff) {
    return FK_INVALID_ARGUMENT;
  }
  fk_derive(d->prk_dev, FK_LIT("purpose"), (const uint8_t*)purpose, purpose_len, 0, 0, out);
  return FK_OK;
}

typedef int (*fk_accept_fn)(uint64_t v, unsigned digits);

/* sample(label, n, bound, accept) of fleetkey-pairing(5) SAMPLING: the first acceptable word of
 * the HKDF-Expand stream, which is read block by block (up to 255 blocks, 1020 words). */
static fk_status sample(const fk_device* d, const char* label, size_t label_len, uint64_t counter, uint64_t bound,
                        fk_accept_fn accept, unsigned digits, uint64_t* out)
{
  fk_expander e;
  uint64_t r = (UINT64_MAX % bound + 1) % bound; /* 2^64 mod bound */
  fk_status st = FK_PLATFORM_ERROR;
  fk_expander_init(&e, d->prk_dev);
  while (st != FK_OK && e.i < 255) {
    fk_hmac c;
    unsigned k;
    fk_expander_begin(&e, &c);
    fk_hmac_field(&c, (const uint8_t*)label, label_len);
    fk_hmac_field_u64(&c, counter);
    fk_expander_end(&e, &c);
    for (k = 0; k < 4 && st != FK_OK; k++) {
      uint64_t w = fk_load64_be(e.t + 8 * k);
      if (r != 0 && w >= UINT64_MAX - r + 1) {
        continue;
      }
      if (accept(w % bound, digits)) {
        *out = w % bound;
        st = FK_OK;
      }
    }
  }
  fk_wipe(&e, sizeof e);
  return st;
}

static int pin_ok(uint64_t v, unsigned digits)
{
  unsigned i, same = 1, up = 1, down = 1, prev = (unsigned)(v % 10);
  for (i = 1; i < digits; i++) {
    unsigned cur;
    v /= 10;
    cur = (unsigned)(v % 10); /* the digit to the left of prev */
    same &= cur == prev;
    up &= (cur + 1) % 10 == prev;
    down &= (cur + 9) % 10 == prev;
    prev = cur;
  }
  return !(same | up | down);
}

static const uint8_t k_verhoeff_d[10][10] = {{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4, 0, 6, 7, 8, 9, 5},
                                             {2, 3, 4, 0, 1, 7, 8, 9, 5, 6}, {3, 4, 0, 1, 2, 8, 9, 5, 6, 7},
                                             {4, 0, 1, 2, 3, 9, 5, 6, 7, 8}, {5, 9, 8, 7, 6, 0, 4, 3, 2, 1},
                                             {6, 5, 9, 8, 7, 1, 0, 4, 3, 2}, {7, 6, 5, 9, 8, 2, 1, 0, 4, 3},
                                             {8, 7, 6, 5, 9, 3, 2, 1, 0, 4}, {9, 8, 7, 6, 5, 4, 3, 2, 1, 0}};
static const uint8_t k_verhoeff_p1[10] = {1, 5, 7, 6, 2, 8, 3, 0, 9, 4};
static const uint8_t k_verhoeff_inv[10] = {0, 4, 3, 2, 1, 5, 6, 7, 8, 9};

fk_status fk_pairing_code(const fk_device* d, uint64_t counter, unsigned digits, char* code, size_t code_len)
{
  uint64_t bound = 1, pin;
  unsigned i, c = 0;
  fk_status st;
  if (digits < 6 || digits > 12 || code_len < digits + 2) {
    return FK_INVALID_ARGUMENT;
  }
  for (i = 0; i < digits; i++) {
    bound *= 10;
  }
  st = sample(d, FK_LIT("pairing"), counter, bound, pin_ok, digits, &pin);
  if (st != FK_OK) {
    return st;
  }
  for (i = 0; i < digits; i++) {
    unsigned x = (unsigned)(pin % 10), k, j = i + 1; /* position from the right, starting at 1 */
    for (k = 0; k < (j & 7); k++) {
      x = k_verhoeff_p1[x];
    }
    c = k_verhoeff_d[c][x];
    code[digits - 1 - i] = (char)('0' + pin % 10);
    pin /= 10;
  }
  code[digits] = (char)('0' + k_verhoeff_inv[c]);
  code[digits + 1] = 0;
  return FK_OK;
}

static int passcode_ok(uint64_t v, unsigned digits)
{
  (void)digits;
  return v >= 1 && v <= 99999998 && v % 11111111 != 0 && v != 12345678 && v != 87654321;
}

static int any(uint64_t v, unsigned digits)
{
  (void)v;
  (void)digits;
  return 1;
}

fk_status fk_matter_passcode(const fk_device* d, uint64_t counter, uint32_t* passcode, uint16_t* discriminator)
{
  uint64_t p, q;
  fk_status st = sample(d, FK_LIT("pairing-matter-passcode"), counter, 100000000, passcode_ok, 0, &p);
  if (st == FK_OK) {
    st = sample(d, FK_LIT("pairing-matter-discriminator"), counter, 4096, any, 0, &q);
  }
  if (st == FK_OK) {
    *passcode = (uint32_t)p;
    *discriminator = (uint16_t)q;
  }
  return st;
}
