/* FK_SHA256_HOOK for the tests: the platform's SHA-256 is libsodium's (as firmware would plug in
 * mbedTLS, PSA or a hardware engine). Built as device_tests_sha_hook. */
#ifndef FK_SHA_HOOK_SODIUM_H
#define FK_SHA_HOOK_SODIUM_H

#include <sodium.h>

typedef struct fk_sha256
{
  crypto_hash_sha256_state state;
} fk_sha256;

#endif
