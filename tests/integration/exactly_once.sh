#!/usr/bin/env bash
# Exactly-once effect of Kafka actions across crashes between acting and recording.
# The test hook MESH_TEST_KILL_AFTER_ACT makes the agent exit (137) right after each
# successful produce, before the outcome is recorded, while a counter file is above 0:
# 50 times.  Every restart recovers the decision left without an outcome: it passes the
# archived rules again, and the action topic is checked for its id before anything is
# produced.  At the end a read_committed reader must see every accepted decision's
# message exactly once (and nothing else), the counter must be 0, the agent restarted
# at least 50 times, and no genuine decision refused.  Each kill costs a group rejoin on the
# embedded broker (its 3 s rebalance delay, and the dead member's session, 3 s here), so
# the test takes about 5 minutes (EXACTLY_ONCE_KILLS=N for a quicker look).
source "$(dirname "$0")/lib.sh"
KILLS=${EXACTLY_ONCE_KILLS:-50}

write_config "  - name: ops
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    detector: { kind: ewma, alpha: 0.1, warmup: 5, threshold: 0.5 }
    incident: { cooldown_s: 0 }
    reason: { backend: scripted, workers: 2 }
    actions: [scale_out, escalate]
    fallback: escalate"
# Restarts: many and quick; the model: mostly accepted scale_out, one refused proposal.
python3 - "$T/meshd.yaml" "$T/responses.jsonl" <<'PY'
import json, sys, re
path, responses = sys.argv[1], sys.argv[2]
text = open(path).read()
text = re.sub(r"restart: \{[^}]*\}", "restart: { backoff_initial_ms: 20, backoff_max_ms: 100, "
              "healthy_after_s: 30, intensity: 1000, period_s: 1, quarantine_after: 100 }", text)
# The kills here are the test's, on purpose, and land on the same messages again and
# again: no message may be quarantined as poison for them (poison.sh tests that).
text = re.sub(r"scripted: \{ kind: scripted, file: [^ ]+ \}",
              "scripted: { kind: scripted, file: %s }" % responses, text)
# A killed member leaves the group only when its session times out: keep that short.
text = text.replace("session_timeout_ms: 6000", "session_timeout_ms: 3000")
open(path, "w").write(text)
def p(action, params, conf): return {"content": json.dumps(
    {"action": action, "params": params, "confidence": conf, "rationale": "load"})}
lines = [p("scale_out", {"service": "web", "replicas": 3}, 0.86),
         p("scale_out", {"service": "api", "replicas": 2}, 0.8),
         p("scale_out", {"service": "search", "replicas": 4}, 0.9),
         p("scale_out", {"service": "database", "replicas": 10}, 0.9)]   # refused by the rules
open(responses, "w").write("".join(json.dumps(l) + "\n" for l in lines))
PY
grep -q "intensity: 1000" "$T/meshd.yaml" && grep -q "session_timeout_ms: 3000" "$T/meshd.yaml" && grep -q "$T/responses.jsonl" "$T/meshd.yaml" \
    || fail "test config not rewritten"
# The count lives where a confined agent may write (Landlock: beneath state_dir/incidents).
mkdir -p "$T/state/incidents" && chmod 750 "$T/state" "$T/state/incidents"
echo "$KILLS" > "$T/state/incidents/kills"
export MESH_TEST_KILL_AFTER_ACT=$T/state/incidents/kills
start_meshd

"$BIN/mesh-gen" --brokers "$BROKERS" --topic metrics --hosts 3 --metrics 2 --points 150 \
    --labels "$T/labels.json" 2> "$T/gen.log" || fail "mesh-gen failed"
total=$(jq_py 'print(d["events"] + d["malformed"])' < "$T/labels.json")

