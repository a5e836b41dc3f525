#!/bin/sh
# Runs bench.lua under lua5.4 (the C module) and luajit (the FFI module), each beside luv and
# cqueues in the same process, then prints LuaJIT's module against the C module per benchmark.
# make lua-bench sets the environment (LUA_PATH, LUA_CPATH, MVX_LUA_TESTLIB).
here=$(dirname "$0")
out=$(mktemp)
: "${UV_THREADPOOL_SIZE:=512}" # luv's pool as large as moduvex's blocking pool
export UV_THREADPOOL_SIZE
status=0
for interp in "${LUA54:-lua5.4}" "${LUAJIT:-luajit}"; do
    timeout 600 "$interp" "$here/bench.lua" | tee -a "$out" || status=1
done
awk '/^bench=/ {
        split($1, b, "="); split($2, i, "="); split($7, p, "=")
        if (i[2] == "moduvex-lua5.4") c[b[2]] = p[2]
        if (i[2] == "moduvex-luajit") j[b[2]] = p[2]
    }
    END { for (k in c) if (k in j)
        printf "ratio bench=%s moduvex-luajit/moduvex-lua5.4=%.2f (target <= 1.00)\n", k, j[k] / c[k] }' "$out"
rm -f "$out"
exit $status
