/* Runs the device test suite on the host. */
#include "fk_tests.h"

#include <stdio.h>

static void print(const char* s)
{
  fputs(s, stdout);
}

int main(void)
{
  return fk_run_tests(print);
}
