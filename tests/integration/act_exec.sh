#!/usr/bin/env bash
# An exec action, carried out by meshd (the agents are sandboxed: no execve), through
# the kill switch and a rate limit:
#   1. `meshctl pause --action restart_service` before any event: decisions are made and
#      recorded, their outcome is "paused", the program never runs; status says PAUSED.
#   2. `meshctl resume`, more events: the first accepted decision runs the program once,
#      with its decision id in MESH_DECISION_ID and the validated param as one argument;
#      the action's rate (1 per hour) then refuses the next ones, which take the fallback
#      (escalate, done) and record rate_limited.
#   3. The pause state survives a restart of meshd.
source "$(dirname "$0")/lib.sh"

cat > "$T/restart.jsonl" <<'EOF'
{"content": "{\"action\": \"restart_service\", \"params\": {\"service\": \"web\"}, \"confidence\": 0.9, \"rationale\": \"the service is wedged\"}"}
EOF
write_config "  - name: fixer
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    incident: { cooldown_s: 60 }
    reason: { backend: restarts, max_steps: 1 }
    actions: [restart_service, escalate]
    fallback: escalate"
sed -i "/^backends:/a\\  restarts: { kind: scripted, file: $T/restart.jsonl }" "$T/meshd.yaml"
sed -i "/^actions:/a\\  restart_service: { kind: exec, limits: { as_bytes: 0 }, program: \"$BIN/tests/act_witness\", argv: [\"--service\", \"{service}\"], env: [\"ACT_WITNESS_FILE=$T/witness.jsonl\"], timeout_ms: 5000, rate: \"1/1h\", description: \"Restart the service\", params: { service: { type: string, pattern: \"[a-z][a-z0-9-]{0,62}\" } } }" \
    "$T/meshd.yaml"
"$BIN/meshd" --check-config "$T/meshd.yaml" > /dev/null || fail "the config does not load"
start_meshd

MESHCTL pause --action restart_service | grep -q "action restart_service" || fail "pause"
MESHCTL status | grep -q "^actions: PAUSED, paused: action restart_service" \
    || { MESHCTL status; fail "status does not show the pause"; }
"$BIN/mesh-gen" --brokers "$BROKERS" --topic metrics --hosts 3 --metrics 2 --points 300 \
    --labels "$T/labels1.json" 2> "$T/gen1.log" || fail "mesh-gen failed"
total=$(jq_py 'print(d["events"] + d.get("malformed", 0))' < "$T/labels1.json")
wait_handled "$total" 90
[ ! -s "$T/witness.jsonl" ] || fail "the program ran while its action was paused"

# The pause survives a restart.
stop_meshd
start_meshd
MESHCTL --json status | jq_py '
p = d["daemon"]["actions"]["paused"]
assert p["actions"] == ["restart_service"], p'

MESHCTL resume | grep -q "paused: nothing" || fail "resume"
"$BIN/mesh-gen" --brokers "$BROKERS" --topic metrics --hosts 3 --metrics 2 --points 300 \
    --start $((1767225600 + 2 * 86400)) --seed 7 --labels "$T/labels2.json" 2> "$T/gen2.log" \
    || fail "mesh-gen failed"
total2=$(jq_py 'print(d["events"] + d.get("malformed", 0))' < "$T/labels2.json")
wait_handled "$total2" 90   # a new meshd: a new embedded broker, counters from 0
stop_meshd

python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
records = [json.loads(l) for l in open(t + "/state/decisions.jsonl")]
decisions = {r["id"]: r for r in records if r.get("type") == "decision"}
outcomes = {}
for r in records:
    if r.get("type") == "outcome":
        outcomes.setdefault(r["id"], []).append(r)
witness = [json.loads(l) for l in open(t + "/witness.jsonl")] if __import__("os").path.exists(t + "/witness.jsonl") else []
paused = [o for os_ in outcomes.values() for o in os_ if o["status"] == "paused"]
done = [o for os_ in outcomes.values() for o in os_
        if o["status"] == "done" and o.get("action") == "restart_service"]
limited = [o for os_ in outcomes.values() for o in os_ if o.get("rate_limited")]
print("decisions %d, paused %d, executed %d, rate limited %d, witness lines %d"
      % (len(decisions), len(paused), len(done), len(limited), len(witness)))
assert paused, "no decision was recorded as paused"
for o in paused:
    assert decisions[o["id"]]["verdict"] == "accepted", o
assert len(done) == 1, "the rate (1/1h) allows exactly one execution: %d" % len(done)
assert len(witness) == 1, witness
w, o = witness[0], done[0]
assert w["id"] == o["id"] and w["action"] == "restart_service" and w["agent"] == "fixer", w
assert w["argv"] == ["--service", "web"], w["argv"]
assert o["exec"]["exit"] == 0 and o["exec"]["argv"][1:] == ["--service", "web"], o["exec"]
assert limited, "nothing was rate limited"
for o in limited:
    assert o["action"] == "escalate" and o["status"] == "done", o
    assert o["rate_limited"]["action"] == "restart_service", o
PY
MESHCTL --log "$T/state/decisions.jsonl" audit verify > /dev/null || fail "the log does not verify"
echo ok
