#!/bin/sh
# Hygiene of the public header, include/moduvex.h (rules in abi/README.md, "Header rules"):
#   1. it compiles by itself, with -Wall -Wextra -pedantic -Werror, as C89, C99 and C11 with gcc
#      and clang-14, and as C++11 and C++17 with g++ and clang++-14 (its extern "C" block
#      checked by a redeclaration with C linkage);
#   2. every name it defines starts with mvx_ (functions, variables, typedefs, tags) or MVX_
#      (macros, enumerators); MODUVEX_H, the include guard, is the one exception;
#   3. every struct it defines documents its size field and its reserved space: the first member is
#      `size_t size;` whose comment names sizeof(<the struct>) and says "no reserved space"
#      (either in that comment or in the comment just above the struct), or the struct is one of
#      the frozen value types (mvx_waker, mvx_timer) and says "Layout frozen" in the comment above it;
#   4. a size-field struct is used only through pointers in the header (never by value in a
#      parameter, a return type or another struct), since it may grow.
# clang-14 and clang++-14 are used when installed (CI installs them); a missing one is reported
# as skipped. Prints "N passed, N failed".
set -u
srcdir=${srcdir:-.}
header=$srcdir/include/moduvex.h
FROZEN="mvx_waker mvx_timer"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mvx-hygiene.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

# ---- 1. compiles alone -------------------------------------------------------------------------
cat >"$tmp/use.c" <<'EOF'
/* Includes only the public header (twice: the guard) and uses a few of its types. */
#include <moduvex.h>
#include <moduvex.h>

#ifdef __cplusplus
#include <type_traits>
#define ZERO {}
/* The header's extern "C" block: redeclaring with C linkage conflicts if it is missing. */
extern "C" int mvx_version(void);
extern "C" int mvx_spawn(mvx_runtime *, const mvx_task_vtable *, void *, mvx_join_handle **);
static_assert(std::is_standard_layout<mvx_waker>::value, "mvx_waker is a plain C struct");
static_assert(std::is_trivially_copyable<mvx_runtime_config>::value, "plain C struct");
#else
#define ZERO {0}
#endif

static int poll_ready(void *state, mvx_context *cx, void *output)
{
    (void)state;
    (void)cx;
    *(int *)output = MVX_OK;
    return MVX_POLL_READY;
}

int main(void)
{
    mvx_task_vtable vt = ZERO;
    mvx_runtime_config cfg = ZERO;
    mvx_failure failure = ZERO;
    mvx_worker_stats ws = ZERO;
    mvx_waker waker = {NULL, NULL};
    mvx_poll_fn poll = poll_ready;
    int (*init)(mvx_runtime_config *, size_t) = mvx_runtime_config_init;
    int64_t timeout = MVX_TIMEOUT_INFINITE;
    vt.size = sizeof vt;
    vt.poll = poll;
    vt.output_size = sizeof(int);
    cfg.size = sizeof cfg;
    failure.size = sizeof failure;
    ws.size = sizeof ws;
    return (init != NULL) + (waker.vtable == NULL) + (timeout < 0) + (MVX_EINVAL < 0) +
           (MVX_VERSION_HEX > 0) + (int)(vt.size + cfg.size + failure.size + ws.size > 0);
}
EOF
flags="-Wall -Wextra -pedantic -Werror -I$srcdir/include"
have() { command -v "$1" >/dev/null 2>&1; }
compile() { # compiler, language, standard
    if ! have "$1"; then
        echo "skipped: $1 -x $2 -std=$3 ($1 not installed)"
        return
    fi
    # shellcheck disable=SC2086 # flags are several words
    if "$1" -x "$2" -std="$3" $flags -c "$tmp/use.c" -o "$tmp/use.o" 2>"$tmp/err"; then
        pass "$1 -x $2 -std=$3 $flags"
    else
        fail "$1 -x $2 -std=$3 $flags:"
        sed 's/^/    /' "$tmp/err"
    fi
}
for cc in gcc clang-14; do
    for std in c89 c99 c11; do compile "$cc" c "$std"; done
done
for cxx in g++ clang++-14; do
    for std in c++11 c++17; do compile "$cxx" c++ "$std"; done
done

