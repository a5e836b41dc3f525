#!/bin/sh
# header-names.sh HEADER - every name a C header declares, one "KIND NAME" per line, sorted:
#   macro       every #define in the header's own text (active or not, #undef'd ones too)
#   function    functions it declares
#   variable    objects it declares
#   typedef     typedef names
#   tag         struct, union and enum tags
#   enumerator  enumeration constants (after macro expansion: X-macros included)
# Declarations are read from the preprocessor's output ($CC -E, default cc), keeping only the
# lines the linemarkers attribute to HEADER itself, so the system headers it includes do not
# count. Used by tests/header-hygiene.sh (the names must be mvx_/MVX_) and abi/abi-check.sh (the
# values of the macros and enumerators are part of the ABI).
set -eu
header=${1:?usage: header-names.sh HEADER}
test -r "$header" || { echo "header-names.sh: cannot read $header" >&2; exit 2; }
dir=$(dirname "$header")

# Macros: the header's own #define lines, comments and continuations do not matter for the name.
sed -n 's/^[[:space:]]*#[[:space:]]*define[[:space:]]\{1,\}\([A-Za-z_][A-Za-z0-9_]*\).*/macro \1/p' \
    "$header"

# Declarations: the preprocessed header, its own lines only, tokenized and parsed at top level.
# shellcheck disable=SC2086 # CPPFLAGS may hold several words
${CC:-cc} -E ${HEADER_NAMES_CPPFLAGS:-} -I"$dir" -x c "$header" | awk -v want="$header" '
function base(p) { sub(/.*\//, "", p); return p }
BEGIN { wantbase = base(want) }
/^# [0-9]+ "/ {                                     # linemarker: which file the next lines are from
    f = $3; gsub(/"/, "", f); mine = (f == want || base(f) == wantbase); next
}
/^#/ { next }                                       # #pragma and the like
mine { text = text " " $0 }
END {
    # tokens: identifiers, numbers, string and character literals, punctuators
    n = 0; s = text
    while (length(s) > 0) {
        if (match(s, /^[ \t\r\n]+/)) { s = substr(s, RLENGTH + 1); continue }
        if (match(s, /^[A-Za-z_][A-Za-z0-9_]*/) || match(s, /^[0-9][A-Za-z0-9_.]*/) ||
            match(s, /^"([^"\\]|\\.)*"/) || match(s, /^\047([^\047\\]|\\.)*\047/) ||
            match(s, /^\.\.\./) || match(s, /^(->|::|<<|>>|<=|>=|==|!=|&&|\|\|)/) ||
            match(s, /^./)) {
            tok[++n] = substr(s, 1, RLENGTH); s = substr(s, RLENGTH + 1)
        }
    }
    # split into top-level declarations at ";" outside braces and parentheses
    # (a function definition, such as a static inline helper, ends at its closing brace)
    start = 1; depth = 0
    for (i = 1; i <= n; i++) {
        t = tok[i]
        if (t == "{" || t == "(" || t == "[") {
            if (t == "{" && depth == 0) body = (i > 1 && tok[i - 1] == ")")
            depth++
        } else if (t == "}" || t == ")" || t == "]") {
            depth--
            if (t == "}" && depth == 0 && body) { declaration(start, i); start = i + 1; body = 0 }
        } else if (t == ";" && depth == 0) { declaration(start, i - 1); start = i + 1 }
    }
    if (start <= n) declaration(start, n)
}
function ident(t) { return t ~ /^[A-Za-z_][A-Za-z0-9_]*$/ }
function keyword(t) {
    return t ~ /^(typedef|extern|static|inline|__inline|__inline__|const|volatile|restrict|__restrict|__restrict__|signed|unsigned|short|long|int|char|float|double|void|_Bool|struct|union|enum|register|auto|_Noreturn|__extension__|_Atomic|_Alignas|_Thread_local)$/
}
function declaration(a, b,    i, j, t, d, m, out, istypedef, k, c, nx, found) {
    if (a > b) return
    # tags, and enumerators inside enum bodies
    for (i = a; i <= b; i++) {
        if ((tok[i] == "struct" || tok[i] == "union" || tok[i] == "enum") && ident(tok[i + 1]) &&
            !keyword(tok[i + 1]))
            print "tag " tok[i + 1]
        if (tok[i] == "enum") {
            j = i + 1
            if (ident(tok[j]) && tok[j] != "{") j++
            if (tok[j] != "{") continue
            d = 0
            for (k = j; k <= b; k++) {
                if (tok[k] == "{" || tok[k] == "(" || tok[k] == "[") d++
                else if (tok[k] == "}" || tok[k] == ")" || tok[k] == "]") { d--; if (d == 0) break }
                else if (d == 1 && ident(tok[k]) && (tok[k - 1] == "{" || tok[k - 1] == ","))
                    print "enumerator " tok[k]
            }
        }
    }
    # drop brace bodies and __attribute__((...)) / __asm__(...) groups
    m = 0; d = 0
    for (i = a; i <= b; i++) {
        t = tok[i]
        if (t == "__attribute__" || t == "__asm__" || t == "asm" || t == "__declspec") {
            c = 0
            for (i++; i <= b; i++) { if (tok[i] == "(") c++; else if (tok[i] == ")" && --c == 0) break }
            continue
        }
        if (t == "{") {
            if (d == 0 && m > 0 && (out[m] == "struct" || out[m] == "union" || out[m] == "enum"))
                out[++m] = "<anonymous>"            # keeps "struct { } name" from looking tagged
            d++; continue
        }
        if (t == "}") { d--; continue }
        if (d == 0) out[++m] = t
    }
    istypedef = (m > 0 && out[1] == "typedef")
    # declarators, separated by commas outside parentheses; the name of each is the first
    # identifier that is not a keyword and is followed by something a declarator name can be
    # followed by: "(" opening a parameter list (not "(*"), ")", "[", ",", "=", ":" or the end.
    # Parameter lists are skipped whole, so parameter names never count.
    found = 0
    for (i = 1; i <= m; i++) {
        t = out[i]
        if (t == "(" && i > 1 && out[i + 1] != "*" && out[i + 1] != "^" && out[i + 1] != "(") {
            # a parameter list: skip it
            c = 0
            for (; i <= m; i++) { if (out[i] == "(") c++; else if (out[i] == ")" && --c == 0) break }
            continue
        }
        if (t == ",") { found = 0; continue }
        if (found || !ident(t) || keyword(t)) continue
        if (i > 1 && (out[i - 1] == "struct" || out[i - 1] == "union" || out[i - 1] == "enum"))
            continue                                # a tag, printed above
        nx = (i < m) ? out[i + 1] : ""
        if (nx == "" || nx == ")" || nx == "[" || nx == "," || nx == "=" || nx == ":" ||
            (nx == "(" && out[i + 2] != "*" && out[i + 2] != "^")) {
            if (istypedef) print "typedef " t
            else if (nx == "(") print "function " t
            else print "variable " t
            found = 1
        }
    }
}
' 
