/* The examples' platform on a POSIX host. */
#define _POSIX_C_SOURCE 200809L
#include "host_platform.h"

#include <string.h>
#include <time.h>

static int host_now(void* c, uint64_t* t)
{
  host_ctx* h = (host_ctx*)c;
  *t = h->fixed_now >= 0 ? (uint64_t)h->fixed_now : (uint64_t)time(NULL);
  return 0;
}

static int host_load(void* c, uint8_t* buf, size_t len)
{
  host_ctx* h = (host_ctx*)c;
  uint8_t tmp[64];
  size_t n = read_file(h->state_file, tmp, sizeof tmp);
  if (n == (size_t)-1) {
    return 1; /* never stored: a new lock */
  }
  if (n != len) {
    return -1;
  }
  memcpy(buf, tmp, len);
  return 0;
}

static int host_store(void* c, const uint8_t* buf, size_t len)
{
  return write_file(((host_ctx*)c)->state_file, buf, len);
}

static int host_random(void* c, uint8_t* buf, size_t len)
{
  FILE* f = fopen("/dev/urandom", "rb");
  size_t n;
  (void)c;
  if (f == NULL) {
    return -1;
  }
  n = fread(buf, 1, len, f);
  fclose(f);
  return n == len ? 0 : -1;
}

void host_platform(fk_platform* pf, host_ctx* ctx)
{
  pf->ctx = ctx;
  pf->now = host_now;
  pf->load = host_load;
  pf->store = host_store;
  pf->random = host_random;
}

void to_hex(const uint8_t* p, size_t n, char* out)
{
  static const char digits[] = "0123456789abcdef";
  size_t i;
  for (i = 0; i < n; i++) {
    out[2 * i] = digits[p[i] >> 4];
    out[2 * i + 1] = digits[p[i] & 15];
  }
  out[2 * n] = 0;
}

static int nibble(char c)
{
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  return -1;
}

size_t from_hex(const char* s, uint8_t* out, size_t cap)
{
  size_t n = 0;
  while (s[0] && s[0] != '\n') {
    int hi = nibble(s[0]), lo = s[1] ? nibble(s[1]) : -1;
    if (hi < 0 || lo < 0 || n == cap) {
      return (size_t)-1;
    }
    out[n++] = (uint8_t)(hi * 16 + lo);
    s += 2;
  }
  return n;
}

size_t read_file(const char* path, uint8_t* buf, size_t cap)
{
  FILE* f = fopen(path, "rb");
  size_t n;
  if (f == NULL) {
    return (size_t)-1;
  }
  n = fread(buf, 1, cap, f);
  fclose(f);
  return n;
}

int write_file(const char* path, const uint8_t* buf, size_t n)
{
  char tmp[4096];
  FILE* f;
  if (strlen(path) + 5 > sizeof tmp) {
    return -1;
  }
  strcpy(tmp, path);
  strcat(tmp, ".tmp");
  f = fopen(tmp, "wb");
  if (f == NULL) {
    return -1;
  }
  if (fwrite(buf, 1, n, f) != n || fflush(f) != 0) {
    fclose(f);
    return -1;
  }
  fclose(f);
  return rename(tmp, path) == 0 ? 0 : -1;
}
