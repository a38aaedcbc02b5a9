#!/usr/bin/env bash
# The demo end to end: accepted and rejected decisions, a log that verifies, and a
# verify that fails, naming the first bad record, after a byte of a record is
# changed, a record is removed from the middle, or the last record is removed.
source "$(dirname "$0")/lib.sh"

DEMO_POINTS=500 B=$B tools/demo.sh > "$T/demo.out" 2>&1 || { cat "$T/demo.out"; fail "demo failed"; }
cat "$T/demo.out"
grep -q "tokens per accepted" "$T/demo.out" || fail "no summary"
grep -Eq "precision [0-9.]+ .* recall [0-9.]+" "$T/demo.out" || fail "no precision/recall"
LOG=build/demo/state/decisions.jsonl
M=("$BIN/meshctl" --config config/demo.yaml)
"${M[@]}" --json summary > "$T/summary.json"
jq_py '
s = d["decisions"]; print(s)
assert s["accepted"] > 0, "no accepted decision"
assert s["rejected"] + s["fallback"] > 0, "no rejected decision"
assert d["tokens"] > 0' < "$T/summary.json"
# The gates rejected each kind of bad proposal somewhere in the log.
python3 - "$LOG" <<'PY'
import json, sys
verdicts = []
for line in open(sys.argv[1]):
    r = json.loads(line)
    for a in r.get("attempts", []):
        verdicts += [(v.get("rule"), v.get("verdict")) for v in a.get("verdicts") or []]
        if a.get("error"): verdicts.append(("parse", a["error"]))
rejects = {x for x in verdicts if x[1] != "accept"}
print(sorted(rejects))
assert ("builtin", "reject") in rejects, "builtin schema never rejected"
assert any(r == "parse" for r, _ in rejects), "non-JSON output never seen"
assert any(r not in ("builtin", "parse") for r, _ in rejects), "no Lua rule ever rejected"
PY

"${M[@]}" audit list | head -5
id=$("${M[@]}" --json audit list | jq_py 'print(d[0]["id"])')
"${M[@]}" audit show "${id:0:12}" > "$T/show.txt" || fail "audit show by prefix"
grep -q "$id" "$T/show.txt" || fail "audit show does not show the id"

cp "$LOG" "$T/good.jsonl"; [ -f "$LOG.head" ] && cp "$LOG.head" "$T/good.jsonl.head"
"${M[@]}" --log "$T/good.jsonl" audit verify || fail "the demo log does not verify"

lines=$(wc -l < "$T/good.jsonl")
mid=$(( lines / 2 ))
check_fails() {  # file, description
    local out
    if out=$("${M[@]}" --log "$1" audit verify 2>&1); then fail "verify passed after: $2"; fi
    echo "$2 -> $out"
    echo "$out" | grep -q "FAIL" || fail "verify did not name the bad record ($2)"
}
# 1. change one byte of a middle record (several positions, including inside the hash)
len=$(sed -n "${mid}p" "$T/good.jsonl" | wc -c)
for pos in 2 10 $(( len / 2 )) $(( len - 5 )); do
    cp "$T/good.jsonl" "$T/t.jsonl"; cp "$T/good.jsonl.head" "$T/t.jsonl.head"
    python3 - "$T/t.jsonl" "$mid" "$pos" <<'PY'
import sys
path, line, pos = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = open(path, 'rb').read().split(b'\n')
rec = bytearray(data[line - 1]); i = min(pos, len(rec) - 1)
rec[i] = ord('0') if rec[i] != ord('0') else ord('1')
data[line - 1] = bytes(rec); open(path, 'wb').write(b'\n'.join(data))
PY
    check_fails "$T/t.jsonl" "byte $pos of record line $mid changed"
    out=$("${M[@]}" --log "$T/t.jsonl" audit verify || true)
    echo "$out" | grep -q "line $mid)" || fail "did not name line $mid"
done
# 2. remove a middle record
sed "${mid}d" "$T/good.jsonl" > "$T/t.jsonl"; cp "$T/good.jsonl.head" "$T/t.jsonl.head"
check_fails "$T/t.jsonl" "record line $mid removed"
# 3. remove the last record
head -n $(( lines - 1 )) "$T/good.jsonl" > "$T/t.jsonl"; cp "$T/good.jsonl.head" "$T/t.jsonl.head"
check_fails "$T/t.jsonl" "last record removed"
echo ok
