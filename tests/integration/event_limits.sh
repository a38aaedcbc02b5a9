#!/usr/bin/env bash
# Hostile events against a running meshd.  One event stamped in the year 3000 among
# normal ones is counted out_of_window and de-duplication still works afterwards (the
# incident count does not jump).  Malformed messages are counted by cause in
# `meshctl status` (text and --json); the limits of the agent's events: section hold;
# a dead-letter copy the client refuses (larger than message.max.bytes) is counted
# dead_letter_failed, logged with its coordinates, and the consumer goes on.
source "$(dirname "$0")/lib.sh"

write_config "  - name: ops
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    detector: { kind: ewma, alpha: 0.1, warmup: 5, threshold: 0.9 }
    incident: { cooldown_s: 300, repeat_interval_s: 3600, resolve_s: 3600 }
    events: { max_depth: 8, max_keys: 50, max_bytes: 4096, dead_letter_timeout_ms: 2000 }
    reason: { backend: scripted }
    actions: [scale_out, escalate]
    fallback: escalate
    dead_letter_topic: metrics.dead"
# Every client refuses to produce a message over 1000 bytes: the dead-letter copy of a
# 2000-byte message fails in the client, at once.
python3 - "$T/meshd.yaml" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read().replace("  commit_interval_ms: 200\n",
                           "  commit_interval_ms: 200\n  properties: { message.max.bytes: 1000 }\n")
s = s.replace("topics: [metrics, mesh.actions]", "topics: [metrics, mesh.actions, metrics.dead]")
open(p, "w").write(s)
PY
start_meshd

now=$(date +%s)
send() { kcat -P -b "$BROKERS" -t metrics -p 0 -q "$@" 2> "$T/kcat.log" || fail "kcat: $(cat "$T/kcat.log")"; }
# A calm series, then one anomaly: one incident.
python3 - "$now" > "$T/calm.jsonl" <<'PY'
import sys
now = int(sys.argv[1])
for i in range(30):
    print('{"host":"web-1","metric":"cpu","value":%d,"ts":%d}' % (10 + i % 2, now - 120 + i))
print('{"host":"web-1","metric":"cpu","value":500,"ts":%d}' % (now - 80))
PY
send -l "$T/calm.jsonl"
wait_handled 31
before=$(status_json | jq_py 'print(d["agents"][0]["counters"]["incidents"])')
[ "$before" -ge 1 ] || fail "no incident from the anomaly"
note "incidents before: $before"

# One event from the year 3000, then more anomalies of the same series, now.
python3 - "$now" > "$T/after.jsonl" <<'PY'
import sys
now = int(sys.argv[1])
print('{"host":"web-1","metric":"cpu","value":900,"ts":32503680000}')
print('{"host":"web-1","metric":"cpu","value":900,"ts":%d}' % (now * 1000000))
for i in range(10):
    print('{"host":"web-1","metric":"cpu","value":%d,"ts":%d}' % (600 + 50 * i, now - 70 + i))
PY
send -l "$T/after.jsonl"
wait_handled 43
# Malformed, one of each cause.
printf '%s' '{"host":"a","metric":"b","value":1' | send
printf '%s' '{"host":"a","host":"b","metric":"c","value":1}' | send
printf '%s' '[1,2]' | send
printf '%s' '{"host":"a","metric":"b","value":1,"x":[[[[[[[[[1]]]]]]]]]}' | send
python3 -c 'print("{" + ",".join("\"k%d\":1" % i for i in range(60)) + "}", end="")' | send
# Too large, and its dead-letter copy is over message.max.bytes: it fails in the client.
python3 -c 'print("{\"host\":\"a\",\"metric\":\"b\",\"value\":1,\"pad\":\"" + "x" * 5000 + "\"}", end="")' | send
printf '%s' '{"host":"a","metric":"b","value":1e999}' | send
printf '%s' '{"metric":"b","value":1}' | send
printf '%s' 'garbage' | send
echo 'k:' | send -K: -Z                         # a key and a null value: a tombstone
printf '%s' "{\"host\":\"web-1\",\"metric\":\"cpu\",\"value\":11,\"ts\":$now}" | send
wait_handled 54

status_json > "$T/status.json"
jq_py '
c = d["agents"][0]["counters"]
print({k: v for k, v in c.items() if k.startswith("malformed") or k.startswith("dead_")
       or k in ("events", "incidents")})
assert c["malformed_out_of_window"] == 2, "future events not out_of_window"
assert c["incidents"] == '"$before"', "the future event switched off de-duplication"
for reason in ("truncated", "duplicate_key", "too_deep", "too_many_keys", "too_large",
               "non_finite", "missing_field", "tombstone"):
    assert c["malformed_" + reason] == 1, reason
assert c["malformed_not_object"] == 2
assert c["malformed"] == 12, c["malformed"]
assert c["dead_letter_failed"] == 1, "the oversized copy did not fail"
assert c["dead_lettered"] == 11, c["dead_lettered"]
assert c["lag"] == 0 and c["events"] == 42' < "$T/status.json" || fail "counters"
MESHCTL status > "$T/status.txt"
grep -q "malformed 12:.*out_of_window 2.*; dead-lettered 11, dead_letter_failed 1" "$T/status.txt" \
    || { cat "$T/status.txt"; fail "status does not show the malformed causes"; }
grep -q "cannot dead-letter metrics/0/[0-9]* to metrics.dead" "$T/meshd.log" \
    || fail "the failed dead-letter copy was not logged with its coordinates"
grep -q "malformed message (out_of_window)" "$T/meshd.log" || fail "no out_of_window log line"
# The copies carry the cause.
kcat -C -b "$BROKERS" -t metrics.dead -e -q -f '%h\n' > "$T/dead.txt" 2> "$T/kcat.log" \
    || fail "kcat: $(cat "$T/kcat.log")"
grep -q "meshd-reason=duplicate_key" "$T/dead.txt" || { cat "$T/dead.txt"; fail "no reason header"; }
[ "$(grep -c meshd-reason= "$T/dead.txt")" = 11 ] || fail "not 11 dead-letter copies"
stop_meshd
echo ok
