#!/usr/bin/env bash
# audit.ship: the decision log produced to Kafka (docs/audit.md, "Shipping").
#   1. Off by default: no producer, no state file, "ship": null in status.
#   2. On: every record arrives, in seq order, in one partition, key = seq, value = the
#      log line byte for byte, header source = the configured name.
#   3. The broker down (the test broker refuses connections; its topic survives) while
#      meshd writes records, for longer than a message's 30 s timeout: the lag goes up,
#      nothing is lost; the broker up: the lag goes back to 0 and every record is there.
#   4. meshd killed with SIGKILL while shipping and started again: it resumes from its
#      state file; no gap, and the only records produced twice are ones after the seq
#      the state file held at the kill.
source "$(dirname "$0")/lib.sh"
TOPIC=meshd.decisions
LOG=$T/state/decisions.jsonl

AGENT="  - name: ops
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    detector: { kind: ewma, alpha: 0.1, warmup: 5, threshold: 0.5 }
    incident: { cooldown_s: 0 }
    reason: { backend: scripted, workers: 2 }
    actions: [scale_out, escalate]
    fallback: escalate"

ship() { status_json | jq_py "s=d['daemon']['ship']; print($1)"; }
# Records in the log: its sealed segments (<log>.seg-<first seq>) and the active file.
records() {
    python3 -c "import glob, sys
print(sum(open(f, 'rb').read().count(b'\\n') for f in sorted(glob.glob(sys.argv[1] + '.seg-*')) + [sys.argv[1]]))" "$LOG"
}
# Events into the embedded broker, then wait until the agent has handled them all.  Each
# batch is a day after the one before in event time, so that each makes new incidents.
BASE=$(( $(date +%s) - 10 * 86400 ))
feed() {   # seed points
    local before
    before=$(status_json | jq_py 'print(d["agents"][0]["counters"].get("events",0)+d["agents"][0]["counters"].get("malformed",0))')
    "$BIN/mesh-gen" --brokers "$BROKERS" --topic metrics --hosts 3 --metrics 2 --points "$2" \
        --seed "$1" --start $(( BASE + $1 * 86400 )) --labels "$T/labels-$1.json" 2> "$T/gen.log" || fail "mesh-gen failed"
    wait_handled $(( before + $(jq_py 'print(d["events"] + d["malformed"])' < "$T/labels-$1.json") )) 120
}
wait_lag_zero() {   # limit_s
    local t0=$(date +%s)
    while :; do
        local lag
        lag=$(ship 's["lag_records"] if s["shipped_seq"] == s["ledger_seq"] == '"$(records)"' else -1' 2>/dev/null || echo -1)
        [ "$lag" = 0 ] && return 0
        [ $(( $(date +%s) - t0 )) -lt "$1" ] || { MESHCTL --json status || true; fail "lag not 0 within $1 s"; }
        sleep 0.2
    done
}
# Read the topic back and compare with the log: prints "records duplicates".
check_topic() {   # label [allowed-duplicates-file]
    kcat -C -b "$MB" -t "$TOPIC" -e -q -f '%p\t%k\t%h\t%s\n' > "$T/topic" 2> "$T/kcat.log" \
        || fail "kcat failed: $(cat "$T/kcat.log")"
    python3 - "$LOG" "$T/topic" "$1" "${2:-}" <<'PY' || fail "topic does not match the log ($1)"
import glob, sys
log, topic, label, allowed = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
files = sorted(glob.glob(log + ".seg-*")) + [log]
lines = b"".join(open(f, "rb").read() for f in files).split(b"\n")
assert lines[-1] == b"", "log does not end with a newline"
lines = lines[:-1]
seen, order, partitions, dups = {}, [], set(), []
for row in open(topic, "rb").read().split(b"\n")[:-1]:
    part, key, headers, value = row.split(b"\t", 3)
    partitions.add(part)
    assert headers == b"source=it-host", "headers %r" % headers
    seq = int(key)
    assert 1 <= seq <= len(lines), "key %d beyond the log (%d records)" % (seq, len(lines))
    assert value == lines[seq - 1], "value of key %d differs from line %d" % (seq, seq)
    if seq in seen:
        dups.append(seq)
    else:
        # first copies arrive in seq order: each one is the next record
        assert seq == len(order) + 1, "key %d arrived after %d (a gap or out of order)" % (seq, len(order))
        order.append(seq)
    seen[seq] = seen.get(seq, 0) + 1
assert len(order) == len(lines), "%d of %d records shipped" % (len(order), len(lines))
assert len(partitions) == 1, "records spread over partitions %r" % partitions
if allowed:
    low = int(open(allowed).read().split()[0])
    before = set(int(x) for x in open(allowed).read().split()[1:])
    bad = [s for s in set(dups) if s <= low and s not in before]
    assert not bad, "records at or below the state file's seq %d produced again: %r" % (low, bad[:10])
open(topic + ".dups", "w").write(" ".join(str(s) for s in sorted(set(dups))))
print("%s: %d records, %d duplicate(s)" % (label, len(lines), len(dups)))
PY
}

