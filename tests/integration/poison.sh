#!/usr/bin/env bash
# A poison message: handling it ends the agent every time.  The test hook MESH_TEST_POISON
# (test only) makes the agent's consumer thread crash (SIGSEGV; "crash:TEXT") or hang
# ("hang:TEXT": no more heartbeats, so meshd kills it) on every event containing TEXT.
# What is tested is the production mechanism: meshd learns from the agent's in-flight
# area which message each death happened on, counts strikes, and at
# daemon.restart.quarantine_after (3 here) records a "quarantine" record; the next life
# copies the message to the dead-letter topic and commits past it.  Then: exactly 3
# deaths, the record, the message on the dead-letter topic with its reason, the later
# messages of the partition handled (committed offset at the end), `meshctl status`
# shows the quarantine, and the decision log still verifies.
# POISON_MODE=hang runs the hang variant; the crash variant runs it at its end.
source "$(dirname "$0")/lib.sh"
MODE=${POISON_MODE:-crash}

write_config "  - name: ops
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    reason: { backend: scripted }
    actions: [scale_out, escalate]
    fallback: escalate
    dead_letter_topic: metrics.dead"
python3 - "$T/meshd.yaml" "$MODE" <<'PY'
import re, sys
path, mode = sys.argv[1], sys.argv[2]
text = open(path).read()
# One partition: "later messages of the partition" are all the later messages.  Quick
# restarts, quick group rejoins, and for the hang variant a short liveness timeout.
text = text.replace("embedded: { partitions: 4, topics: [metrics, mesh.actions] }",
                    "embedded: { partitions: 1, topics: [metrics, mesh.actions, metrics.dead] }")
text = re.sub(r"restart: \{[^}]*\}", "restart: { backoff_initial_ms: 50, backoff_max_ms: 200, "
              "healthy_after_s: 30, intensity: 20, period_s: 60, quarantine_after: 3 }", text)
text = text.replace("session_timeout_ms: 6000", "session_timeout_ms: 3000")
if mode == "hang":
    text = text.replace("liveness_timeout_ms: 5000", "liveness_timeout_ms: 1500")
open(path, "w").write(text)
PY
grep -q "quarantine_after: 3" "$T/meshd.yaml" && grep -q "partitions: 1" "$T/meshd.yaml" \
    || fail "test config not rewritten"
export MESH_TEST_POISON="$MODE:POISON-PILL"
start_meshd

# 5 good messages, the poison at offset 5, 5 good ones after it.
now=$(date +%s)
{
    for i in 0 1 2 3 4; do echo "{\"host\":\"a\",\"metric\":\"cpu\",\"value\":1,\"ts\":$((now + i))}"; done
    echo "{\"host\":\"a\",\"metric\":\"cpu\",\"value\":1,\"ts\":$((now + 5)),\"note\":\"POISON-PILL\"}"
    for i in 6 7 8 9 10; do echo "{\"host\":\"a\",\"metric\":\"cpu\",\"value\":1,\"ts\":$((now + i))}"; done
} > "$T/messages"
kcat -P -b "$BROKERS" -t metrics -p 0 < "$T/messages" 2> "$T/kcat.log" || fail "kcat -P: $(cat "$T/kcat.log")"

# Quarantined after 3 deaths, then the partition is consumed to its end and committed.
t0=$(date +%s)
while :; do
    read -r _ committed end < <("$BIN/tests/kgroup" "$BROKERS" meshd.ops metrics | tail -1) || true
    q=$(status_json | jq_py 'print(d["agents"][0].get("quarantined", 0))' 2>/dev/null || echo 0)
    [ "$q" = 1 ] && [ "${committed:-0}" = 11 ] && break
    state=$(status_json | jq_py 'print(d["agents"][0]["state"])' 2>/dev/null || echo x)
    [ "$state" != failed ] || fail "the agent failed (restart intensity) instead of a quarantine"
    [ $(( $(date +%s) - t0 )) -lt 150 ] || { MESHCTL --json status || true; fail "no quarantine and commit past it within 150 s (quarantined $q, committed ${committed:-?} of ${end:-?})"; }
    sleep 0.3