# ---- 2. names ----------------------------------------------------------------------------------
if CC=${CC:-cc} sh "$srcdir/abi/header-names.sh" "$header" | LC_ALL=C sort -u >"$tmp/names"; then
    bad=$(awk '
        $1 == "macro" && $2 == "MODUVEX_H" { next }
        ($1 == "macro" || $1 == "enumerator") && $2 !~ /^MVX_/ { print }
        ($1 != "macro" && $1 != "enumerator") && $2 !~ /^mvx_/ { print }' "$tmp/names")
    if [ -z "$bad" ]; then
        pass "only mvx_/MVX_ names: $(awk '{ c[$1]++ } END { for (k in c) printf "%d %ss, ", c[k], k }' \
            "$tmp/names" | sed 's/, $//')"
    else
        fail "names outside mvx_ (functions, variables, typedefs, tags) / MVX_ (macros, enumerators):"
        echo "$bad" | sed 's/^/    /'
    fi
    grep -q '^function mvx_spawn$' "$tmp/names" || fail "the name parser found no mvx_spawn: broken parser?"
else
    fail "could not list the header's names (abi/header-names.sh)"
fi

# ---- 3. every struct documents its size field and reserved space --------------------------------
# Reads the header's text (the comments are the documentation). For each struct with a body:
# the comment that ends on the line just above it ("doc"), its first member and that member's
# comment ("size comment", which may go on over several lines).
awk -v frozen=" $FROZEN " '
function norm(s) { gsub(/[ \t\n*\/]+/, " ", s); return tolower(s) }
# comments: remember the last one, and on which line it ended
{
    line = $0
    if (incomment) {
        comment = comment "\n" line
        if (index(line, "*/")) { incomment = 0; comment_end = NR }
    } else if ((p = index(line, "/*")) > 0 && substr(line, 1, p - 1) ~ /^[ \t]*$/) {
        comment = substr(line, p)
        if (index(substr(line, p + 2), "*/")) comment_end = NR; else incomment = 1
    }
}
state == "size" {
    sizecomment = sizecomment "\n" line
    if (index(line, "*/")) { check(); state = "" }
    next
}
state == "first" {
    if (line ~ /^[ \t]*$/) next
    first = line
    if (line ~ /^[ \t]*size_t[ \t]+size;/) {
        p = index(line, "/*")
        if (p == 0) { sizecomment = ""; check(); state = ""; next }
        sizecomment = substr(line, p)
        if (index(substr(line, p + 2), "*/")) { check(); state = "" } else state = "size"
    } else { sizecomment = ""; check(); state = "" }
    next
}
!incomment && /^[ \t]*(typedef[ \t]+)?struct[ \t]+[A-Za-z_][A-Za-z0-9_]*[ \t]*\{/ {
    name = $0; sub(/^[ \t]*(typedef[ \t]+)?struct[ \t]+/, "", name); sub(/[ \t]*\{.*/, "", name)
    doc = (comment_end == NR - 1) ? comment : ""
    state = "first"; nstructs++
    next
}
function check(   d, s) {
    d = norm(doc); s = norm(sizecomment)
    if (index(frozen, " " name " ")) {
        if (index(d, "layout frozen")) print "ok " name " (frozen value type: \"Layout frozen\")"
        else print "bad " name ": a frozen value type, but the comment above it does not say \"Layout frozen\""
        return
    }
    if (first !~ /^[ \t]*size_t[ \t]+size;/) {
        print "bad " name ": the first member is not `size_t size;` (found: " first ") and " name " is not a frozen type (" frozen ")"
        return
    }
    if (!index(s, "sizeof(" tolower(name) ")"))
        print "bad " name ": the comment of its size member does not name sizeof(" name "): " (sizecomment == "" ? "(no comment)" : sizecomment)
    else if (!index(s, "no reserved space") && !index(d, "no reserved space"))
        print "bad " name ": neither its size member nor the comment above it says \"no reserved space\""
    else
        print "ok " name " (size field and reserved space documented)"
    sizefield[name] = 1
}
END { print "count " nstructs + 0; for (n in sizefield) print "sizefield " n }
' "$header" >"$tmp/structs"
while read -r verdict rest; do
    case $verdict in
    ok) pass "struct $rest" ;;
    bad) fail "struct $rest (rule: abi/README.md, \"Header rules\")" ;;
    esac
done <"$tmp/structs"
[ "$(awk '$1 == "count" { print $2 }' "$tmp/structs")" -gt 0 ] || fail "no struct found in $header: broken parser?"

# ---- 4. size-field structs only behind pointers --------------------------------------------------
${CC:-cc} -E -P -I"$srcdir/include" -x c "$header" 2>/dev/null | tr -s ' \t\n' '   ' >"$tmp/flat"
for s in $(awk '$1 == "sizefield" { print $2 }' "$tmp/structs" | sort); do
    # every use of the name but its own definition ("struct S {", "} S;") must be "S *" or "S const *"
    uses=$(grep -o -P "(?<!struct )\b$s\b(?! ?(const ?)?\*)(?! ?\{)" "$tmp/flat" | wc -l)
    defs=$(grep -o -P "\} ?$s ?;" "$tmp/flat" | wc -l)
    if [ "$uses" -eq "$defs" ]; then
        pass "$s is used only through pointers"
    else
        fail "$s (a size-field struct, which may grow) is used by value in moduvex.h:"
        grep -o -P ".{0,40}(?<!struct )\b$s\b(?! ?(const ?)?\*)(?! ?\{).{0,20}" "$tmp/flat" |
            grep -v -P "\} ?$s ?;" | sed 's/^/    /'
    fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
