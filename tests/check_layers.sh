#!/bin/sh
# The library's layers run one way (docs/architecture.md):
#   util  <  runtime, codec  <  transport, store  <  engine  <  api
# A file may use its own folder and the folders below it, never one above;
# runtime and codec do not use each other, nor do transport and store. No
# two files may need each other, directly or through others (a cycle), except inside api/, where the
# client and its sessions are a pair. Both are checked twice: on the
# `#include "..."` lines of src/ and on the symbols the objects of
# libparley-internal and libparley-common define and use (nm), so that a call declared in the
# callee's own header (an "upward" declaration) is caught too.
#
# Run by `make check` in a build directory (objects there, sources at
# $top_srcdir). LAYERS_REPORT=1 prints every edge between folders as well.
top=${top_srcdir:-.}
work=$(mktemp -d "${TMPDIR:-/tmp}/parley-layers.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

# unit -> folder, for every .c and .h of the library (src/cli is the program).
find "$top/src" -name cli -prune -o \( -name '*.c' -o -name '*.h' \) -print |
    sed "s|^$top/src/||" | awk '{
        n = split($0, p, "/"); file = p[n]; unit = file; sub(/\.[ch]$/, "", unit)
        folder = n > 1 ? p[1] : "."
        print unit, folder, $0
    }' | sort -u > "$work/files"
awk '{print $1, $2}' "$work/files" | sort -u > "$work/units"
if [ "$(cut -d' ' -f1 "$work/units" | uniq -d | head -n 1)" != "" ]; then
    echo "check_layers: one base name in two folders:"; cut -d' ' -f1 "$work/units" | uniq -d
    exit 1
fi

# Include edges: file's unit -> included header's unit (library headers only).
while read -r unit folder path; do
    sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$top/src/$path" |
        while read -r inc; do
            to=$(basename "$inc" .h)
            [ "$to" != "$unit" ] && echo "$unit $to"
        done
done < "$work/files" > "$work/include.raw"
awk 'NR == FNR {known[$1] = 1; next} ($2 in known)' "$work/units" "$work/include.raw" |
    sort -u > "$work/include.edges"

# Link edges: object -> the object defining a symbol it uses.
objs=$(find . \( -name 'libparley_internal_la-*.o' -o -name 'libparley_common_la-*.o' \) |
    awk -F/ '{b = $NF; if (!(b in seen)) {seen[b] = 1; print}}')
if [ -z "$objs" ]; then
    echo "check_layers: no objects of libparley-internal under $(pwd): build first"
    exit 1
fi
for o in $objs; do
    unit=$(basename "$o" .o); unit=${unit#libparley_internal_la-}; unit=${unit#libparley_common_la-}
    nm --defined-only -g "$o" | awk -v u="$unit" 'NF == 3 {print "D", u, $3}'
    nm -u "$o" | awk -v u="$unit" '{print "U", u, $NF}'
done > "$work/symbols"
awk '$1 == "D" {def[$3] = $2; next}
     $1 == "U" && ($3 in def) && def[$3] != $2 {print $2, def[$3]}' \
    "$work/symbols" "$work/symbols" | sort -u > "$work/link.edges"

# Judge one edge list: upward edges, then cycles (transitive closure; the
# library has some fifty units).
judge() {
    kind=$1
    awk -v kind="$kind" -v report="${LAYERS_REPORT:-0}" '
        BEGIN {
            rank["util"] = 0; rank["runtime"] = 1; rank["codec"] = 1
            rank["transport"] = 2; rank["store"] = 2; rank["engine"] = 3; rank["api"] = 4
        }
        NR == FNR { folder[$1] = $2; id[$1] = ++n; name[n] = $1; next }
        {
            a = $1; b = $2; fa = folder[a]; fb = folder[b]
            reach[id[a], id[b]] = 1
            if (fa != fb) across++
            if (fa != fb && report) printf "check_layers: %s edge %s/%s -> %s/%s\n", kind, fa, a, fb, b
            if (fa != fb && (fa in rank) && (fb in rank) && rank[fb] >= rank[fa]) {
                printf "check_layers: %s edge goes up or across: %s/%s -> %s/%s\n", kind, fa, a, fb, b
                bad++
            }
            if (fa != "." && !(fa in rank)) unranked[fa] = 1
            if (fb != "." && !(fb in rank)) unranked[fb] = 1
        }
        END {
            for (k = 1; k <= n; k++) for (i = 1; i <= n; i++) if (reach[i, k])
                for (j = 1; j <= n; j++) if (reach[k, j]) reach[i, j] = 1
            for (i = 1; i <= n; i++) {
                if (done[i] || !reach[i, i]) continue
                members = ""; all_api = 1
                for (j = 1; j <= n; j++) if (reach[i, j] && reach[j, i]) {
                    done[j] = 1; members = members " " folder[name[j]] "/" name[j]
                    if (folder[name[j]] != "api") all_api = 0
                }
                if (all_api) { printf "check_layers: %s cycle allowed in api/:%s\n", kind, members; continue }
                printf "check_layers: %s cycle:%s\n", kind, members
                bad++
            }
            for (f in unranked) { printf "check_layers: folder %s has no layer\n", f; bad++ }
            # A graph without edges across folders means the reading broke
            # (nm output, include syntax), not that the layers are fine.
            if (across < 10) { printf "check_layers: only %d %s edge(s) across folders: the check cannot read the tree\n", across, kind; bad++ }
            printf "check_layers: %s graph: %d unit(s), %d problem(s)\n", kind, n, bad
            exit bad > 0
        }' "$work/units" "$work/$kind.edges"
}
status=0
judge include || status=1
judge link || status=1
if [ "$status" -eq 0 ]; then
    echo "[  PASSED  ] 2 test(s)."
else
    echo "[  FAILED  ] the layers (docs/architecture.md) are broken above."
fi
exit "$status"
