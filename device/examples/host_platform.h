/* The examples' platform on a POSIX host: the clock, a file for the persistent state, urandom. */
#ifndef FK_HOST_PLATFORM_H
#define FK_HOST_PLATFORM_H

#include <fleetkey_device.h>
#include <stdio.h>

typedef struct host_ctx
{
  const char* state_file; /* the FK_PERSIST_SIZE bytes */
  long long fixed_now;    /* >= 0: use it instead of the clock */
} host_ctx;

void host_platform(fk_platform* pf, host_ctx* ctx);
/* Hex of n bytes into out (2n+1 bytes). */
void to_hex(const uint8_t* p, size_t n, char* out);
/* Parses hex into out (capacity cap); returns the length, or (size_t)-1. */
size_t from_hex(const char* s, uint8_t* out, size_t cap);
/* Reads a whole file; returns its length or (size_t)-1. */
size_t read_file(const char* path, uint8_t* buf, size_t cap);
int write_file(const char* path, const uint8_t* buf, size_t n);

#endif
