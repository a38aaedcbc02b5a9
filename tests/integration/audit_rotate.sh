#!/usr/bin/env bash
# The decision log in segments: the demo's log, then meshd restarted with a tiny
# audit.rotate.max_bytes and records written (on-demand checkpoints) until several
# segments exist.  Across the segments `meshctl audit verify` (chain, tree, every
# checkpoint with the public key), `audit prove` of a decision in the oldest segment
# verified offline with `audit verify-proof --pubkey`, `audit replay`, `audit list` and
# `audit show` all work; the segments are read-only and named by the rotate records;
# a missing segment is refused by verify and by meshd.  Then with audit.retain.max_bytes
# the oldest segments are removed: <log>.retained and the retention record say what went
# and hold the compact range, verify still passes, proving a removed decision fails
# saying so, a kept one is proven and verified offline; meshd restarted goes on.
source "$(dirname "$0")/lib.sh"

mkdir -p "$T/b"
for f in meshd mesh-agent meshctl mesh-gen; do
    [ -e "$BIN/$f" ] && ln -s "$BIN/$f" "$T/b/$f"
done
B_ABS=$T/b DEMO_POINTS=${DEMO_POINTS:-400} bash -c 'B=$B_ABS tools/demo.sh' > "$T/demo.out" 2>&1 \
    || { tail -30 "$T/demo.out"; fail "demo failed"; }
CONF=$T/b/demo/meshd.yaml
STATE=$T/b/demo/state
LOG=$STATE/decisions.jsonl
M=("$BIN/meshctl" --config "$CONF")
PUB=$("${M[@]}" audit pubkey)
ID=$("${M[@]}" --json audit list --verdict accepted | jq_py 'print(d[0]["id"])')
DECISIONS=$("${M[@]}" --json audit list | jq_py 'print(len(d))')
[ "$DECISIONS" -gt 0 ] || fail "no decisions in the demo's log"
printf 'audit:\n  rotate:\n    max_bytes: 2500\n' >> "$CONF"

run_meshd() {
    "$BIN/meshd" --config "$CONF" 2> "$T/meshd.log" &
    MESHD=$!; PIDS+=("$MESHD")
    local ready=
    for _ in $(seq 150); do
        ready=$( ("${M[@]}" --json status 2>/dev/null || true) \
                | jq_py 'print(d["daemon"]["ready"])' 2>/dev/null || true)
        [ "$ready" = True ] && break
        kill -0 "$MESHD" 2>/dev/null || fail "meshd exited during start"
        sleep 0.2
    done
    [ "$ready" = True ] || fail "meshd not ready"
}

# 1. three runs, each signing a few checkpoints on demand, the second also deciding on
#    a new stream: the log rotates, with decisions in several segments
for run in 1 2 3; do
    run_meshd
    if [ $run = 2 ]; then
        "$BIN/mesh-gen" --brokers "$(cat "$T/b/demo/run/brokers")" --topic metrics \
            --points 300 --labels "$T/labels2.json" > /dev/null 2>&1 || fail "mesh-gen failed"
        for _ in $(seq 150); do
            n=$( ("${M[@]}" --json audit list 2>/dev/null || echo '[]') | jq_py 'print(len(d))')
            [ "$n" -gt "$DECISIONS" ] && break
            sleep 0.2
        done
        sleep 2
    fi
    for _ in 1 2 3 4; do
        "${M[@]}" audit checkpoint > /dev/null || fail "meshctl audit checkpoint"
    done
    stop_meshd
done
DECISIONS=$("${M[@]}" --json audit list | jq_py 'print(len(d))')
note "$DECISIONS decisions"
grep -q "sealed in decisions.jsonl.seg-" "$T/meshd.log" || note "(the last run sealed nothing)"
SEGS=$(ls "$LOG".seg-* | wc -l)
note "$SEGS segments: $(ls "$LOG".seg-* | xargs -n1 basename | tr '\n' ' ')"
[ "$SEGS" -ge 3 ] || fail "expected at least 3 segments, found $SEGS"
FIRST=$(ls "$LOG".seg-* | head -1)
[ "$(basename "$FIRST")" = decisions.jsonl.seg-000000000001 ] || fail "the first segment is $FIRST"
for s in "$LOG".seg-*; do
    [ "$(stat -c %a "$s")" = 440 ] || fail "$s is not read-only (mode $(stat -c %a "$s"))"
done
# every rotate record names the segment before it, its seqs and its SHA-256
python3 - "$LOG" <<'PY'
import glob, hashlib, json, os, sys
log = sys.argv[1]
segs = sorted(glob.glob(log + ".seg-*"))
files = segs + [log]
seen = 0
prev_seq = 0
for i, f in enumerate(files):
    lines = open(f, "rb").read().splitlines()
    first = json.loads(lines[0])
    assert first["seq"] == prev_seq + 1, (f, first["seq"], prev_seq)
    if i > 0 and first.get("event") == "rotate":
        p = files[i - 1]
        assert first["previous"] == os.path.basename(p), (first, p)
        assert first["previous_sha256"] == hashlib.sha256(open(p, "rb").read()).hexdigest()
        assert first["previous_first_seq"] == json.loads(open(p, "rb").readline())["seq"]
        assert first["previous_last_seq"] == prev_seq
        seen += 1
    prev_seq = json.loads(lines[-1])["seq"]
assert seen == len(segs), (seen, len(segs))
print("rotate records: %d, last seq %d" % (seen, prev_seq))
PY

