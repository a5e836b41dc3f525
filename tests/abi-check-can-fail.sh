#!/bin/sh
# Proves that `make abi-check` can fail, and passes what it should. Run by `make
# abi-check-selftest` (and .ci/run), not by make check: it configures and builds twice (about a
# minute).
#
# Two scratch copies of the distributed source tree (make distdir), never the real one:
#   break:  configured in place. After `make abi-update` records the unchanged copy's ABI, each
#           deliberately incompatible change below is applied alone, `make abi-check` must fail
#           and say why, and the change is undone:
#             - two fields of mvx_runtime_config swapped;
#             - a parameter type changed (mvx_runtime_worker_stats: unsigned -> unsigned short);
#             - an enumerator value changed (MVX_EINVAL);
#             - a function removed from the version script (mvx_err_name);
#             - a new function put into the existing version node;
#             - a field inserted at the start of a size-field struct (mvx_worker_stats).
#   extend: built out of tree (VPATH). After `make abi-update`, compatible additions: a new
#           function in a new version node MODUVEX_<major>.<n+1> inheriting the last one, a new
#           field at the end of mvx_runtime_config and a new error code. `make abi-check` must pass
#           and report each addition.
# Environment (from abi/abi.am): builddir (a configured build tree of moduvex), MAKE.
# MVX_SELFTEST_KEEP=1 keeps the scratch directory. Prints "N passed, N failed".
set -u
: "${builddir:?run it through make abi-check-selftest}"
MAKE=${MAKE:-make}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/mvx-abi-selftest.XXXXXX")
cleanup() {
    if [ "${MVX_SELFTEST_KEEP:-0}" = 1 ]; then
        echo "kept $scratch"
    else
        chmod -R u+w "$scratch" 2>/dev/null
        rm -rf "$scratch"
    fi
}
trap cleanup EXIT

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ] && exit 0; exit 1; }
step() { printf '\n==== %s\n' "$*"; }
run_make() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL "$MAKE" "$@"; }
quiet() { # runs "$@" with its output in $scratch/quiet.log, shown only on failure
    "$@" >"$scratch/quiet.log" 2>&1 && return 0
    tail -n 40 "$scratch/quiet.log"
    return 1
}
# edit FILE SED-SCRIPT: applies it, fails if it changed nothing (the header or source moved on).
edit() {
    cp "$1" "$1.orig-selftest"
    sed -i "$2" "$1"
    if cmp -s "$1" "$1.orig-selftest"; then
        fail "could not apply '$2' to $1: update tests/abi-check-can-fail.sh"
        return 1
    fi
}
restore() { for f in "$@"; do mv "$f.orig-selftest" "$f"; done; }
restore_all() { # every file edit() touched under $1
    find "$1" -name '*.orig-selftest' | while read -r f; do mv "$f" "${f%.orig-selftest}"; done
}

# abidw reads only the debug information: unoptimised builds compile several times faster, and
# each break below rebuilds the whole library.
scratch_cflags="-g -O0"

step "scratch copies of the distributed tree in $scratch"
quiet run_make -C "$builddir" distdir distdir="$scratch/dist" || { fail "make distdir"; finish; }
cp -a "$scratch/dist" "$scratch/break"
cp -a "$scratch/dist" "$scratch/extend"

# ---- break: every incompatible change must fail ------------------------------------------------
B=$scratch/break
H=$B/include/moduvex.h
step "break: configure, build, make abi-update"
(cd "$B" && quiet ./configure -q CFLAGS="$scratch_cflags" && quiet run_make -j2 libmoduvex.la && quiet run_make abi-update) ||
    { fail "could not build the scratch copy $B"; finish; }
if (cd "$B" && quiet run_make abi-check); then pass "unchanged copy: abi-check passes"; else fail "unchanged copy: abi-check fails"; fi

# expect_failure DESCRIPTION EXPECTED-TEXT: runs make abi-check in the break copy.
expect_failure() {
    step "break: $1"
    (cd "$B" && run_make -s V=0 abi-check) >"$scratch/out" 2>&1
    rc=$?
    cat "$scratch/out"
    if [ $rc -eq 0 ]; then
        fail "$1: make abi-check passed"
    elif ! grep -q "abi-check: FAILED" "$scratch/out"; then
        fail "$1: make abi-check failed (exit $rc) without its verdict (a build error?)"
    elif ! grep -q -F -- "$2" "$scratch/out"; then
        fail "$1: make abi-check failed, but without '$2'"
    else
        pass "$1: make abi-check fails (exit $rc) with '$2'"
    fi
}

# 1. two fields of mvx_runtime_config swapped (worker_threads and stack_size: their lines)
a=$(grep -n '^[[:space:]]*unsigned worker_threads;' "$H" | cut -d: -f1)
b=$(grep -n '^[[:space:]]*size_t stack_size;' "$H" | cut -d: -f1)
if [ -n "$a" ] && [ -n "$b" ]; then
    cp "$H" "$H.orig-selftest"
    awk -v a="$a" -v b="$b" 'NR == FNR { l[FNR] = $0; next }
        { print (FNR == a) ? l[b] : (FNR == b) ? l[a] : $0 }' "$H" "$H" >"$H.new" && mv "$H.new" "$H"
    expect_failure "mvx_runtime_config: worker_threads and stack_size swapped" \
        "INCOMPATIBLE: struct mvx_runtime_config: there are data member changes"
    restore "$H"
