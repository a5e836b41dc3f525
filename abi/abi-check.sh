#!/bin/sh
# abi-check.sh check|update - the ABI guard behind `make abi-check` and `make abi-update`.
#
# check:  dumps the built library's ABI with abidw and compares it with the committed baseline
#         abi/libmoduvex.abi using abidiff; compares the values of the header's constants (macros
#         and enumerators) with abi/constants.txt. Exits 0 when the library is unchanged or only
#         grew compatibly (printing what was added), 1 on any incompatible change (printing
#         abidiff's report and what rule it breaks). The rules are in abi/README.md.
# update: writes both baselines from the built library and header.
#
# Environment, set by abi/abi.am: srcdir (the source tree), builddir (the build tree, holding
# libmoduvex.la), CC, ABIDW, ABIDIFF, READELF.
set -eu

mode=${1:-}
case $mode in check | update) ;; *) echo "usage: abi-check.sh check|update" >&2; exit 2 ;; esac
srcdir=${srcdir:-.}
builddir=${builddir:-$PWD}
CC=${CC:-cc}
ABIDW=${ABIDW:-abidw}
ABIDIFF=${ABIDIFF:-abidiff}
READELF=${READELF:-readelf}
baseline=$srcdir/abi/libmoduvex.abi
baseline_constants=$srcdir/abi/constants.txt
header=$srcdir/include/moduvex.h

say() { echo "abi-$mode: $*"; }
die() { echo "abi-$mode: error: $*" >&2; exit 1; }

for tool in "$ABIDW" "$ABIDIFF"; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "$tool not found: install libabigail's tools (Debian: apt-get install abigail-tools)"
done
la=$builddir/libmoduvex.la
test -f "$la" || die "$la not found: build the library first (make libmoduvex.la)"
dlname=$(sed -n "s/^dlname='\(.*\)'$/\1/p" "$la")
lib=$builddir/.libs/$dlname
test -n "$dlname" && test -f "$lib" || die "no shared library next to $la (dlname '$dlname')"
# abidw silently writes an ABI without types for a library without DWARF; abidiff would then
# compare symbols only. Refuse instead (abidiff below also gets --fail-no-debug-info).
"$READELF" -S -W "$lib" | grep -q ' \.debug_info ' ||
    die "$lib has no debug info: build with -g (configure's default CFLAGS are -g -O2)"

work=$(mktemp -d "${TMPDIR:-/tmp}/abi-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

# The ABI of the library as libabigail sees it: public types only (--headers-dir with
# --drop-private-types), including those no function reaches (--load-all-types: the error-code
# enum), and nothing that depends on where it was built (paths, type-id numbering).
dump_abi() {
    "$ABIDW" --headers-dir "$srcdir/include" --drop-private-types --load-all-types \
        --no-corpus-path --no-comp-dir-path --short-locs --no-elf-needed --type-id-style hash \
        --out-file "$1" "$lib"
}

# "NAME VALUE" for every MVX_ object-like macro with a value and every enumerator of the header,
# as the compiler evaluates them. MVX_VERSION_MINOR, _PATCH and _HEX move with each release.
dump_constants() {
    names=$(CC=$CC sh "$srcdir/abi/header-names.sh" "$header" | awk '$1 == "enumerator" { print $2 }')
    macros=$($CC -E -dM -I"$srcdir/include" -x c "$header" |
        awk '$1 == "#define" && $2 ~ /^MVX_[A-Za-z0-9_]*$/ && NF > 2 { print $2 }')
    {
        printf '#include <moduvex.h>\n#include <stdio.h>\n'
        printf 'static void pi(const char *n, long long v) { printf("%%s %%lld\\n", n, v); }\n'
        printf 'static void pu(const char *n, unsigned long long v) { printf("%%s %%llu\\n", n, v); }\n'
        printf 'static void ps(const char *n, const char *v) { printf("%%s \\"%%s\\"\\n", n, v); }\n'
        printf 'static void pf(const char *n, long double v) { printf("%%s %%Lg\\n", n, v); }\n'
        printf '#define P(n, x) _Generic((x), char *: ps, const char *: ps, float: pf, double: pf, '
        printf 'long double: pf, unsigned: pu, unsigned long: pu, unsigned long long: pu, '
        printf 'default: pi)(n, x)\n'
        printf 'int main(void)\n{\n'
        for n in $names $macros; do
            case $n in MVX_VERSION_MINOR | MVX_VERSION_PATCH | MVX_VERSION_HEX) continue ;; esac
            printf '    P("%s", %s);\n' "$n" "$n"
        done
        printf '    return 0;\n}\n'
    } >"$work/constants.c"
    $CC -std=gnu11 -I"$srcdir/include" -o "$work/constants" "$work/constants.c" ||
        die "could not evaluate the header's constants (see $work/constants.c above)"
    "$work/constants" | LC_ALL=C sort -u >"$1"
}

