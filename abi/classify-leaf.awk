# classify-leaf.awk BASELINE.abi BASELINE.abi LEAF-REPORT - used by abi-check.sh.
#
# Reads the baseline twice (the id of size_t, then which public structs start with a size_t
# `size` member at offset 0, and which version nodes exist), then the report of
# `abidiff --leaf-changes-only --non-reachable-types BASELINE CURRENT`, and decides whether every
# change in it is allowed in a minor release (abi/README.md):
#   - a function or variable added in a version node the baseline does not have;
#   - a type added;
#   - a size-field struct that grew at its end: its size grew and every inserted member starts at
#     or after the old size, nothing else in it changed.
# Anything else, including any line of the report this script does not recognise, is
# incompatible. Prints one line per change ("compatible: ..." or "INCOMPATIBLE: ..."); exits 1 if
# any change is incompatible.

function bad(msg) { print "INCOMPATIBLE: " msg; nbad++ }
function good(msg) { print "compatible: " msg; ngood++ }
function attr(line, name,    re) {                 # the value of XML attribute `name`
    re = "[ \t]" name "='[^']*'"
    if (!match(line, re)) return ""
    return substr(line, RSTART + length(name) + 3, RLENGTH - length(name) - 4)
}
function close_block() {
    if (blk == "") return
    if (blk == "#other") { blk = ""; return }
    if (!(blk in sizefield))
        bad("struct " blk " changed, and it has no size field at offset 0 (only size-field structs may grow)")
    else if (blk_detail != "")
        bad("struct " blk ": " blk_detail)
    else if (blk_ins > 0 && (blk_old == 0 || blk_minoff < blk_old))
        bad("struct " blk ": a member was inserted at byte " blk_minoff / 8 ", inside the old size" \
            (blk_old ? " of " blk_old / 8 " bytes" : "") " (new members go after the old end)")
    else if (blk_other != "")
        bad("struct " blk ": " blk_other)
    else if (!(blk_old > 0 && blk_new > blk_old))
        bad("struct " blk ": changed without growing")
    else if (blk_ins == 0)
        bad("struct " blk ": grew without a new member")
    else {
        accepted[blk] = 1
        good("struct " blk " grew at its end, from " blk_old / 8 " to " blk_new / 8 " bytes (" \
             blk_ins " new member" (blk_ins > 1 ? "s" : "") ")")
    }
    blk = ""
}

FNR == 1 { file++ }

# ---- the baseline: size_t's type id, version nodes --------------------------------------------
file == 1 {
    if ($0 ~ /<typedef-decl name='size_t' /) size_t_id[attr($0, "id")] = 1
    if ($0 ~ /<elf-symbol /) { v = attr($0, "version"); if (v != "") node[v] = 1 }
    next
}

# ---- the baseline: structs whose first member is `size_t size` at offset 0 -------------------------
file == 2 {
    if ($0 ~ /<class-decl / && $0 ~ /is-struct='yes'/ && $0 !~ /is-declaration-only='yes'/) {
        sname = attr($0, "name"); first = 1; off0 = 0; next
    }
    if (first && $0 ~ /<data-member /) { off0 = ($0 ~ /layout-offset-in-bits='0'/); next }
    if (first && $0 ~ /<var-decl /) {
        if (off0 && attr($0, "name") == "size" && (attr($0, "type-id") in size_t_id))
            sizefield[sname] = 1
        first = 0
    }
    next
}

# ---- the leaf report -----------------------------------------------------------------------------
function flush_pending() {
    if (pending != "" && pending_detail != "") bad(pending " changed: " pending_detail)
    pending = ""; pending_detail = ""
}
/^$/ { close_block(); flush_pending(); next }

# summaries: kept to cross-check the details below
/^Leaf changes summary: / || /^Changed leaf types summary: / { next }
/^Removed\/Changed\/Added (functions|variables) summary: / ||
/^(Function|Variable) symbols changes summary: / || /^Unreachable types summary: / {
    close_block(); flush_pending()
    split($0, w, /[:,] */)
    summary_removed += w[2] + 0
    if ($0 ~ /^Removed/) summary_changed += w[3] + 0
    next
}

