#!/usr/bin/env bash
# Decision ids are unique per broker incarnation.  meshd runs the embedded broker, the
# demo-like stream is fed and handled; meshd is stopped and started again with the same
# state directory and decision log, so a fresh broker's offsets start at 0 again, and the
# same stream is fed again.  Every incident of the second run must be reasoned about and
# recorded under a new id: no duplicates counted, the decision count doubles, each
# decision's trigger names the incarnation recorded at its broker's start, and meshd
# warns once per start that the embedded broker's data is lost when it stops.
source "$(dirname "$0")/lib.sh"

write_config "  - name: ops
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    detector: { kind: ewma, alpha: 0.05, warmup: 30, threshold: 0.99 }
    reason: { backend: scripted, workers: 2 }
    actions: [scale_out, escalate]
    fallback: escalate"
# One partition: the stream is consumed in the same order in both runs, so the event-time
# dispatcher opens the same incidents (across partitions the order, and so the watermark,
# would differ from run to run).
sed -i 's/partitions: 4/partitions: 1/' "$T/meshd.yaml"

run_once() {   # round: start meshd, feed the stream, wait until handled, stop
    local round=$1
    start_meshd
    "$BIN/mesh-gen" --brokers "$BROKERS" --topic metrics --hosts 3 --metrics 2 --points 400 \
        --seed 7 --labels "$T/labels.json" 2> "$T/gen.log" || fail "mesh-gen failed"
    local total
    total=$(jq_py 'print(d["events"] + d["malformed"])' < "$T/labels.json")
    wait_handled "$total" 120
    status_json > "$T/status.$round.json"
    stop_meshd
    cp "$T/meshd.log" "$T/meshd.$round.log"
    local dup decided
    dup=$(jq_py 'print(sum(a["counters"].get("duplicates", 0) for a in d["agents"]))' \
          < "$T/status.$round.json")
    decided=$(jq_py 'print(sum(a["counters"].get("loops", 0) for a in d["agents"]))' \
          < "$T/status.$round.json")
    note "round $round: $total events, $decided decisions, $dup duplicates"
    [ "$dup" = 0 ] || fail "round $round counted $dup duplicates"
}

run_once 1
run_once 2

for round in 1 2; do
    n=$(grep -c 'the embedded broker keeps everything in memory' "$T/meshd.$round.log" || true)
    [ "$n" = 1 ] || fail "round $round: expected the embedded-broker warning once, saw $n"
done
grep -q 'not for broker incarnation' "$T/meshd.2.log" \
    || fail "round 2: the agent kept incident state from the old broker"

MESHCTL --log "$T/state/decisions.jsonl" audit verify || fail "audit verify failed"
python3 - "$T/state/decisions.jsonl" <<'PY'
import json, sys, collections
starts, runs = [], []
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("type") == "broker" and r.get("event") == "start":
        assert r.get("embedded") is True, r
        starts.append(r["incarnation"])
        runs.append([])
    elif r.get("type") == "decision":
        assert runs, "a decision before any broker record"
        runs[-1].append(r)
assert len(starts) == 2, f"expected 2 broker starts, got {starts}"
assert starts[0] != starts[1] and all(len(s) == 32 for s in starts), starts
first, second = runs
print(f"incarnations {starts[0][:8]}.. {starts[1][:8]}..: "
      f"{len(first)} then {len(second)} decisions")
assert first, "no decisions in the first run"
assert len(second) == len(first), "the second run did not decide every incident again"
for run, inc in zip(runs, starts):
    for d in run:
        t = d["trigger"]
        assert t.get("incarnation") == inc, f"trigger {t} not of incarnation {inc}"
        assert t.get("cluster_id"), f"trigger {t} has no cluster id"
        assert d["verdict"] != "shed", d["verdict"]
ids1, ids2 = {d["id"] for d in first}, {d["id"] for d in second}
assert len(ids1) == len(first) and len(ids2) == len(second), "an id repeats within a run"
assert not ids1 & ids2, f"{len(ids1 & ids2)} ids of the second run repeat the first's"
# The same stream, the same incidents: the same triggers.  (Verdicts may differ: the gate
# sees the agent's recent actions, which two workers finish in either order.)
key = lambda d: (d["trigger"]["topic"], d["trigger"]["partition"], d["trigger"]["offset"])
a, b = sorted(map(key, first)), sorted(map(key, second))
if a != b:
    print("first:", a); print("second:", b)
assert a == b, "the runs decided differently"
PY
echo ok
