#!/bin/sh
# Compiles the README's first ```c block exactly as the README says (cc + pkg-config), against
# this build tree's moduvex-uninstalled.pc, runs it and checks what it prints.
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk '/^```c$/ { on = 1; next } on && /^```$/ { exit } on { print }' "${srcdir:-.}/README.md" \
    > "$tmp/example.c"
test -s "$tmp/example.c" || { echo "no \`\`\`c block in README.md"; exit 1; }
flags=$(PKG_CONFIG_PATH="$PWD" pkg-config --cflags --libs moduvex)
# shellcheck disable=SC2086 # word splitting of the flags is intended
${CC:-cc} ${SAN_CFLAGS:-} -Wall -Wextra -Werror -o "$tmp/example" "$tmp/example.c" $flags
out=$(LD_LIBRARY_PATH="$PWD/.libs" "$tmp/example")
echo "$out"
test "$out" = "waiter: success, result 42"
echo "1 passed, 0 failed"
