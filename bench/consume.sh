#!/usr/bin/env bash
# End-to-end consumption from the embedded broker: the agent (decode + detect + offset
# bookkeeping, no incidents) against kcat consuming the same topic as a consumer-group
# member in the same run.  The broker (librdkafka's mock cluster inside meshd) is the
# ceiling for both.  Prints events/s for each and the ratio agent / kcat.
#   N=1000000 bench/consume.sh
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-build}
N=${N:-1000000}
T=$(mktemp -d /tmp/meshd-bench.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
cat > "$T/meshd.yaml" <<YAML
daemon: { runtime_dir: $T/run, state_dir: $T/state, heartbeat_ms: 50 }
kafka:
  brokers: embedded
  commit_interval_ms: 1000
  session_timeout_ms: 45000
  embedded: { partitions: 4, topics: [metrics] }
backends:
  scripted: { kind: scripted, file: $PWD/config/demo-responses.jsonl }
actions:
  escalate: { kind: log, description: "Ask a human" }
agents:
  - name: sink
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    detector: { kind: ewma, warmup: 1000000 }
    reason: { backend: scripted }
    actions: [escalate]
    fallback: escalate
YAML
"$B/meshd" --config "$T/meshd.yaml" 2> "$T/meshd.log" &
pid=$!
for _ in $(seq 100); do [ -f "$T/run/brokers" ] && break; sleep 0.1; done
BROKERS=$(cat "$T/run/brokers")
# Pause the agent's consumption while the topic is filled: stop it, produce, continue.
agent_pid() { "$B/meshctl" --config "$T/meshd.yaml" --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)["agents"][0]["pid"])'; }
for _ in $(seq 100); do a=$(agent_pid 2>/dev/null || echo 0); [ "$a" != 0 ] && break; sleep 0.1; done
kill -STOP "$a"
series=$((8 * 4))
"$B/mesh-gen" --brokers "$BROKERS" --topic metrics --hosts 8 --metrics 4 --points $(( N / series )) 2> "$T/gen.log"
n=$(( (N / series) * series ))
size=$(head -c 2000 /dev/null; "$B/mesh-gen" --stdout --hosts 1 --metrics 1 --points 3 | head -1 | wc -c)

t0=$(date +%s%N)
kcat -b "$BROKERS" -G bench-kcat -o beginning -e -q -f '%o\n' metrics 2>/dev/null | wc -l > "$T/kcat.count"
t1=$(date +%s%N)
kcat_n=$(cat "$T/kcat.count")

kill -CONT "$a"
t2=$(date +%s%N)
while :; do
    got=$("$B/meshctl" --config "$T/meshd.yaml" --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)["agents"][0]["counters"].get("events",0))')
    [ "$got" -ge "$n" ] && break
    sleep 0.02
done
t3=$(date +%s%N)
python3 - "$n" "$kcat_n" "$t0" "$t1" "$t2" "$t3" "$size" <<'PY'
import sys
n, kn, t0, t1, t2, t3, size = map(int, sys.argv[1:])
k = kn / ((t1 - t0) / 1e9); a = n / ((t3 - t2) / 1e9)
print(f"messages: {n} (~{size} bytes of JSON each), 4 partitions, embedded broker")
print(f"{'consumer':<34}{'events/s':>12}{'seconds':>10}")
print(f"{'kcat -G (baseline, prints offsets)':<34}{k:>12,.0f}{(t1-t0)/1e9:>10.2f}")
print(f"{'mesh-agent (decode+detect+store)':<34}{a:>12,.0f}{(t3-t2)/1e9:>10.2f}")
print(f"ratio agent / kcat: {a / k:.2f}")
PY
