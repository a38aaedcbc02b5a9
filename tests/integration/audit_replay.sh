#!/usr/bin/env bash
# meshctl audit replay on the demo's log: no differences against the archived rules; a
# deliberately changed archived rule gives differences naming the rule and reason (exit
# 1); a candidate set (--rules) that refuses more reports accepted -> refused (exit 1);
# a malformed archive and a missing one are clear errors (exit 2); --from/--to bound what
# is replayed; a log from before decisions recorded their gate inputs is skipped with a
# count.  The demo runs in a directory of this test's own (DEMO_DIR), so it does not
# touch $B/demo.
source "$(dirname "$0")/lib.sh"

mkdir -p "$T/b"
# tools/demo.sh writes into $B/demo; give it a build dir of its own whose binaries are
# the real ones.
for f in meshd mesh-agent meshctl mesh-gen; do
    [ -e "$BIN/$f" ] && ln -s "$BIN/$f" "$T/b/$f"
done
B_ABS=$T/b DEMO_POINTS=${DEMO_POINTS:-400} bash -c 'B=$B_ABS tools/demo.sh' > "$T/demo.out" 2>&1 \
    || { tail -30 "$T/demo.out"; fail "demo failed"; }
STATE=$T/b/demo/state
LOG=$STATE/decisions.jsonl
[ -s "$LOG" ] || fail "the demo wrote no decision log"
M=("$BIN/meshctl" --config "$T/b/demo/meshd.yaml")

# 1. the demo's log replays with no difference
out=$("${M[@]}" audit replay) || { echo "$out"; fail "replay of the demo's log: exit $?"; }
echo "$out"
echo "$out" | grep -q " 0 differ" || fail "differences in the demo's log"
"${M[@]}" --json audit replay > "$T/r.json"
python3 - "$T/r.json" "$LOG" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
gated = sum(1 for l in open(sys.argv[2]) for rec in [json.loads(l)]
            if rec.get("type") == "decision"
            and any(a.get("verdicts") for a in rec.get("attempts", [])))
assert r["ok"] and r["mode"] == "archive" and r["differ"] == 0, r
assert r["replayed"] == gated and gated > 0, (r["replayed"], gated)
assert r["attempts_replayed"] == r["attempts"], r
assert not r["not_replayable"], r
print("replayed %d decisions, %d attempts" % (r["replayed"], r["attempts_replayed"]))
PY

# 2. a copy of the state directory with an archived rule changed: differences, exit 1
cp -r "$STATE" "$T/copy"
floor=$(ls "$T"/copy/rules/*/*-confidence_floor.lua | head -1)
[ -n "$floor" ] || fail "no archived confidence_floor"
sed -i 's/^local FLOOR = 0.6$/local FLOOR = 0.99/' "$floor"
grep -q "FLOOR = 0.99" "$floor" || fail "could not change the archived rule"
set +e
out=$("$BIN/meshctl" --log "$T/copy/decisions.jsonl" audit replay 2>&1); rc=$?
set -e
echo "$out"
[ $rc = 1 ] || fail "replay with a changed archived rule: exit $rc, expected 1"
echo "$out" | grep -q "ALTERED: rule set" || fail "the altered archive is not reported"
echo "$out" | grep -q "confidence_floor: recorded accept; replayed reject: confidence .* below the floor 0.99" \
    || fail "the difference does not name the rule and reason"

# 3. a candidate set that refuses more: accepted -> refused, exit 1
mkdir "$T/candidate"
cp "$(dirname "$floor")"/*.lua "$T/candidate/"
set +e
out=$("${M[@]}" audit replay --rules "$T/candidate"); rc=$?
set -e
echo "$out"
[ $rc = 1 ] || fail "candidate rules: exit $rc, expected 1"
echo "$out" | grep -q "accepted -> refused" || fail "no accepted -> refused"
echo "$out" | grep -q "refused by confidence_floor: reject: confidence" || fail "no rule and reason"
"${M[@]}" --json audit replay --rules "$T/candidate" > "$T/c.json" || true
python3 - "$T/c.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["mode"] == "candidate" and not r["ok"] and r["accepted_to_refused"] > 0, r
c = r["changed"][0]
assert c["from"] == "accepted" and c["to"] == "refused", c
assert c["rules"][0]["rule"] == "confidence_floor", c
PY
# the same rules as archived, as a candidate: nothing would change
mkdir "$T/same"
cp "$(ls -d "$STATE"/rules/*/ | while read -r d; do ls "$d"*confidence_floor.lua 2>/dev/null; done | head -1 | xargs dirname)"/*.lua "$T/same/"
"${M[@]}" audit replay --rules "$T/same" | tail -1 | grep -q " 0 would change" \
    || fail "the archived rules as a candidate change something"