done
note "quarantined and committed past it in $(( $(date +%s) - t0 )) s"
restarts=$(status_json | jq_py 'print(d["agents"][0]["restarts"])')
[ "$restarts" = 3 ] || fail "the agent restarted $restarts times, expected exactly 3 (the quarantine must stop the loop)"
if [ "$MODE" = hang ]; then
    [ "$(grep -c 'agent ops sent no heartbeat' "$T/meshd.log")" = 3 ] || fail "expected 3 heartbeat kills"
fi
grep -E "message metrics\[0\]@5 quarantined" "$T/meshd.log" || fail "meshd did not log the quarantine"
grep -E "strike 2 of 3" "$T/meshd.log" > /dev/null || fail "meshd did not log the strikes"
grep -E "metrics\[0\]@5 skipped: quarantined" "$T/meshd.log" > /dev/null || fail "the agent did not skip the message"

# meshctl status shows it, as a column and in JSON.
MESHCTL status > "$T/status.txt" || fail "meshctl status failed"
grep -q QUARANTINED "$T/status.txt" || { cat "$T/status.txt"; fail "no QUARANTINED column"; }
awk '$1 == "ops" { print $NF }' "$T/status.txt" | grep -qx 1 || { cat "$T/status.txt"; fail "status does not show 1 quarantined"; }

# The message is on the dead-letter topic, with why and where from.
kcat -C -b "$BROKERS" -t metrics.dead -e -q -f '%h|%s\n' > "$T/dead" 2> "$T/kcat.log" \
    || fail "kcat -C: $(cat "$T/kcat.log")"
grep -q 'POISON-PILL' "$T/dead" || { cat "$T/dead"; fail "the poison is not on the dead-letter topic"; }
grep -q 'meshd-error=quarantined' "$T/dead" || { cat "$T/dead"; fail "no quarantined reason in the header"; }
grep -q 'meshd-origin=metrics/0/5' "$T/dead" || { cat "$T/dead"; fail "no origin header"; }
[ "$(wc -l < "$T/dead")" = 1 ] || { cat "$T/dead"; fail "expected exactly one dead-lettered message"; }

stop_meshd
MESHCTL --log "$T/state/decisions.jsonl" audit verify > /dev/null || fail "audit verify failed"
python3 - "$T/state/decisions.jsonl" "$MODE" <<'PY' || fail "decision log"
import json, sys
records = [json.loads(l) for l in open(sys.argv[1])]
q = [r for r in records if r.get("type") == "quarantine"]
assert len(q) == 1, f"{len(q)} quarantine records"
r = q[0]
assert (r["event"], r["agent"], r["topic"], r["partition"], r["offset"], r["strikes"], r["limit"]) \
    == ("quarantined", "ops", "metrics", 0, 5, 3, 3), r
assert r["dead_letter_topic"] == "metrics.dead", r
want = "hung" if sys.argv[2] == "hang" else "SIGSEGV"
assert want in r["last_death"], r
died = [r for r in records if r.get("type") == "agent" and r.get("event") == "died"]
assert len(died) == 3, f"{len(died)} deaths recorded"
print("quarantine record:", json.dumps(r))
PY
# The strikes survive meshd: the table is in the state directory.
python3 - "$T/state/quarantine.json" <<'PY' || fail "strike table"
import json, sys
d = json.load(open(sys.argv[1]))
assert [(p["topic"], p["partition"], p["offset"], p["quarantined"]) for p in d["positions"]] \
    == [("metrics", 0, 5, True)], d
PY
if [ "$MODE" = crash ]; then
    POISON_MODE=hang bash "$0" || exit 1
fi
echo ok
