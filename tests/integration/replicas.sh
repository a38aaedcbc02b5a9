#!/usr/bin/env bash
# Two replicas of one agent split the partitions of one consumer group; one is killed
# with SIGKILL while events flow; the other takes over its partitions; in the end every
# event is committed and every incident has exactly one decision and one outcome.
source "$(dirname "$0")/lib.sh"

write_config "  - name: pair
    replicas: 2
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    detector: { kind: ewma, alpha: 0.1, warmup: 30, threshold: 0.999 }
    incident: { cooldown_s: 1800 }
    reason: { backend: scripted }
    actions: [scale_out, escalate]
    fallback: escalate"
start_meshd
names=$(status_json | jq_py 'print(" ".join(a["name"] for a in d["agents"]))')
[ "$names" = "pair#0 pair#1" ] || fail "expected instances pair#0 pair#1, got: $names"

"$BIN/mesh-gen" --brokers "$BROKERS" --topic metrics --hosts 8 --metrics 3 --points 1200 \
    --labels "$T/labels.json" 2> "$T/gen.log" &
GEN=$!; PIDS+=("$GEN")
# Both replicas consume (each owns some partitions) before one is killed.
for _ in $(seq 200); do
    both=$(status_json | jq_py 'print(all(a["counters"].get("events",0) > 0 for a in d["agents"]))' 2>/dev/null || echo False)
    [ "$both" = True ] && break; sleep 0.05
done
[ "$both" = True ] || fail "the two replicas did not split the partitions"
victim=$(status_json | jq_py 'print([a["pid"] for a in d["agents"] if a["name"]=="pair#0"][0])')
kill -KILL "$victim"
note "killed pair#0 (pid $victim) while events flow"
wait "$GEN" || fail "mesh-gen failed"

total=$(jq_py 'print(d["events"] + d["malformed"])' < "$T/labels.json")
# Each replica sees only its partitions: wait on the group's committed offsets instead.
for _ in $(seq 600); do
    read -r _ committed end < <("$BIN/tests/kgroup" "$BROKERS" meshd.pair metrics | tail -1)
    [ "$committed" = "$total" ] && break
    sleep 0.2
done
status_json | jq_py '
for a in d["agents"]: print(a["name"], a["pid"], a["state"], a["restarts"], {k: a["counters"].get(k) for k in ("events","incidents","loops","duplicates","recovered")})'
[ "$end" = "$total" ] || fail "broker holds $end messages, generator says $total"
[ "$committed" = "$total" ] || fail "committed $committed of $total"
events=$(status_json | jq_py 'print(sum(a["counters"].get("events",0) for a in d["agents"]))')
[ "$events" -ge "$total" ] || fail "only $events events handled of $total"
for _ in $(seq 100); do
    idle=$(status_json | jq_py 'print(all(a["counters"].get("inflight",1)==0 for a in d["agents"]))')
    [ "$idle" = True ] && break; sleep 0.1
done
stop_meshd
python3 - "$T/state/decisions.jsonl" <<'PY'
import json, sys, collections
dec, out, inst = collections.Counter(), collections.Counter(), set()
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("type") == "decision": dec[r["id"]] += 1
    if r.get("type") == "outcome": out[r["id"]] += 1
print(f"{len(dec)} decisions, {len(out)} outcomes")
assert dec, "no decisions"
assert all(n == 1 for n in dec.values()), "a decision recorded twice"
assert all(n == 1 for n in out.values()), "an outcome recorded twice"
assert set(dec) == set(out), "decisions without outcome"
PY
MESHCTL --log "$T/state/decisions.jsonl" audit verify
echo ok