# 4. a malformed archive, and a missing one: exit 2 with a clear error
echo "{ not json" > "$(dirname "$floor")/manifest.json"
set +e
out=$("$BIN/meshctl" --log "$T/copy/decisions.jsonl" audit replay 2>&1); rc=$?
set -e
echo "$out"
[ $rc = 2 ] || fail "malformed archive: exit $rc, expected 2"
echo "$out" | grep -q "manifest.json: not a manifest" || fail "malformed archive: unclear error"
# (the rules records name the original archive too: it is moved away for this case)
rm -rf "$T/copy/rules"
mv "$STATE/rules" "$STATE/rules.away"
set +e
out=$("$BIN/meshctl" --log "$T/copy/decisions.jsonl" audit replay 2>&1); rc=$?
set -e
mv "$STATE/rules.away" "$STATE/rules"
echo "$out"
[ $rc = 2 ] || fail "missing archive: exit $rc, expected 2"
echo "$out" | grep -q "is not archived" || fail "missing archive: unclear error"
set +e
"$BIN/meshctl" --log "$T/nothing.jsonl" audit replay 2>/dev/null; rc=$?
set -e
[ $rc = 2 ] || fail "missing log: exit $rc, expected 2"

# 5. --from/--to: only decisions in the range are replayed and reported
read -r from to want < <(python3 - "$LOG" <<'PY'
import json, sys
seqs = [r["seq"] for l in open(sys.argv[1]) for r in [json.loads(l)] if r.get("type") == "decision"]
a, b = seqs[len(seqs) // 3], seqs[2 * len(seqs) // 3]
print(a, b, sum(1 for s in seqs if a <= s <= b))
PY
)
"$BIN/meshctl" --log "$LOG" --json audit replay --from "$from" --to "$to" --rules "$T/candidate" > "$T/f.json" || true
python3 - "$T/f.json" "$from" "$to" "$want" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); a, b, want = map(int, sys.argv[2:5])
assert r["decisions"] == want, (r["decisions"], want)
assert all(a <= c["seq"] <= b for c in r["changed"] + r["nondeterministic"]), r["changed"]
print("--from %d --to %d: %d decisions" % (a, b, want))
PY
set +e
"$BIN/meshctl" --log "$LOG" audit replay --from 9 --to 3 2>/dev/null; rc=$?
set -e
[ $rc = 64 ] || fail "an empty range: exit $rc, expected 64"

# 6. a log from before decisions recorded their gate inputs: skipped with a count
python3 - "$LOG" "$T/old.jsonl" <<'PY'
import json, sys
with open(sys.argv[2], "w") as out:
    for l in open(sys.argv[1]):
        r = json.loads(l)
        r.pop("gate", None)
        for a in r.get("attempts", []):
            a.pop("ctx_action", None)
        out.write(json.dumps(r, separators=(",", ":")) + "\n")
PY
out=$("$BIN/meshctl" --log "$T/old.jsonl" audit replay) || fail "old log: exit $?"
echo "$out"
echo "$out" | grep -q "not replayable (decisions): missing gate" || fail "old log: no count"
echo ok
