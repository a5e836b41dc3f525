#!/bin/sh
# Runs the busted specs under lua5.4 (the C module) and luajit (the FFI module) and prints one
# "N passed, N failed" line per interpreter and a total. Exit status 1 if anything failed.
# Usage: run-specs.sh SPEC_DIR (make lua-check sets LUA_PATH, LUA_CPATH and MVX_LUA_TESTLIB).
spec=${1:?spec directory}
busted=${BUSTED:-busted}
[ -x "$busted" ] || busted=$(command -v busted) || { echo "busted not found (apt-get install lua-busted)"; exit 1; }
total_pass=0 total_fail=0 status=0
for interp in "${LUA54:-lua5.4}" "${LUAJIT:-luajit}"; do
    [ -n "$interp" ] && command -v "$interp" >/dev/null || { echo "$interp not found"; status=1; continue; }
    name=$(basename "$interp")
    out=$(timeout 120 "$interp" "$busted" -o TAP "$spec" 2>&1)
    rc=$?
    pass=$(printf '%s\n' "$out" | grep -c '^ok ')
    fail=$(printf '%s\n' "$out" | grep -c '^not ok ')
    # A crash or hang leaves no plan line ("1..N"): count it as a failure.
    if ! printf '%s\n' "$out" | grep -q '^1\.\.[0-9]'; then fail=$((fail + 1)); fi
    if [ "$rc" -ne 0 ] || [ "$fail" -ne 0 ]; then
        printf '%s\n' "$out" | grep -v '^ok ' | head -n 80
        status=1
    fi
    echo "lua specs ($name): $pass passed, $fail failed"
    total_pass=$((total_pass + pass)) total_fail=$((total_fail + fail))
done
echo "lua: $total_pass passed, $total_fail failed"
exit $status
