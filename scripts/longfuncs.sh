#!/usr/bin/env bash
# scripts/longfuncs.sh [LIMIT]: C functions of src/ and worker/ longer than
# LIMIT lines (80), from their opening brace in column 0 to their closing
# one, and files longer than 1000 lines.
cd "$(dirname "$0")/.." || exit 1
limit=${1:-80}
for f in src/*.c worker/*.c; do
    awk -v f="$f" -v limit="$limit" '
        /^[A-Za-z_].*\(/ && !/;[ \t]*$/ { name = $0 }
        /^\{/ { start = NR; fn = prev }
        /^\}/ && start { n = NR - start + 1; if (n > limit) printf "%s:%d %s (%d lines)\n", f, start, fn, n; start = 0 }
        { if ($0 ~ /^[A-Za-z_][A-Za-z0-9_]*\(/) prev = $0 }' "$f"
    n=$(wc -l <"$f"); [ "$n" -gt 1000 ] && echo "$f: $n lines"
done
exit 0