if [ "$mode" = update ]; then
    dump_abi "$work/libmoduvex.abi"
    dump_constants "$work/constants.txt"
    cp "$work/libmoduvex.abi" "$baseline"
    cp "$work/constants.txt" "$baseline_constants"
    say "wrote $baseline and $baseline_constants from $lib:"
    sed -n "s/.*<elf-symbol name='\([^']*\)' version='\([^']*\)'.*/\2/p" "$baseline" |
        sort | uniq -c | awk '{ printf "  %s: %d functions\n", $2, $1 }'
    echo "  constants: $(wc -l <"$baseline_constants")"
    say "review the change with git diff abi/, and commit it with the change that needed it"
    exit 0
fi

test -f "$baseline" || die "no baseline $baseline: create it with make abi-update"
test -f "$baseline_constants" || die "no baseline $baseline_constants: create it with make abi-update"
dump_abi "$work/current.abi"
dump_constants "$work/constants.txt"

failed=0
added=0

# ---- 1. abidiff ---------------------------------------------------------------------------------
# The current ABI is compared as an abidw dump, not as the binary: with --non-reachable-types
# (needed for the enum of error codes, which no function signature mentions) libabigail 2.2
# compares two dumps reliably but not a dump with a binary.
rc=0
"$ABIDIFF" --no-default-suppression --suppressions "$srcdir/abi/private-types.suppr" --fail-no-debug-info --non-reachable-types \
    "$baseline" "$work/current.abi" >"$work/report.txt" 2>&1 || rc=$?
echo "---- abidiff $baseline <built $dlname> (exit $rc)"
if [ $rc -gt 15 ] || [ $((rc & 3)) -ne 0 ]; then
    cat "$work/report.txt"
    die "abidiff failed (exit $rc: 1 = error, 2 = usage error, above 15 = crash)"
fi
if [ $((rc & 8)) -ne 0 ]; then
    cat "$work/report.txt"
    echo "INCOMPATIBLE: abidiff reports an incompatible change (exit $rc: bit 8)."
    failed=1
elif [ $rc -eq 4 ]; then
    # A change. abidiff's exit code does not separate allowed growth from breakage here (a
    # reordered struct or a changed parameter type exits 4 too), so read its leaf-changes report
    # and accept only: added functions and variables in version nodes the baseline does not
    # have, added types, and size-field structs that grew at their end.
    "$ABIDIFF" --no-default-suppression --suppressions "$srcdir/abi/private-types.suppr" --non-reachable-types --leaf-changes-only \
        "$baseline" "$work/current.abi" >"$work/leaf.txt" 2>&1 || true
    if awk -f "$srcdir/abi/classify-leaf.awk" "$baseline" "$baseline" "$work/leaf.txt" \
        >"$work/verdict.txt"; then
        cat "$work/report.txt"
        cat "$work/verdict.txt"
        added=1
    else
        cat "$work/report.txt"
        echo "---- the same changes, leaf by leaf (abidiff --leaf-changes-only):"
        cat "$work/leaf.txt"
        cat "$work/verdict.txt"
        failed=1
    fi
else
    echo "no ABI change reported"
    if grep -q 'filtered out' "$work/report.txt"; then
        # harmless changes (libabigail's term): new enumerators, typedef renames and the like
        echo "harmless changes (compatible):"
        "$ABIDIFF" --no-default-suppression --suppressions "$srcdir/abi/private-types.suppr" --non-reachable-types --harmless --no-harmful \
            "$baseline" "$work/current.abi" 2>&1 | sed -n '/^$/,$p' | sed '/^$/d' || true
        added=1
    fi
fi

# ---- 2. constants -------------------------------------------------------------------------------
echo "---- constants of moduvex.h against $baseline_constants"
if awk '
    NR == FNR { old[$1] = $0; next }
    { new[$1] = $0 }
    END {
        bad = 0
        for (n in old) {
            if (!(n in new)) { print "INCOMPATIBLE: " n " was removed (was: " old[n] ")"; bad = 1 }
            else if (new[n] != old[n]) { print "INCOMPATIBLE: " n " changed: " old[n] " -> " new[n]; bad = 1 }
        }
        for (n in new) if (!(n in old)) print "added: " new[n]
        exit bad
    }' "$baseline_constants" "$work/constants.txt" >"$work/constants-verdict.txt"; then
    if [ -s "$work/constants-verdict.txt" ]; then
        LC_ALL=C sort "$work/constants-verdict.txt"
        added=1
    else
        echo "no change"
    fi
else
    LC_ALL=C sort "$work/constants-verdict.txt"
    failed=1
fi

echo "----"
if [ $failed -ne 0 ]; then
    say "FAILED: $dlname breaks the ABI of the baseline (rules: $srcdir/abi/README.md)."
    say "If this is a new major version, bump it and run make abi-update; otherwise undo the change."
    exit 1
fi
if [ $added -ne 0 ]; then
    say "PASSED: compatible additions only (listed above); record them with make abi-update"
    say "when they are released."
else
    say "PASSED: the ABI is identical to the baseline."
fi
