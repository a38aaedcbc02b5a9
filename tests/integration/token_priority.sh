#!/usr/bin/env bash
# Headroom for what matters: the daemon's budget keeps a reserve that only high-priority
# incidents may spend.  Agent "low" (normal priority) and agent "high" (priority: high)
# see the same anomalies; once the budget is down to its reserve, low's incidents are
# recorded budget_exhausted without a call (refused by "daemon", naming the reserve)
# while high's still get their calls.  Agent "mixed" is normal except for incidents on
# host web-1 (high_priority_when), recorded with their priority.
source "$(dirname "$0")/lib.sh"

write_config "  - name: low
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    incident: { cooldown_s: 3600 }
    reason: { backend: scripted, max_steps: 1, max_tokens: 64, budget_tokens: 10000000 }
    actions: [scale_out, escalate]
    fallback: escalate
  - name: high
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    incident: { cooldown_s: 3600 }
    reason: { backend: scripted, max_steps: 1, max_tokens: 64, budget_tokens: 10000000, priority: high }
    actions: [scale_out, escalate]
    fallback: escalate
  - name: mixed
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    incident: { cooldown_s: 3600 }
    reason:
      backend: scripted
      max_steps: 1
      max_tokens: 64
      budget_tokens: 10000000
      high_priority_when: { match: [\"host=web-1\"] }
    actions: [scale_out, escalate]
    fallback: escalate"
echo "budget: { tokens: 15000, reserve: 12000, window_s: 3600 }" >> "$T/meshd.yaml"
start_meshd
"$BIN/mesh-gen" --brokers "$BROKERS" --topic metrics --hosts 6 --metrics 3 --points 400 \
    --labels "$T/labels.json" 2> "$T/gen.log" || fail "mesh-gen failed"
wait_handled "$(jq_py 'print(d["events"])' < "$T/labels.json")" 120
MESHCTL budget | head -2
stop_meshd
python3 - "$T/state/decisions.jsonl" <<'PY'
import json, sys
decs = [json.loads(l) for l in open(sys.argv[1])]
decs = [d for d in decs if d.get("type") == "decision"]
by = lambda a: [d for d in decs if d["agent"] == a]
low, high, mixed = by("low"), by("high"), by("mixed")
refused = [d for d in low if d["verdict"] == "budget_exhausted"]
assert refused, "low was never refused"
for d in refused:
    assert d["attempts"] == [], "a refused incident made a call"
    assert d["budget"]["refused_by"] == "daemon", d["budget"]
    assert "reserve" in d["reason"], d["reason"]
    assert d["budget"]["priority"] == "normal"
called_low = sum(len(d["attempts"]) for d in low)
called_high = sum(len(d["attempts"]) for d in high)
spent = sum(d["tokens"] for d in decs)
print("low: %d decisions, %d calls, %d refused; high: %d decisions, %d calls; spent %d"
      % (len(low), called_low, len(refused), len(high), called_high, spent))
assert all(d["budget"]["priority"] == "high" for d in high)
# high spent from the reserve: more was spent than normal incidents may.
assert spent > 15000 - 12000, spent
# Crossing half of the daemon's window is on the record, once.
records = [json.loads(l) for l in open(sys.argv[1])]
half = [r for r in records if r.get("type") == "budget" and r["scope"] == "daemon"
        and r["threshold"] == 50]
assert len(half) == 1, half
assert half[0]["limit"] == 15000 and half[0]["used"] + half[0]["reserved"] >= 7500, half
assert any(d["attempts"] for d in high if d["budget"]["refused_by"] is None)
# mixed: web-1's incidents are high, the others normal.
for d in mixed:
    host = d["ctx"]["event"]["host"]
    assert d["budget"]["priority"] == ("high" if host == "web-1" else "normal"), (host, d["budget"])
assert any(d["ctx"]["event"]["host"] == "web-1" for d in mixed), "no incident on web-1"
PY
echo ok