# Wait for the kills to be used up, then for the stream to be handled.
t0=$(date +%s)
while [ "$(cat "$T/state/incidents/kills")" -gt 0 ]; do
    [ $(( $(date +%s) - t0 )) -lt 420 ] || { MESHCTL --json status || true; fail "only $(( KILLS - $(cat "$T/state/incidents/kills") )) of $KILLS kills in 420 s"; }
    state=$(status_json | jq_py 'print(d["agents"][0]["state"])' 2>/dev/null || echo x)
    [ "$state" != failed ] || fail "the agent failed (restart intensity)"
    sleep 0.2
done
note "$KILLS kills in $(( $(date +%s) - t0 )) s"
# The counters are this life's: after 50 kills the last life may have read only the
# tail of the stream.  Handled means: no lag on any partition, nothing in flight.
note "$total events produced"
wait_handled 0 120
restarts=$(status_json | jq_py 'print(d["agents"][0]["restarts"])')
counters=$(status_json | jq_py 'print(json.dumps(d["agents"][0]["counters"]))' 2>/dev/null || true)
note "restarts $restarts; counters ${counters:0:400}"
[ "$restarts" -ge "$KILLS" ] || fail "status shows $restarts restarts, expected >= $KILLS"

kcat -C -b "$BROKERS" -t mesh.actions -X isolation.level=read_committed -e -q -f '%k\n' \
    > "$T/keys" 2> "$T/kcat.log" || fail "kcat failed: $(cat "$T/kcat.log")"
stop_meshd
cp "$T/meshd.log" "$ROOT/$B/test-logs/exactly_once.meshd.log"
MESHCTL --log "$T/state/decisions.jsonl" audit verify > /dev/null || fail "audit verify failed"
keep() {  # the evidence, when the check below fails
    cp "$T/state/decisions.jsonl" "$ROOT/$B/test-logs/exactly_once.decisions.jsonl"
    cp "$T/keys" "$ROOT/$B/test-logs/exactly_once.keys"
    fail "$1"
}
python3 - "$T/state/decisions.jsonl" "$T/keys" "$KILLS" <<'PY' || keep "the action topic does not hold every accepted decision exactly once"
import json, sys, collections
log, keys, kills = sys.argv[1], sys.argv[2], int(sys.argv[3])
accepted, outcomes, recovered = set(), {}, collections.Counter()
for line in open(log):
    r = json.loads(line)
    if r.get("type") == "decision" and r.get("verdict") == "accepted" \
       and r["action"]["name"] == "scale_out":
        accepted.add(r["id"])
    if r.get("type") == "outcome":
        outcomes[r["id"]] = r
        if r.get("recovered"):
            d = r.get("detail") or ""
            recovered["found" if d.startswith("already produced at") else r["status"]] += 1
seen = collections.Counter(k for k in open(keys).read().split("\n") if k)
twice = [k for k, n in seen.items() if n > 1]
missing = [i for i in accepted if seen[i] == 0]
extra = [k for k in seen if k not in accepted]
statuses = collections.Counter(outcomes[i]["status"] for i in accepted if i in outcomes)
print(f"{len(accepted)} accepted scale_out decisions, {sum(seen.values())} messages on "
      f"mesh.actions, outcomes {dict(statuses)}, recovered {dict(recovered)}")
assert len(accepted) >= kills, f"only {len(accepted)} accepted kafka decisions"
assert not twice, f"produced more than once: {twice[:3]}"
assert not missing, f"accepted but never produced: {missing[:3]}"
assert not extra, f"on the topic without an accepted decision: {extra[:3]}"
assert all(i in outcomes for i in accepted), "an accepted decision has no outcome"
assert statuses.get("done", 0) == len(accepted), f"not all done: {dict(statuses)}"
assert recovered["found"] >= kills // 2, f"recovery found only {recovered['found']} earlier produces"
assert recovered.get("refused", 0) == 0, "a genuine decision was refused on recovery"
PY
[ "$(cat "$T/state/incidents/kills")" = 0 ] || fail "kill counter is $(cat "$T/state/incidents/kills"), expected 0"
echo ok
