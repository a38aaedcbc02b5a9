#!/usr/bin/env bash
# A flood of incidents against a tiny reasoning queue.  overflow: pause -> the consumer
# pauses its partitions, nothing is dropped: every incident gets a decision.  overflow:
# shed -> incidents that do not fit are recorded as shed (decision + skipped outcome).
source "$(dirname "$0")/lib.sh"

agent() {  # name, overflow
    echo "  - name: $1
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    detector: { kind: ewma, alpha: 0.1, warmup: 5, threshold: 0.5 }
    incident: { cooldown_s: 0 }
    reason: { backend: scripted, queue_size: 1, workers: 1, overflow: $2 }
    actions: [scale_out, escalate]
    fallback: escalate"
}
write_config "$(agent calm pause)
$(agent spill shed)"
start_meshd
"$BIN/mesh-gen" --brokers "$BROKERS" --topic metrics --hosts 2 --metrics 2 --points 100 \
    --labels "$T/labels.json" 2> "$T/gen.log" || fail "mesh-gen failed"
total=$(jq_py 'print(d["events"] + d["malformed"])' < "$T/labels.json")
paused_seen=0
for _ in $(seq 600); do
    p=$(status_json | jq_py 'print([a for a in d["agents"] if a["name"]=="calm"][0]["counters"].get("paused",0))' 2>/dev/null || echo 0)
    [ "$p" = 1 ] && paused_seen=1
    done_=$(status_json | jq_py "print(all(a['counters'].get('lag',-1)==0 and a['counters'].get('inflight',1)==0 and a['counters'].get('events',0) >= $total for a in d['agents']))" 2>/dev/null || echo False)
    [ "$done_" = True ] && break
    sleep 0.1
done
[ "$done_" = True ] || { MESHCTL --json status; fail "not all events handled"; }
status_json | jq_py '
c = {a["name"]: a["counters"] for a in d["agents"]}
for n, x in c.items(): print(n, {k: x.get(k) for k in ("events","anomalies","incidents","loops","shed","paused")})
assert c["calm"]["incidents"] > 20, "not a flood"
assert c["calm"]["loops"] == c["calm"]["incidents"], "pause mode lost an incident"
assert c["calm"].get("shed", 0) == 0
assert c["spill"]["shed"] > 0, "shed mode never shed"
assert c["spill"]["loops"] + c["spill"]["shed"] == c["spill"]["incidents"], "shed mode lost an incident"'
note "calm agent paused at least once: $paused_seen"
stop_meshd
python3 - "$T/state/decisions.jsonl" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
shed = [r for r in recs if r.get("type") == "decision" and r.get("verdict") == "shed"]
skipped = {r["id"] for r in recs if r.get("type") == "outcome" and r.get("status") == "skipped"}
print(len(shed), "shed decisions recorded")
assert shed and all(r["agent"] == "spill" for r in shed)
assert {r["id"] for r in shed} <= skipped, "a shed decision without its skipped outcome"
PY
echo ok
