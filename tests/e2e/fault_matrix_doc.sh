#!/bin/sh
# Puts the outcome table of a fault matrix run (tests/e2e/test_fault_matrix,
# which writes it to $PARLEY_FAULT_MATRIX_OUT) into a document, between the
# lines "<!-- fault-matrix:begin -->" and "<!-- fault-matrix:end -->",
# with a line saying where it came from. `make fault-matrix-doc` runs both.
#   usage: fault_matrix_doc.sh TABLE DOC "SOURCE"
set -eu
table=$1
doc=$2
source=$3
[ -s "$table" ] || { echo "$0: no table in $table" >&2; exit 1; }
grep -q '^<!-- fault-matrix:begin -->$' "$doc" &&
  grep -q '^<!-- fault-matrix:end -->$' "$doc" ||
  { echo "$0: $doc has no fault-matrix markers" >&2; exit 1; }
tmp=$doc.tmp.$$
awk -v table="$table" -v source="$source" '
  /^<!-- fault-matrix:begin -->$/ {
    print; print ""; print source; print ""
    while ((getline line < table) > 0) print line
    print ""; skipping = 1; next
  }
  /^<!-- fault-matrix:end -->$/ { skipping = 0 }
  !skipping { print }
' "$doc" > "$tmp"
mv "$tmp" "$doc"
