/* The three functions a SHA-256 hook provides, over libsodium. */
#include <fleetkey_device.h>

void fk_sha256_init(fk_sha256* c)
{
  crypto_hash_sha256_init(&c->state);
}

void fk_sha256_update(fk_sha256* c, const uint8_t* p, size_t n)
{
  crypto_hash_sha256_update(&c->state, p, n);
}

void fk_sha256_final(fk_sha256* c, uint8_t out[32])
{
  crypto_hash_sha256_final(&c->state, out);
  sodium_memzero(c, sizeof *c);
}