else
    fail "mvx_runtime_config has no worker_threads or stack_size line: update this script"
fi

# 2. a parameter type changed
S=$B/src/runtime.c
re='s/mvx_runtime_worker_stats(mvx_runtime \*rt, unsigned worker,/mvx_runtime_worker_stats(mvx_runtime *rt, unsigned short worker,/'
if edit "$H" "$re" && edit "$S" "$re"; then
    expect_failure "mvx_runtime_worker_stats: parameter 2 unsigned -> unsigned short" \
        "changed: 'function int mvx_runtime_worker_stats"
fi
restore_all "$B"

# 3. an enumerator value changed
if edit "$H" 's/XX(EINVAL, -1,/XX(EINVAL, -100,/'; then
    expect_failure "MVX_EINVAL: -1 -> -100" "MVX_EINVAL changed: MVX_EINVAL -1 -> MVX_EINVAL -100"
    restore "$H"
fi

# 4. a function removed from the version script
M=$B/src/libmoduvex.map
if edit "$M" '/^[[:space:]]*mvx_err_name;/d'; then
    expect_failure "mvx_err_name removed from the version script" "[D] 'function const char* mvx_err_name(int)'"
    restore "$M"
fi

# 5. a new function in the existing version node
E=$B/src/error.c
first_node=$(sed -n 's/^\(MODUVEX_[0-9]*\.[0-9]*\)[[:space:]]*{.*/\1/p' "$M" | head -n 1)
if edit "$H" '/^#endif \/\* MODUVEX_H \*\//i MVX_EXTERN int mvx_selftest_added(void);' &&
    edit "$E" '$a MVX_EXTERN int mvx_selftest_added(void) { return 42; }' &&
    edit "$M" "/^$first_node[[:space:]]*{/,/global:/s/global:/global:\\n    mvx_selftest_added;/"; then
    expect_failure "mvx_selftest_added added to $first_node" \
        "mvx_selftest_added is added to $first_node, a version node the baseline already has"
fi
restore_all "$B"

# 6. a field inserted at the start of a size-field struct
a=$(awk '/^typedef struct mvx_worker_stats \{/ { print NR + 1; exit }' "$H")
if [ -n "$a" ] && edit "$H" "${a}a\\    uint64_t inserted_by_selftest;"; then
    expect_failure "mvx_worker_stats: a field inserted after size" \
        "INCOMPATIBLE: struct mvx_worker_stats"
    restore "$H"
fi

# ---- extend: compatible additions must pass -------------------------------------------------------
X=$scratch/extend
H=$X/include/moduvex.h
M=$X/src/libmoduvex.map
step "extend: configure out of tree ($X/_build), build, make abi-update"
mkdir "$X/_build"
(cd "$X/_build" && quiet ../configure -q CFLAGS="$scratch_cflags" && quiet run_make -j2 libmoduvex.la && quiet run_make abi-update) ||
    { fail "could not build the scratch copy $X/_build"; finish; }

last_node=$(sed -n 's/^\(MODUVEX_[0-9]*\.[0-9]*\)[[:space:]]*{.*/\1/p' "$M" | tail -n 1)
major=${last_node#MODUVEX_}; major=${major%%.*}
minor=${last_node##*.}
new_node=MODUVEX_$major.$((minor + 1))
code=$(sed -n 's/.*XX([A-Z_]*, *\(-[0-9]*\),.*/\1/p' "$H" | sort -n | head -n 1)
code=$((code - 1))
ok=1
edit "$H" '/^#endif \/\* MODUVEX_H \*\//i MVX_EXTERN int mvx_selftest_added(void);' || ok=0
edit "$X/src/error.c" '$a MVX_EXTERN int mvx_selftest_added(void) { return 42; }' || ok=0
printf '\n%s {\n  global:\n    mvx_selftest_added;\n} %s;\n' "$new_node" "$last_node" >>"$M"
edit "$H" '/^} mvx_runtime_config;/i \    unsigned selftest_added_field;' || ok=0
# the last XX(...) line of MVX_ERRNO_MAP (the one without a continuation) gets a successor
edit "$H" "/^[[:space:]]*XX([A-Z_]*, *-[0-9]*, *\"[^\"]*\")[[:space:]]*\$/{s/\$/ \\\\/;a\\    XX(ESELFTEST, $code, \"added by the selftest\")
}" || ok=0
if [ $ok = 1 ]; then
    step "extend: mvx_selftest_added in $new_node, mvx_runtime_config grown, MVX_ESELFTEST = $code"
    (cd "$X/_build" && run_make -s V=0 abi-check) >"$scratch/out" 2>&1
    rc=$?
    cat "$scratch/out"
    if [ $rc -eq 0 ] && grep -q "abi-check: PASSED: compatible additions only" "$scratch/out"; then
        pass "compatible additions: make abi-check passes"
    else
        fail "compatible additions: make abi-check fails (exit $rc)"
    fi
    for want in "compatible: added mvx_selftest_added in the new version node $new_node" \
        "[A] 'function int mvx_selftest_added()'" \
        "compatible: struct mvx_runtime_config grew at its end" \
        "added: MVX_ESELFTEST $code"; do
        if grep -q -F -- "$want" "$scratch/out"; then pass "reported: $want"; else fail "not reported: $want"; fi
    done
fi

finish
