#!/usr/bin/env bash
# Human approval (docs/actions.md, "Approval"): an exec action with `approval: required`
# is recorded, held by meshd and not run; the agent moves on (no outcome, nothing
# re-decided).  `meshctl approvals` shows what would run; `meshctl approve ID --comment`
# runs it and records who approved (the control socket's peer credentials) and why;
# `meshctl deny` records a denial; held ones survive a restart of meshd; one left alone
# expires after approval_timeout_s and the agent's fallback is carried out and recorded.
# An approve sent by a user who is not an operator is refused.
source "$(dirname "$0")/lib.sh"

cat > "$T/restart.jsonl" <<'EOF2'
{"content": "{\"action\": \"restart_service\", \"params\": {\"service\": \"web\"}, \"confidence\": 0.9, \"rationale\": \"wedged\"}"}
EOF2
write_config "  - name: careful
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    incident: { cooldown_s: 60 }
    reason: { backend: restarts, max_steps: 1 }
    actions: [restart_service, escalate]
    fallback: escalate"
sed -i "/^backends:/a\\  restarts: { kind: scripted, file: $T/restart.jsonl }" "$T/meshd.yaml"
sed -i "/^actions:/a\\  restart_service: { kind: exec, limits: { as_bytes: 0 }, program: \"$BIN/tests/act_witness\", argv: [\"--service\", \"{service}\"], env: [\"ACT_WITNESS_FILE=$T/witness.jsonl\"], approval: required, approval_timeout_s: 600, description: \"Restart\", params: { service: { type: string, pattern: \"[a-z][a-z0-9-]{0,62}\" } } }" \
    "$T/meshd.yaml"
start_meshd
"$BIN/mesh-gen" --brokers "$BROKERS" --topic metrics --hosts 6 --metrics 3 --points 400 \
    --labels "$T/labels.json" 2> "$T/gen.log" || fail "mesh-gen failed"
total=$(jq_py 'print(d["events"] + d.get("malformed", 0))' < "$T/labels.json")
wait_handled "$total" 90
[ ! -s "$T/witness.jsonl" ] || fail "an action that needs approval ran without one"
MESHCTL approvals > "$T/approvals.txt"
cat "$T/approvals.txt"
grep -q 'would run: ".*act_witness" "--service" "web"' "$T/approvals.txt" || fail "approvals do not show what would run"
MESHCTL --json approvals > "$T/approvals.json"
n=$(jq_py 'print(len(d))' < "$T/approvals.json")
[ "$n" -ge 3 ] || fail "expected at least 3 held decisions, got $n"
first=$(jq_py 'print(d[0]["id"])' < "$T/approvals.json")
second=$(jq_py 'print(d[1]["id"])' < "$T/approvals.json")

# Someone who is not an operator cannot approve (nobody's uid, through the same socket).
if id nobody > /dev/null 2>&1 && command -v setpriv > /dev/null; then
    chmod 0711 "$T" "$T/run" 2>/dev/null || true
    chmod 0666 "$T/run/control.ipc" 2>/dev/null || true
    chmod 0644 "$T/meshd.yaml"
    if setpriv --reuid=nobody --regid=nogroup --clear-groups "$BIN/meshctl" --config "$T/meshd.yaml" \
        approve "${first:0:12}" > "$T/nobody.txt" 2>&1; then
        fail "nobody approved a decision"
    fi
    grep -q "not allowed" "$T/nobody.txt" || { cat "$T/nobody.txt"; fail "no refusal"; }
    chmod 0660 "$T/run/control.ipc"
fi

MESHCTL approve "${first:0:12}" --comment "looked at the graphs" | grep -q "approved $first" \
    || fail "approve"
for _ in $(seq 50); do [ -s "$T/witness.jsonl" ] && break; sleep 0.1; done
MESHCTL deny "$second" --comment "not during the launch" | grep -q "denied $second" || fail "deny"

# What is still held survives a restart.
stop_meshd
start_meshd
left=$(MESHCTL --json approvals | jq_py 'print(len(d))')
[ "$left" = $((n - 2)) ] || fail "after the restart $left held, expected $((n - 2))"
# The rest expire: a reload shortens the timeout, and the fallback runs instead.
sed -i "s/approval_timeout_s: 600/approval_timeout_s: 1/" "$T/meshd.yaml"
MESHCTL reload > /dev/null || fail "reload"
for _ in $(seq 100); do
    [ "$(MESHCTL --json approvals | jq_py 'print(len(d))')" = 0 ] && break
    sleep 0.2
done
stop_meshd

python3 - "$T" "$first" "$second" <<'PY'
import json, sys
t, first, second = sys.argv[1:4]
records = [json.loads(l) for l in open(t + "/state/decisions.jsonl")]
outcomes = {}
for r in records:
    if r.get("type") == "outcome":
        outcomes.setdefault(r["id"], []).append(r)
witness = [json.loads(l) for l in open(t + "/witness.jsonl")]
assert [w["id"] for w in witness] == [first], witness
o = outcomes[first][-1]
assert o["status"] == "done" and o["approval"]["how"] == "approved", o
assert o["approval"]["by"]["uid"] == 0 and o["approval"]["comment"] == "looked at the graphs", o
d = outcomes[second][-1]
assert d["status"] == "denied" and d["approval"]["how"] == "denied", d
held = [r for r in records if r.get("type") == "decision" and r["id"] not in (first, second)
        and r["action"]["name"] == "restart_service"]
assert held, "nothing was left to expire"
for r in held:
    e = outcomes[r["id"]][-1]
    assert e["approval"]["how"] == "expired" and e["action"] == "escalate" and e["status"] == "done", e
print("approved 1, denied 1, expired %d (fallback escalate each)" % len(held))
PY
MESHCTL --log "$T/state/decisions.jsonl" audit verify > /dev/null || fail "the log does not verify"
echo ok
