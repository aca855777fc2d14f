/* The test suite's entry point, shared by the host runner and the Cortex-M3 image. */
#ifndef FK_TESTS_H
#define FK_TESTS_H

#include <fleetkey_device.h>
#include <string.h>

int fk_run_tests(void (*print)(const char*));

static inline int fk_str_is(fk_str s, const char* c)
{
  return s.len == strlen(c) && memcmp(s.p, c, s.len) == 0;
}

#endif
