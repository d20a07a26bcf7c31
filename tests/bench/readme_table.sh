#!/usr/bin/env bash
# readme_table.sh RESULTS README: rewrite, in README, the lines between
# "<!-- bench:readme -->" and "<!-- /bench:readme -->" with the tables of
# RESULTS/load.jsonl (tests/bench/tables.awk, table readme), so that the
# README's figures always come from a `make bench` run, never by hand.
set -eu
results=$1
readme=$2
here=$(dirname "$0")
memory=$results/memory.txt
[ -f "$memory" ] || memory=/dev/null

grep -q '^<!-- bench:readme -->$' "$readme" && grep -q '^<!-- /bench:readme -->$' "$readme" ||
  { echo "readme_table.sh: $readme has no <!-- bench:readme --> block" >&2; exit 1; }
table=$(mktemp)
trap 'rm -f "$table" "$table.new"' EXIT
awk -f "$here/results.awk" -f "$here/tables.awk" -v table=readme \
  "$results/load.jsonl" "$memory" > "$table"
awk -v table="$table" '
  /^<!-- bench:readme -->$/ { print; print ""; while ((getline l < table) > 0) print l
                              print ""; skip = 1; next }
  /^<!-- \/bench:readme -->$/ { skip = 0 }
  !skip' "$readme" > "$table.new"
cat "$table.new" > "$readme"
