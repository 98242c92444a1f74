#!/usr/bin/env bash
# scripts/callgraph.sh: which of jobq's C files call which (from the symbols
# each object file defines and uses), and the pairs that call each other.
# Run after `make`.  Prints "a.c -> b.c" lines, then "cycle: a.c <-> b.c"
# for each pair that depends both ways (and exits 1), or "no cycles".
set -euo pipefail
cd "$(dirname "$0")/.."
declare -A def
for o in src/*.o worker/*.o; do
    for s in $(nm --defined-only -g "$o" | awk '$2 ~ /[TDBR]/ {print $3}'); do def[$s]=${o%.o}.c; done
done
edges=$(for o in src/*.o worker/*.o; do
    for s in $(nm -u "$o" | awk '{print $2}'); do
        t=${def[$s]:-}
        [ -n "$t" ] && [ "$t" != "${o%.o}.c" ] && echo "${o%.o}.c -> $t"
    done
done | sort -u)
echo "$edges"
cycles=$(echo "$edges" | while read -r a _ b; do
    if echo "$edges" | grep -qx "$b -> $a" && [[ "$a" < "$b" ]]; then echo "cycle: $a <-> $b"; fi
done)
[ -z "$cycles" ] || { echo "$cycles"; exit 1; }
echo "no cycles"
