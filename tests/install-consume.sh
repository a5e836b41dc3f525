#!/bin/sh
# Install, consume, uninstall:
#   1. make install DESTDIR=<temporary directory> (the configured prefix under it: never the
#      real prefix), and check that the library, its symlinks, moduvex.h and moduvex.pc arrived;
#   2. build a small consumer with nothing but `pkg-config --cflags --libs moduvex` (pointed at
#      the installed moduvex.pc through PKG_CONFIG_PATH and PKG_CONFIG_SYSROOT_DIR), run it, and
#      check that it loaded the installed library, whose version is the .pc file's;
#   3. make uninstall DESTDIR=<same>, and check that no file or symlink is left. Directories are
#      left: automake's uninstall never removes directories (the list is printed).
# Runs from the build directory under make check (also under make distcheck, whose own install
# goes elsewhere); make runs without the parent's MAKEFLAGS. Prints "N passed, N failed".
set -u
top=${abs_top_builddir:-$PWD}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mvx-install.XXXXXX")
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
dest=$tmp/root
mkdir "$dest" "$tmp/consumer"

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ] && exit 0; exit 1; }
run_make() {
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL "${MAKE:-make}" -C "$top" "$@" >"$tmp/make.log" 2>&1 && return 0
    tail -n 30 "$tmp/make.log" | sed 's/^/    /'
    return 1
}

# ---- 1. install -----------------------------------------------------------------------------------
if run_make install DESTDIR="$dest"; then pass "make install DESTDIR=$dest"; else fail "make install"; finish; fi
(cd "$dest" && find . ! -type d | sort) >"$tmp/installed"
sed 's/^/    /' "$tmp/installed"
pc=$(find "$dest" -name moduvex.pc | head -n 1)
hdr=$(find "$dest" -name moduvex.h | head -n 1)
for f in libmoduvex.so libmoduvex.so.1 moduvex.h moduvex.pc; do
    if grep -q "/$f\$" "$tmp/installed"; then pass "installed $f"; else fail "$f not installed"; fi
done
if [ -n "$hdr" ] && cmp -s "$hdr" "${srcdir:-.}/include/moduvex.h"; then
    pass "the installed moduvex.h is include/moduvex.h"
else
    fail "the installed moduvex.h differs from include/moduvex.h"
fi
if ! grep -q '\.a$' "$tmp/installed"; then pass "no static library (disable-static)"; else fail "a static library was installed"; fi
[ -n "$pc" ] || finish

# ---- 2. consume -------------------------------------------------------------------------------------
cat >"$tmp/consumer/consumer.c" <<'EOF'
#include <moduvex.h>
#include <stdio.h>
#include <string.h>

static int answer(void *state, mvx_context *cx, void *output)
{
    (void)cx;
    *(int *)output = *(int *)state * 2;
    return MVX_POLL_READY;
}

static const mvx_task_vtable answer_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = answer,
    .state_size = sizeof(int),
    .state_align = _Alignof(int),
    .output_size = sizeof(int),
    .output_align = _Alignof(int),
};

int main(void)
{
    mvx_runtime_config cfg;
    mvx_runtime *rt;
    mvx_join_handle *jh;
    int in = 21, out = 0;
    char line[4096];
    if (mvx_runtime_config_init(&cfg, sizeof cfg) != 0)
        return 1;
    cfg.worker_threads = 2;
    if (mvx_runtime_new(&cfg, &rt) != 0 || mvx_spawn(rt, &answer_vt, &in, &jh) != 0)
        return 1;
    int rc = mvx_join_wait(jh, MVX_TIMEOUT_INFINITE);
    if (rc == 0)
        rc = mvx_join_take(jh, &out, sizeof out, NULL);
    mvx_join_release(jh);
    mvx_runtime_release(rt);
    printf("result %d (%s)\nversion %s\n", out, mvx_strerror(rc), mvx_version_string());
    /* which libmoduvex this process loaded */
    FILE *maps = fopen("/proc/self/maps", "r");
    while (maps && fgets(line, sizeof line, maps)) {
        char *path = strchr(line, '/');
        if (path && strstr(path, "libmoduvex")) {
            printf("loaded %s", path);
            break;
        }
    }
    if (maps)
        fclose(maps);
    return rc != 0 || out != 42;
}
EOF
pcdir=$(dirname "$pc")
pkg() { PKG_CONFIG_PATH=$pcdir PKG_CONFIG_SYSROOT_DIR=$dest PKG_CONFIG_DISABLE_UNINSTALLED=1 pkg-config "$@"; }
if flags=$(pkg --cflags --libs moduvex 2>"$tmp/pkg.err"); then
    pass "pkg-config --cflags --libs moduvex: $flags"
else
    fail "pkg-config --cflags --libs moduvex: $(cat "$tmp/pkg.err")"
    finish
fi
# shellcheck disable=SC2086 # word splitting of the flags is intended
if ${CC:-cc} ${SAN_CFLAGS:-} -Wall -Wextra -Werror -o "$tmp/consumer/consumer" \
    "$tmp/consumer/consumer.c" $flags 2>"$tmp/cc.err"; then
    pass "consumer built with those flags only"
else
    fail "consumer does not build:"
    sed 's/^/    /' "$tmp/cc.err"
    finish
fi
libdir=$(pkg --variable=libdir moduvex)
case $libdir in "$dest"/*) ;; *) libdir=$dest$libdir ;; esac
out=$(LD_LIBRARY_PATH=$libdir "$tmp/consumer/consumer" 2>&1)
rc=$?
echo "$out" | sed 's/^/    /'
if [ $rc -eq 0 ] && echo "$out" | grep -q '^result 42 (success)$'; then
    pass "consumer ran: a task spawned, joined, output taken"
else
    fail "consumer failed (exit $rc)"
fi
loaded=$(echo "$out" | sed -n 's/^loaded //p')
case $loaded in
"$dest"/*) pass "it loaded the installed library ($loaded)" ;;
*) fail "it loaded '$loaded', not the installed library under $dest" ;;
esac
modversion=$(pkg --modversion moduvex)
if echo "$out" | grep -q "^version $modversion\$"; then
    pass "mvx_version_string() matches moduvex.pc's Version ($modversion)"
else
    fail "mvx_version_string() is not moduvex.pc's Version ($modversion)"
fi

# ---- 3. uninstall -------------------------------------------------------------------------------------
if run_make uninstall DESTDIR="$dest"; then pass "make uninstall DESTDIR=$dest"; else fail "make uninstall"; fi
left=$(cd "$dest" && find . ! -type d | sort)
if [ -z "$left" ]; then
    pass "make uninstall left no file or symlink ($(cd "$dest" && find . -mindepth 1 -type d | wc -l) empty directories remain, as automake does)"
else
    fail "left behind by make uninstall:"
    echo "$left" | sed 's/^/    /'
fi

finish