# section headers
/^[0-9]+ Added (function|variable)s?:$/ ||
/^[0-9]+ Added (function|variable) symbols? not referenced by debug info:$/ { close_block(); flush_pending(); sect = "added"; next }
/^[0-9]+ added types? unreachable from any public interface:$/ { close_block(); flush_pending(); sect = "addtype"; next }
/^[0-9]+ changed types? unreachable from any public interface:$/ { close_block(); flush_pending(); sect = "unreach"; next }
/^[0-9]+ (Removed|removed) / { close_block(); flush_pending(); sect = "removed"; next }
/^[0-9]+ (functions?|variables?) with some (indirect )?sub-type changes?:$/ { close_block(); flush_pending(); sect = "changed"; next }

# a leaf type change
/^'.*' changed:$/ {
    close_block(); flush_pending()
    desc = substr($0, 2, length($0) - 11)
    if (desc ~ /^struct mvx_[A-Za-z0-9_]+ at /) {
        blk = desc; sub(/^struct /, "", blk); sub(/ at .*/, "", blk)
        blk_old = blk_new = 0; blk_ins = 0; blk_minoff = -1; blk_other = blk_detail = ""
        inserting = 0; header = ""
    } else {
        bad(desc " changed")
        blk = "#other"
    }
    next
}
blk != "" && /^  / {
    if (blk == "#other") next
    s = $0; sub(/^ +/, "", s)
    if ($0 ~ /^  type size changed from [0-9]+ to [0-9]+ \(in bits\)$/) {
        blk_old = $5 + 0; blk_new = $7 + 0; inserting = 0
    } else if ($0 ~ /^  [0-9]+ data member insertions?:$/) {
        inserting = 1
    } else if (inserting && $0 ~ /^    '.*', at offset [0-9]+ \(in bits\)/) {
        sub(/.*', at offset /, "", s); off = s + 0
        blk_ins++
        if (blk_minoff < 0 || off < blk_minoff) blk_minoff = off
    } else if ($0 ~ /^    /) {
        if (blk_detail == "") blk_detail = header " " s      # a member deleted or changed
    } else {
        inserting = 0; header = s
        if (blk_other == "") blk_other = s
    }
    next
}
/^  / && sect == "added" {
    if ($0 ~ /^  \[A\] /) {
        s = $0; sub(/\}$/, "", s); sub(/.*[ {]/, "", s)
        if (s !~ /@/) { bad("added without a version node: " substr($0, 7)); next }
        sym = s; sub(/@.*/, "", sym); ver = s; sub(/^[^@]*@+/, "", ver)
        if (s !~ /@@/) bad(sym " is added as a non-default version (" s ")")
        else if (ver in node)
            bad(sym " is added to " ver ", a version node the baseline already has: new functions go in a new node (MODUVEX_1.<n+1> inheriting the last one)")
        else good("added " sym " in the new version node " ver)
    } else bad("unexpected line: " $0)
    next
}
/^  / && sect == "addtype" {
    if ($0 ~ /^  \[A\] /) { s = $0; sub(/^  \[A\] /, "", s); good("added type " s) }
    else bad("unexpected line: " $0)
    next
}
/^  / && sect == "unreach" {
    if ($0 ~ /^  \[C\] '.*' changed:$/) {
        flush_pending()
        pending = substr($0, 8, length($0) - 17)
    } else if (pending != "" && $0 ~ /^    details were reported earlier$/) {
        pending = ""                              # judged above, as a leaf
    } else if (pending != "") {
        s = $0; sub(/^ +/, "", s); pending_detail = s     # the last line is the most specific
    } else bad("unexpected line: " $0)
    next
}
/^  / && (sect == "removed" || sect == "changed") {
    if ($0 ~ /^  \[[DC]\] /) bad((sect == "removed" ? "removed: " : "changed: ") substr($0, 7))
    next                                          # the details of a change already reported
}

{ close_block(); flush_pending(); bad("unexpected line in the report: " $0) }

END {
    close_block(); flush_pending()
    if (nbad == 0 && (summary_removed > 0 || summary_changed > 0))
        bad("abidiff counts " summary_removed " removed and " summary_changed " changed declarations")
    if (nbad == 0 && ngood == 0) bad("abidiff reported a change that this check does not recognise")
    exit nbad > 0
}
