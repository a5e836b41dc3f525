#!/bin/sh
# The exported dynamic symbols of the built library, with their version nodes, against the version
# script src/libmoduvex.map and the header:
#   1. every defined dynamic symbol is named in the script, at the node the script puts it in, as
#      the default version (name@@NODE), and every name in the script is exported there;
#   2. every exported name starts with mvx_, and the script names symbols one by one (no patterns);
#   3. the nodes form one chain: MODUVEX_<major>.0, then MODUVEX_<major>.1 inheriting it, and so
#      on, and the library defines exactly those nodes with those parents;
#   4. the script's names are exactly the functions moduvex.h declares;
#   5. the SONAME is libmoduvex.so.<MVX_VERSION_MAJOR> and the file libmoduvex.so.<MAJOR.MINOR.PATCH>
#      (-version-info MAJOR+MINOR:PATCH:MINOR, abi/README.md).
# Runs from the build directory (make check); prints "N passed, N failed".
set -u
srcdir=${srcdir:-.}
READELF=${READELF:-readelf}
map=$srcdir/src/libmoduvex.map
header=$srcdir/include/moduvex.h
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mvx-symbols.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ] && exit 0; exit 1; }

dlname=$(sed -n "s/^dlname='\(.*\)'$/\1/p" libmoduvex.la 2>/dev/null)
lib=.libs/$dlname
if [ -z "$dlname" ] || [ ! -f "$lib" ]; then
    fail "no built library (libmoduvex.la, .libs/$dlname)"
    finish
fi

# ---- the version script: "NODE PARENT" per node (PARENT "-" for none), "SYMBOL NODE" per name ------
# Comments go first; then nodes are `NAME { global: a; b; local: *; } [PARENT];`.
awk '
    { text = text $0 "\n" }
    END {                                       # drop /* comments */, then split into tokens
        while ((a = index(text, "/*")) > 0) {
            rest = substr(text, a + 2); b = index(rest, "*/")
            text = substr(text, 1, a - 1) " " (b ? substr(rest, b + 2) : "")
        }
        gsub(/[{};:]/, " & ", text); gsub(/[ \t\n]+/, " ", text); print text
    }' "$map" | awk '
    { for (i = 1; i <= NF; i++) tok[++n] = $i }
    END {
        i = 1
        while (i <= n) {
            node = tok[i]; if (tok[i + 1] != "{") { print "error bad-syntax-near " node; exit }
            i += 2; scope = "global"
            while (i <= n && tok[i] != "}") {
                if ((tok[i] == "global" || tok[i] == "local") && tok[i + 1] == ":") { scope = tok[i]; i += 2; continue }
                if (tok[i] == ";") { i++; continue }
                if (scope == "global") print "sym " tok[i] " " node
                else if (tok[i] != "*") print "local " tok[i] " " node
                i++
            }
            i++
            parent = "-"
            if (tok[i] != ";") { parent = tok[i]; i++ }
            print "node " node " " parent
            i++
        }
    }' >"$tmp/map.txt"

if grep -q '^error' "$tmp/map.txt"; then
    fail "cannot parse $map: $(grep '^error' "$tmp/map.txt")"
    finish
fi
awk '$1 == "sym" { print $2 "@@" $3 }' "$tmp/map.txt" | LC_ALL=C sort >"$tmp/map-syms.txt"
awk '$1 == "node" { print $2, $3 }' "$tmp/map.txt" >"$tmp/map-nodes.txt"
test -s "$tmp/map-syms.txt" || fail "no global symbol in $map"

# ---- the library: defined dynamic symbols and version definitions ---------------------------------
"$READELF" -V -W "$lib" | awk '
    /Version definition section/ { on = 1; next }
    /Version needs section/ { on = 0 }
    on && /Flags: BASE/ { next }
    on && / Name: / { sub(/.* Name: /, ""); name = $1; parent[name] = "-"; order[++n] = name; next }
    on && / Parent 1: / { sub(/.* Parent 1: /, ""); parent[name] = $1 }
    END { for (i = 1; i <= n; i++) print order[i], parent[order[i]] }
' >"$tmp/lib-nodes.txt"
"$READELF" --dyn-syms -W "$lib" | awk -v nodes="$(awk '{ print $1 }' "$tmp/lib-nodes.txt" | tr '\n' ' ')" '
    BEGIN { split(nodes, a, " "); for (i in a) isnode[a[i]] = 1 }
    $1 ~ /^[0-9]+:$/ && NF >= 8 && $7 != "UND" && $5 != "LOCAL" {
        if ($8 in isnode) next                 # the version definitions themselves (ABS)
        print $8
    }' | LC_ALL=C sort >"$tmp/lib-syms.txt"

