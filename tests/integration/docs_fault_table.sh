#!/usr/bin/env bash
# docs/reasoning.md's table of faults per flavour is test_backend_faults' own table: every
# row it prints is in the docs as printed, so no cell of the docs is untested.
source "$(dirname "$0")/lib.sh"
"$BIN/tests/test_backend_faults" --table > "$T/table.md"
rows=$(grep -c '^| ' "$T/table.md")
[ "$rows" -gt 10 ] || fail "the table has $rows rows"
while IFS= read -r line; do
    grep -qxF -- "$line" docs/reasoning.md || fail "docs/reasoning.md lacks the row: $line"
done < "$T/table.md"
# and the docs have no row of that table the test does not print
python3 - "$T/table.md" <<'PY'
import sys
table = set(open(sys.argv[1]).read().splitlines())
docs = open("docs/reasoning.md").read().splitlines()
start = docs.index(next(l for l in table if l.startswith("| fault |")))
for line in docs[start:]:
    if not line.startswith("|"):
        break
    assert line in table, "a row in the docs that no test checks: " + line
PY
echo ok
