#!/usr/bin/env bash
# Exactly-once effect of exec and webhook actions while the agent is SIGKILLed 50 times
# at random points around execution (docs/actions.md, "Exactly once").
#
# One agent proposes, alternately, an exec action (act_witness appends its argv and
# MESH_DECISION_ID to a file, then sleeps 400 ms: a window to be killed in) and a webhook
# (to webhook_sink on loopback, which verifies every signature, logs each delivery and
# answers after 300 ms).
# The stream gives it a few dozen incidents; meanwhile the agent process is killed 50
# times, 50-400 ms apart, and meshd restarts it each time.  At the end:
#   - every effect (a witness line, a sink delivery) names a decision the log holds as
#     accepted with that action; the sink saw a valid signature every time;
#   - de-duplicated by decision id, each accepted exec or webhook decision whose outcome
#     is done had its effect, and no decision had its effect twice: meshd journals each
#     execution and answers a recovering agent with the recorded outcome instead of
#     running it again (only meshd's own death between start and end can repeat one).
source "$(dirname "$0")/lib.sh"

head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$T/secret"
chmod 600 "$T/secret"
"$BIN/tests/webhook_sink" --port-file "$T/sink.port" --secret-file "$T/secret" \
    --log "$T/sink.jsonl" --delay-ms 300 2> "$T/sink.log" &
PIDS+=("$!")
for _ in $(seq 100); do [ -s "$T/sink.port" ] && break; sleep 0.05; done
[ -s "$T/sink.port" ] || fail "webhook_sink did not start"

cat > "$T/mixed.jsonl" <<'EOF'
{"content": "{\"action\": \"restart_service\", \"params\": {\"service\": \"web\"}, \"confidence\": 0.9, \"rationale\": \"wedged\"}"}
{"content": "{\"action\": \"note\", \"params\": {\"text\": \"paging the on-call\"}, \"confidence\": 0.9, \"rationale\": \"tell a human\"}"}
EOF
write_config "  - name: hands
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    incident: { cooldown_s: 60 }
    reason: { backend: mixed, max_steps: 1 }
    actions: [restart_service, note, escalate]
    fallback: escalate"
sed -i "s/backoff_max_ms: 2000, healthy_after_s: 30, intensity: 20, period_s: 60/backoff_max_ms: 200, healthy_after_s: 30, intensity: 200, period_s: 60/" \
    "$T/meshd.yaml"
grep -q "intensity: 200" "$T/meshd.yaml" || fail "could not raise the restart intensity"
sed -i "/^backends:/a\\  mixed: { kind: scripted, file: $T/mixed.jsonl }" "$T/meshd.yaml"
sed -i "/^actions:/a\\  restart_service: { kind: exec, limits: { as_bytes: 0 }, program: \"$BIN/tests/act_witness\", argv: [\"--sleep-ms\", \"400\", \"--service\", \"{service}\"], env: [\"ACT_WITNESS_FILE=$T/witness.jsonl\"], timeout_ms: 5000, description: \"Restart\", params: { service: { type: string, pattern: \"[a-z][a-z0-9-]{0,62}\" } } }\\n  note: { kind: webhook, url: \"http://127.0.0.1:$(cat "$T/sink.port")/hook\", allow_http: true, allow_private: true, secret_file: \"$T/secret\", timeout_ms: 3000, description: \"Tell the on-call\", params: { text: { type: string, max_length: 200 } } }" \
    "$T/meshd.yaml"
"$BIN/meshd" --check-config "$T/meshd.yaml" > /dev/null || fail "the config does not load"
start_meshd

"$BIN/mesh-gen" --brokers "$BROKERS" --topic metrics --hosts 8 --metrics 3 --points 400 \
    --rate 250 --labels "$T/labels.json" 2> "$T/gen.log" &
gen=$!
PIDS+=("$gen")
kills=0
for i in $(seq 50); do
    # the agent back up (meshd restarts it), then a random 50-400 ms into its life
    pid=
    for _ in $(seq 100); do
        pid=$(pgrep -f "mesh-agent --config $T/" | head -1 || true)
        [ -n "$pid" ] && break
        sleep 0.05
    done
    sleep "0.$(( (RANDOM % 35) + 5 ))"
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null && kills=$((kills + 1))
done
wait "$gen" || fail "mesh-gen failed"
note "killed the agent $kills times"
[ "$kills" -ge 45 ] || fail "only $kills kills landed"
total=$(jq_py 'print(d["events"] + d.get("malformed", 0))' < "$T/labels.json")
wait_handled "$total" 240
stop_meshd

python3 - "$T" <<'PY'
import collections, json, os, sys
t = sys.argv[1]
records = [json.loads(l) for l in open(t + "/state/decisions.jsonl")]
decisions = {r["id"]: r for r in records if r.get("type") == "decision"}
outcomes = collections.defaultdict(list)
for r in records:
    if r.get("type") == "outcome":
        outcomes[r["id"]].append(r)
def lines(path):
    return [json.loads(l) for l in open(path)] if os.path.exists(path) else []
witness, sink = lines(t + "/witness.jsonl"), lines(t + "/sink.jsonl")
effects = collections.Counter()
for w in witness:
    d = decisions.get(w["id"])
    assert d and d["verdict"] == "accepted" and d["action"]["name"] == "restart_service", \
        "an execution of a decision the log does not hold as accepted: %s" % w
    effects[w["id"]] += 1
for s in sink:
    assert s["signature_ok"] and s["ok"], "a delivery without a valid signature: %s" % s
    assert s["idempotency_key"] == s["decision"] == s["body"]["decision_id"], s
    d = decisions.get(s["decision"])
    assert d and d["verdict"] == "accepted" and d["action"]["name"] == "note", \
        "a delivery for a decision the log does not hold as accepted: %s" % s
    effects[s["decision"]] += 1
acting = [i for i, d in decisions.items()
          if d["verdict"] == "accepted" and d["action"]["name"] in ("restart_service", "note")]
done = [i for i in acting if any(o["status"] == "done" for o in outcomes[i])]
missing = [i for i in done if effects[i] == 0]
twice = {i: n for i, n in effects.items() if n > 1}
repeated = sum(1 for i in acting for o in outcomes[i] if o.get("repeated"))
print("decisions %d, acting %d, done %d, executions %d, deliveries %d, effects twice %d, "
      "answered from the journal %d" % (len(decisions), len(acting), len(done), len(witness),
                                        len(sink), len(twice), repeated))
assert len(acting) >= 10, "too few acting decisions to say anything"
for name in ("restart_service", "note"):
    ran = [i for i in done if decisions[i]["action"]["name"] == name]
    assert len(ran) >= 2, "too few %s actions carried out to say anything: %d" % (name, len(ran))
failed = [o for i in acting for o in outcomes[i] if o["status"] not in ("done",)]
assert not failed, "an acting decision that did not run: %s" % failed[:2]
assert not missing, "done without an effect: %s" % missing[:3]
assert not twice, "an effect twice: %s" % list(twice.items())[:3]
PY
MESHCTL --log "$T/state/decisions.jsonl" audit verify > /dev/null || fail "the log does not verify"
echo ok
