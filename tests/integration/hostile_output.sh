#!/usr/bin/env bash
# Hostile model output costs one decision, not a restart loop.  The fake LLM answers
# in turn (a) an object nested 2,046 levels deep and (b) ~880 KB of small numbers;
# before the output limits, the decision record built around either was refused by the
# supervisor (too deep for its parser, too large for the protocol), the agent was
# killed, the event re-delivered and the model asked again, forever.  Now: exactly one
# decision per incident, with model_oversize, no agent restart, the partition's offset
# moves on (lag 0), and the supervisor never refused an agent message.
source "$(dirname "$0")/lib.sh"

# The two outputs, as fake_llm response lines.
python3 - "$T/hostile.jsonl" <<'PY'
import json, sys
deep = '{"action":"escalate","params":{},"x":' + '[' * 2045 + ']' * 2045 + '}'
numbers = '{"action":"escalate","params":{},"n":[' + ','.join(['1'] * 450000) + ']}'
with open(sys.argv[1], 'w') as f:
    for content in (deep, numbers):
        f.write(json.dumps({"content": content}) + "\n")
print(len(deep), "and", len(numbers), "bytes of output")
PY

"$BIN/tests/fake_llm" --port-file "$T/llm.port" --responses "$T/hostile.jsonl" \
    --requests "$T/llm.requests" 2> "$T/llm.log" &
PIDS+=("$!")
for _ in $(seq 100); do [ -s "$T/llm.port" ] && break; sleep 0.1; done
[ -s "$T/llm.port" ] || fail "fake_llm did not start"
PORT=$(cat "$T/llm.port")

write_config "  - name: hostile
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    incident: { cooldown_s: 3600 }
    reason: { backend: hostile, max_steps: 1, budget_tokens: 100000000, incident_token_cap: 10000000 }
    actions: [scale_out, escalate]
    fallback: escalate"
sed -i "/^backends:/a\\  hostile: { kind: openai, url: \"http://127.0.0.1:$PORT\", model: fake, timeout_ms: 20000, json_schema: false }" \
    "$T/meshd.yaml"
start_meshd
"$BIN/mesh-gen" --brokers "$BROKERS" --topic metrics --hosts 2 --metrics 2 --points 400 \
    --labels "$T/labels.json" 2> "$T/gen.log" || fail "mesh-gen failed"
total=$(jq_py 'print(d["events"])' < "$T/labels.json")
wait_handled "$total" 120
status_json | jq_py '
a = d["agents"][0]; c = a["counters"]
print({k: c.get(k) for k in ("events", "loops", "lag", "inflight", "accepted")}, "restarts", a["restarts"])
assert a["restarts"] == 0, "the agent restarted"
assert c["loops"] >= 2, "fewer than two reasoning loops ran"
assert c["lag"] == 0, "the partition did not move on"
assert c.get("accepted", 0) == 0, "a hostile output was accepted"'
stop_meshd
grep -q 'sent an invalid message\|protocol refuses' "$T/meshd.log" \
    && fail "the supervisor refused an agent message"
python3 - "$T/state/decisions.jsonl" <<'PY'
import collections, json, sys
lines = open(sys.argv[1]).read().splitlines()
decs = [json.loads(l) for l in lines]
decs = [r for r in decs if r.get("type") == "decision"]
ids = collections.Counter(r["id"] for r in decs)
assert decs, "no decision recorded"
assert all(n == 1 for n in ids.values()), "an incident was decided more than once: %s" % ids
kinds = set()
for r in decs:
    assert r["verdict"] == "rejected" and r["fallback"] is True, r["verdict"]
    assert r["action"]["name"] == "escalate"
    (a,) = r["attempts"]
    assert a["error"] == "model_oversize", a["error"]
    assert a["output_bytes"] > 65536 or "deeper" in a["detail"], a["detail"]
    assert len(a["output"]) <= 512 and len(a["output_sha256"]) == 64
    assert a["completion_tokens"] > 0, "charged nothing"
    kinds.add("depth" if "deeper" in a["detail"] else "bytes")
assert kinds == {"depth", "bytes"}, kinds
longest = max(len(l) for l in lines)
print(len(decs), "decisions, one per incident, all model_oversize; longest log line",
      longest, "bytes")
assert longest < 65536
PY
MESHCTL --log "$T/state/decisions.jsonl" audit verify
echo ok