# ---- 1. exported == named, at the same node, as default versions -----------------------------------
extra=$(LC_ALL=C comm -23 "$tmp/lib-syms.txt" "$tmp/map-syms.txt")
missing=$(LC_ALL=C comm -13 "$tmp/lib-syms.txt" "$tmp/map-syms.txt")
if [ -z "$extra" ]; then
    pass "every exported symbol is named in $map at its node ($(wc -l <"$tmp/lib-syms.txt") symbols)"
else
    fail "exported but not named in $map at that node (or not name@@NODE):"
    echo "$extra" | sed 's/^/    /'
fi
if [ -z "$missing" ]; then
    pass "every name in $map is exported at its node"
else
    fail "named in $map but not exported (or at another node):"
    echo "$missing" | sed 's/^/    /'
fi

# ---- 2. names ----------------------------------------------------------------------------------------
bad=$(sed 's/@.*//' "$tmp/lib-syms.txt" | grep -v '^mvx_[a-z0-9_]*$' || true)
if [ -z "$bad" ]; then pass "every exported symbol is mvx_*"; else fail "exported names that are not mvx_*: $bad"; fi
bad=$(awk '$1 == "sym" && $2 !~ /^mvx_[a-z0-9_]+$/ { print $2 }' "$tmp/map.txt")
if [ -z "$bad" ]; then pass "$map names every symbol one by one, all mvx_*"; else fail "$map global entries that are patterns or not mvx_*: $bad"; fi
dups=$(awk '$1 == "sym" { print $2 }' "$tmp/map.txt" | sort | uniq -d)
if [ -z "$dups" ]; then pass "no symbol is named twice"; else fail "named twice in $map: $dups"; fi

# ---- 3. the chain of version nodes ---------------------------------------------------------------------
major=$(sed -n 's/^#define MVX_VERSION_MAJOR[[:space:]]\{1,\}\([0-9]\{1,\}\).*/\1/p' "$header")
chain=$(awk -v major="$major" '
    { want = "MODUVEX_" major "." (NR - 1); wantp = (NR == 1) ? "-" : prev
      if ($1 != want || $2 != wantp) printf "node %d is %s (parent %s), expected %s (parent %s); ", NR, $1, $2, want, wantp
      prev = $1 }' "$tmp/map-nodes.txt")
if [ -z "$chain" ] && [ -n "$major" ]; then
    pass "version nodes form the chain $(awk '{ print $1 }' "$tmp/map-nodes.txt" | tr '\n' ' ')"
else
    fail "version nodes of $map: ${chain:-no MVX_VERSION_MAJOR in $header}"
fi
if cmp -s "$tmp/map-nodes.txt" "$tmp/lib-nodes.txt"; then
    pass "the library defines exactly these nodes, with these parents"
else
    fail "version definitions of $lib differ from $map (script / library):"
    diff "$tmp/map-nodes.txt" "$tmp/lib-nodes.txt" | sed 's/^/    /'
fi

# ---- 4. header == script ----------------------------------------------------------------------------------
CC=${CC:-cc} sh "$srcdir/abi/header-names.sh" "$header" | awk '$1 == "function" { print $2 }' |
    LC_ALL=C sort >"$tmp/header-fns.txt"
awk '$1 == "sym" { print $2 }' "$tmp/map.txt" | LC_ALL=C sort >"$tmp/map-names.txt"
if test -s "$tmp/header-fns.txt" && cmp -s "$tmp/header-fns.txt" "$tmp/map-names.txt"; then
    pass "the functions moduvex.h declares are exactly the names in $map"
else
    fail "moduvex.h and $map disagree (< header only, > script only):"
    diff "$tmp/header-fns.txt" "$tmp/map-names.txt" | grep '^[<>]' | sed 's/^/    /'
fi

# ---- 5. SONAME and file name follow the header's version (abi/README.md, "Versions") ---------------
minor=$(sed -n 's/^#define MVX_VERSION_MINOR[[:space:]]\{1,\}\([0-9]\{1,\}\).*/\1/p' "$header")
patch=$(sed -n 's/^#define MVX_VERSION_PATCH[[:space:]]\{1,\}\([0-9]\{1,\}\).*/\1/p' "$header")
soname=$("$READELF" -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
realname=$(sed -n "s/^library_names='\([^ ']*\).*/\1/p" libmoduvex.la)
if [ "$soname" = "libmoduvex.so.$major" ] && [ "$soname" = "$dlname" ]; then
    pass "SONAME $soname matches MVX_VERSION_MAJOR $major"
else
    fail "SONAME '$soname' (libtool dlname '$dlname'), expected libmoduvex.so.$major"
fi
if [ "$realname" = "libmoduvex.so.$major.$minor.$patch" ]; then
    pass "file name $realname matches the header's version $major.$minor.$patch"
else
    fail "file name '$realname', expected libmoduvex.so.$major.$minor.$patch: set -version-info to $((major + minor)):$patch:$minor in Makefile.am"
fi

finish