"$BIN/tests/mock_broker" "$TOPIC" 3 > "$T/mock.out" 2> "$T/mock.err" &
MOCK=$!; PIDS+=("$MOCK")
for _ in $(seq 50); do [ -s "$T/mock.out" ] && break; sleep 0.1; done
MB=$(head -1 "$T/mock.out")
[ -n "$MB" ] || fail "the test broker did not start: $(cat "$T/mock.err")"
note "test broker at $MB"

# 1. Off by default.
write_config "$AGENT"
start_meshd
[ "$(ship 's')" = None ] || fail "status shows shipping although audit.ship is absent"
feed 1 60
stop_meshd
[ ! -e "$T/state/audit-ship.json" ] || fail "a state file without audit.ship"
! grep -q "ship:" "$T/meshd.log" || fail "meshd.log mentions shipping although it is off"
note "off: no producer, no state file ($(records) records in the log)"

# 2. On: what was written before is shipped, then what is written now, across rotations
#    of the log into segments (a small audit.rotate.max_bytes).
cat >> "$T/meshd.yaml" <<YAML
audit:
  ship: { topic: $TOPIC, brokers: "$MB", max_in_flight: 20, source: it-host }
  rotate: { max_bytes: 30000 }
YAML
"$BIN/meshd" --config "$T/meshd.yaml" --check-config > /dev/null 2>&1 || fail "config refused"
t0=$(date +%s%N)
start_meshd
feed 2 150
wait_lag_zero 60
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check_topic "shipped"
segments=$(ls "$LOG".seg-* 2>/dev/null | wc -l)
[ "$segments" -ge 2 ] || fail "the log was not rotated ($segments segments): the test does not cover shipping across segments"
note "$(records) records shipped across $segments sealed segments and the active log, caught up $ms ms after start"
MESHCTL status | grep -q "^shipping: topic $TOPIC, shipped seq $(records) of $(records), lag 0 record(s)" \
    || { MESHCTL status; fail "meshctl status has no shipping line"; }

# 3. The broker down while records are written.
kill -USR1 "$MOCK"
feed 3 150
max_lag=0
t0=$(date +%s)
while :; do   # until a message has timed out (30 s) and been produced again later
    read -r lag failed broker < <(ship 's["lag_records"], s["failed"], s["broker"]')
    [ "$lag" -gt "$max_lag" ] && max_lag=$lag
    [ "$failed" -gt 0 ] && [ "$broker" = down ] && break
    [ $(( $(date +%s) - t0 )) -lt 90 ] || { MESHCTL --json status; fail "no delivery failed with the broker down"; }
    sleep 0.5
done
age=$(ship 's["lag_seconds"]')
note "broker down: lag $max_lag records, oldest unshipped $age s, $failed report(s) failed"
[ "$max_lag" -gt 0 ] || fail "no lag while the broker was down"
python3 -c "import sys; sys.exit(0 if float('$age') >= 30 else 1)" || fail "lag_seconds $age, expected >= 30"
in_flight=$(ship 's["in_flight"]')
[ "$in_flight" -le 20 ] || fail "$in_flight in flight, above max_in_flight 20"
kill -USR2 "$MOCK"
t0=$(date +%s%N)
wait_lag_zero 90
note "broker up: caught up in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
check_topic "after the outage"
cp "$T/topic.dups" "$T/dups-before-kill"

# 4. SIGKILL while shipping, then start again.
"$BIN/mesh-gen" --brokers "$BROKERS" --topic metrics --hosts 3 --metrics 2 --points 200 \
    --seed 4 --start $(( BASE + 4 * 86400 )) --labels "$T/labels-4.json" 2> "$T/gen.log" || fail "mesh-gen failed"
for _ in $(seq 100); do
    [ "$(ship 's["shipped_seq"] > 0 and s["in_flight"] + s["lag_records"] > 0')" = True ] && break
    sleep 0.05
done
kill -KILL "$MESHD"; wait "$MESHD" 2>/dev/null || true
saved=$(python3 -c "import json; print(json.load(open('$T/state/audit-ship.json'))['seq'])")
echo "$saved $(cat "$T/dups-before-kill")" > "$T/allowed"
note "killed meshd: the state file says seq $saved of $(records)"
for _ in $(seq 50); do pgrep -f "mesh-agent --config $T/" > /dev/null || break; sleep 0.2; done
start_meshd
wait_lag_zero 60
check_topic "after SIGKILL" "$T/allowed"
grep -q "ship: decision log to topic $TOPIC at $MB from seq $(( saved + 1 ))" "$T/meshd.log" \
    || fail "meshd did not resume after seq $saved"
stop_meshd
[ "$(python3 -c "import json; print(json.load(open('$T/state/audit-ship.json'))['seq'])")" = "$(records)" ] \
    || fail "the state file is not at the last record after a clean stop"
MESHCTL --log "$LOG" audit verify > /dev/null || fail "audit verify failed"
note "ok"