# 2. the auditor's commands across the segments
out=$("${M[@]}" audit verify --pubkey "$PUB") || { echo "$out"; fail "verify across segments"; }
echo "$out"
echo "$out" | grep -q "^ok: " || fail "verify did not say ok"
[ "$("${M[@]}" --json audit list | jq_py 'print(len(d))')" = "$DECISIONS" ] \
    || fail "audit list across segments lost decisions"
"${M[@]}" audit show "$ID" > /dev/null || fail "audit show of a decision in the first segment"
grep -q "\"id\":\"$ID\"" "$FIRST" || fail "the decision proven is not in the first segment"
"${M[@]}" audit prove "$ID" > "$T/proof.json" || fail "audit prove across segments"
(cd / && "$BIN/meshctl" audit verify-proof "$T/proof.json" --pubkey "$PUB") \
    || fail "the proof of a decision in the first segment does not verify offline"
python3 - "$T/proof.json" "$LOG" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
last = json.loads(open(sys.argv[2], "rb").read().splitlines()[-1])
# the proof is against a tree that covers every segment
assert p["tree_size"] > p["leaf_index"] and p["tree_size"] >= last["seq"] - 3, (p["tree_size"], last["seq"])
PY
out=$("${M[@]}" audit replay) || { echo "$out"; fail "replay across segments"; }
echo "$out" | tail -1
echo "$out" | grep -q " 0 differ" || fail "replay across segments found differences"

# 3. a missing segment: verify and meshd refuse, naming the files; put back, all is well
MID=$(ls "$LOG".seg-* | sed -n 2p)
mv "$MID" "$T/aside"
set +e
out=$("${M[@]}" audit verify 2>&1); rc=$?
set -e
echo "$out" | tail -3
[ $rc != 0 ] || fail "verify passed with a segment missing"
echo "$out" | grep -q "not contiguous" || fail "verify does not say the segments do not join"
set +e
"$BIN/meshd" --config "$CONF" > "$T/refused.log" 2>&1; rc=$?
set -e
[ $rc != 0 ] || fail "meshd started on a log with a segment missing"
grep -q "not contiguous" "$T/refused.log" || { tail -5 "$T/refused.log"; fail "meshd does not say why"; }
mv "$T/aside" "$MID"

# 4. retention: keep about half the bytes; the oldest segments go, whole
TOTAL=$(du -cb "$LOG".seg-* "$LOG" | tail -1 | cut -f1)
printf '  retain:\n    max_bytes: %d\n' $((TOTAL / 2)) >> "$CONF"
BEFORE=$(ls "$LOG".seg-* | wc -l)
run_meshd
"${M[@]}" audit checkpoint > /dev/null || fail "meshctl audit checkpoint after retention"
stop_meshd
AFTER=$(ls "$LOG".seg-* | wc -l)
note "retention: $BEFORE segments before, $AFTER after; $(du -cb "$LOG".seg-* "$LOG" | tail -1 | cut -f1) of $TOTAL bytes"
[ -e "$FIRST" ] && fail "the oldest segment was kept"
[ -s "$LOG.retained" ] || fail "no $LOG.retained"
python3 - "$LOG" <<'PY'
import base64, glob, json, sys
log = sys.argv[1]
r = json.load(open(log + ".retained"))
K = r["first_seq"]
assert r["range"]["size"] == K - 1 and len(r["range"]["nodes"]) == bin(K - 1).count("1"), r
assert all(len(base64.b64decode(n)) == 32 for n in r["range"]["nodes"])
assert r["removed"][0]["first_seq"] == 1 and r["removed"][-1]["last_seq"] == K - 1, r["removed"]
files = sorted(glob.glob(log + ".seg-*")) + [log]
first = json.loads(open(files[0], "rb").readline())
assert first["seq"] == K and first["prev"] == r["prev_hash"], (first["seq"], K)
recs = [json.loads(l) for f in files for l in open(f, "rb")]
ret = [x for x in recs if x.get("event") == "retention"]
assert ret and ret[-1]["first_kept_seq"] == K and ret[-1]["range_size"] == K - 1, ret
print("kept from seq %d; %d segment(s) removed" % (K, len(r["removed"])))
PY
out=$("${M[@]}" audit verify --pubkey "$PUB") || { echo "$out"; fail "verify after retention"; }
echo "$out"
set +e
out=$("${M[@]}" audit prove "$ID" 2>&1); rc=$?
set -e
echo "$out" | tail -2
[ $rc = 1 ] || fail "proving a removed decision: exit $rc, expected 1"
echo "$out" | grep -q "removed by retention" || fail "proving a removed decision does not say why"
KEPT=$("${M[@]}" --json audit list | jq_py 'print(d[-1]["id"] if d else "")')
[ -n "$KEPT" ] || fail "no decision kept after retention"
"${M[@]}" audit prove "$KEPT" > "$T/kept.json" || fail "audit prove of a kept decision"
(cd / && "$BIN/meshctl" audit verify-proof "$T/kept.json" --pubkey "$PUB") \
    || fail "the proof of a kept decision does not verify offline"
out=$("${M[@]}" audit replay) || { echo "$out"; fail "replay after retention"; }
echo "$out" | tail -1

# 5. meshd goes on
run_meshd
"${M[@]}" audit checkpoint > /dev/null || fail "meshctl audit checkpoint after the restart"
stop_meshd
"${M[@]}" audit verify --pubkey "$PUB" > /dev/null || fail "verify after the last restart"
note "ok: $(ls "$LOG".seg-* | wc -l) segments, $(du -cb "$LOG".seg-* "$LOG" | tail -1 | cut -f1) bytes"
