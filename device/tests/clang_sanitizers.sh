#!/bin/sh
# Builds the device test suite with clang, ASan and UBSan, and runs it.
#   clang_sanitizers.sh CLANG VECTORS_DIR OUT_DIR
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$3"
"$1" -std=c99 -O1 -g -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Werror \
  -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
  -I"$src/include" -I"$src/tests" -I"$2" "$src"/src/*.c "$src/tests/test_device.c" "$src/tests/host_main.c" \
  -o "$3/device_tests"
"$3/device_tests"
