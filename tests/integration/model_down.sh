#!/usr/bin/env bash
# The model server is down (the backend points at a closed loopback port): the agent
# logs it at warning level once, not once per call; every decision takes the fallback
# and is recorded as model_failed; `meshctl summary` shows the model_failed count (text
# and --json) from the decision log; nothing is lost (every event handled, every
# reasoning loop recorded).
source "$(dirname "$0")/lib.sh"

write_config "  - name: blind
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    incident: { cooldown_s: 3600 }
    reason: { backend: dead, max_steps: 2 }
    actions: [scale_out, escalate]
    fallback: escalate"
start_meshd
"$BIN/mesh-gen" --brokers "$BROKERS" --topic metrics --hosts 3 --metrics 2 --points 400 \
    --malformed 3 --labels "$T/labels.json" 2> "$T/gen.log" || fail "mesh-gen failed"
total=$(jq_py 'print(d["events"] + d["malformed"])' < "$T/labels.json")
wait_handled "$total" 90
loops=$(status_json | jq_py 'print(d["agents"][0]["counters"]["loops"])')
[ "$loops" -gt 1 ] || fail "fewer than two reasoning loops ran ($loops): nothing to count once"
note "$loops reasoning loops against a closed port"

# Warning priority (<4>), once for the change healthy -> failing, naming server and error.
warned=$(grep -c '^<4>.*backend dead (http://127.0.0.1:9): failing: model_unreachable' "$T/meshd.log" || true)
[ "$warned" = 1 ] || { grep 'backend dead' "$T/meshd.log" >&2; fail "the failing backend was warned $warned times, want 1"; }
note "warned once: $(grep -m1 'backend dead (http' "$T/meshd.log")"

MESHCTL summary > "$T/summary.txt" || fail "meshctl summary failed"
grep -E "^  model_failed +$loops decisions \(every model call failed: the fallback acted\); ([1-9][0-9]*) of \1 calls failed$" \
    "$T/summary.txt" || { cat "$T/summary.txt"; fail "summary lacks the model_failed line"; }
MESHCTL --json summary | jq_py "
m = d['model_failed']; e = d['economics']
print(m)
assert m['decisions'] == d['decisions']['model_failed'] == $loops, m
assert m['calls'] == e['calls'] > 0, (m, e)
assert d['decisions']['accepted'] == 0" || fail "summary --json model_failed is wrong"
stop_meshd

# Nothing lost: every loop is a decision in the log, each with the fallback action.
python3 - "$T/state/decisions.jsonl" "$loops" <<'PY' || fail "the decision log does not hold every fallback"
import json, sys
decs = [json.loads(l) for l in open(sys.argv[1])]
decs = [r for r in decs if r.get("type") == "decision"]
assert len(decs) == int(sys.argv[2]), (len(decs), sys.argv[2])
for r in decs:
    assert r["verdict"] == "model_failed" and r["fallback"] is True, r["verdict"]
    assert r["action"]["name"] == "escalate", r["action"]
print(len(decs), "decisions, each model_failed with the escalate fallback")
PY
MESHCTL --log "$T/state/decisions.jsonl" audit verify > /dev/null || fail "the log does not verify"
echo ok
