#!/usr/bin/env bash
# A dead inference backend: every loop fails at the backend, nothing is accepted,
# the fallback (escalate) is recorded with verdict model_failed, and the agent keeps
# consuming; malformed messages are counted, not fatal.
source "$(dirname "$0")/lib.sh"

write_config "  - name: blind
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    incident: { cooldown_s: 3600 }
    reason: { backend: dead, max_steps: 2 }
    actions: [scale_out, escalate]
    fallback: escalate"
start_meshd
"$BIN/mesh-gen" --brokers "$BROKERS" --topic metrics --hosts 2 --metrics 2 --points 400 \
    --malformed 5 --labels "$T/labels.json" 2> "$T/gen.log" || fail "mesh-gen failed"
total=$(jq_py 'print(d["events"] + d["malformed"])' < "$T/labels.json")
wait_handled "$total" 90
status_json | jq_py '
a = d["agents"][0]; c = a["counters"]
print(c)
assert a["restarts"] == 0, "the agent restarted"
assert c["malformed"] == 5, "malformed not counted"
assert c["loops"] > 0, "no reasoning loop ran"
assert c["accepted"] == 0, "something was accepted without a backend"
assert c["model_failed"] == c["loops"], "loops not recorded as model_failed"'
# The heartbeat's backend health, in `meshctl status`: the dead server is not serving, and
# why is on the line under it.
status_json | jq_py '
b = d["agents"][0]["backends"]["dead"]
print(b)
assert b["state"] in ("open", "half_open", "down"), b
assert b["failures"] > 0 and b["detail"], b'
MESHCTL status > "$T/status.txt" || fail "meshctl status failed"
grep -A1 -E '^  backend dead: (open|half_open|down) \(.*\) calls [0-9]+, failures [1-9][0-9]*, latency p50/p95/p99 [0-9]+/[0-9]+/[0-9]+ ms, ttft p50/p99 [-0-9]+/[-0-9]+ ms$' \
    "$T/status.txt" | grep -qE '^    model_' || { cat "$T/status.txt"; fail "meshctl status lacks the dead backend and why"; }
stop_meshd
python3 - "$T/state/decisions.jsonl" <<'PY'
import json, sys
decs = [json.loads(l) for l in open(sys.argv[1])]
decs = [r for r in decs if r.get("type") == "decision"]
assert decs
for r in decs:
    assert r["verdict"] == "model_failed", r["verdict"]
    assert r["fallback"] is True and r["action"]["name"] == "escalate"
    assert all(a["error"] in ("model_unreachable", "model_timeout") for a in r["attempts"]), r["attempts"]
print(len(decs), "decisions, all model_failed with the escalate fallback")
PY
MESHCTL --log "$T/state/decisions.jsonl" audit verify
echo ok
