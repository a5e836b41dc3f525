#!/bin/sh
# tests/dlopen_host under valgrind's memcheck: load/use/unload cycles of libmoduvex.so.1 (20 by
# default, MVX_DLOPEN_VALGRIND_CYCLES to change), any definitely lost block or memory error fails.
# Skipped (exit 77) without valgrind, and in sanitizer builds (LeakSanitizer checks
# tests/dlopen_host there). Prints "N passed, N failed".
set -u
if [ -n "${SAN_CFLAGS:-}" ]; then
    echo "skipped: sanitizer build (LeakSanitizer checks tests/dlopen_host itself)"
    exit 77
fi
if ! command -v valgrind >/dev/null 2>&1; then
    echo "skipped: valgrind is not installed"
    exit 77
fi
cycles=${MVX_DLOPEN_VALGRIND_CYCLES:-20}
valgrind -q --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=3 \
    ./tests/dlopen_host "$cycles"
rc=$?
if [ $rc -eq 0 ]; then
    echo "ok: $cycles cycles under valgrind --leak-check=full: no error, nothing definitely lost"
    echo "1 passed, 0 failed"
    exit 0
fi
echo "FAIL: exit $rc (3: valgrind found errors or definite leaks, see above)"
echo "0 passed, 1 failed"
exit 1
