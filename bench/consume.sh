#!/usr/bin/env bash
# End-to-end consumption from the embedded broker: a mesh-agent (decode + detect +
# offset bookkeeping; no incidents) against kcat consuming the same topic as a
# consumer-group member, in the same run.  The broker (librdkafka's mock cluster inside
# a first meshd) is the ceiling for both.  A second meshd, pointed at that broker, runs
# the measured agent.  Each clock runs from its first message to its last.
#   N=1000000 bench/consume.sh
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-build}
N=${N:-1000000}
PREFETCH=500000     # the agent's kafka.prefetch_messages, and kcat's for the baseline
T=$(mktemp -d /tmp/meshd-bench.XXXXXX)
pids=()
cleanup() {
    rc=$?
    [ $rc = 0 ] || tail -5 "$T"/*.log
    for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
config() {  # dir, brokers, topic
    cat <<YAML
daemon: { runtime_dir: $T/$1/run, state_dir: $T/$1/state, heartbeat_ms: 50 }
kafka:
  brokers: $2
  commit_interval_ms: 1000
  prefetch_messages: $PREFETCH
$( [ "$2" = embedded ] && echo "  embedded: { partitions: 16, topics: [metrics, idle] }" )
backends:
  scripted: { kind: scripted, file: $PWD/config/demo-responses.jsonl }
actions:
  escalate: { kind: log, description: "Ask a human" }
agents:
  - name: sink
    topics: [$3]
    fields: { key: [host, metric], value: value, time: ts }
    detector: { kind: ewma, warmup: 1000000 }
    reason: { backend: scripted }
    actions: [escalate]
    fallback: escalate
YAML
}
mkdir -p "$T/broker" "$T/agent"
config broker embedded idle > "$T/broker.yaml"
"$B/meshd" --config "$T/broker.yaml" 2> "$T/broker.log" &
pids+=($!)
for _ in $(seq 100); do [ -f "$T/broker/run/brokers" ] && break; sleep 0.1; done
BROKERS=$(cat "$T/broker/run/brokers")
series=$((8 * 4))
"$B/mesh-gen" --brokers "$BROKERS" --topic metrics --hosts 8 --metrics 4 \
    --points $(( N / series )) 2> "$T/gen.log"
size=$("$B/mesh-gen" --stdout --hosts 1 --metrics 1 --points 100 2>/dev/null | awk 'NR==1 {print length($0)}')

# kcat's clock runs from its first message to its last (group join excluded).  Two
# kcat runs, each in a group of its own: with librdkafka's defaults (what an operator
# would type), and with the agent's prefetch ($PREFETCH), the like-for-like baseline the
# ratio is taken against.
kcat_run() {  # group, extra kcat args...
    local group=$1; shift
    kcat -b "$BROKERS" -G "$group" "$@" -o beginning -e -q -f '%o\n' metrics 2>/dev/null \
        | python3 -c '
import sys, time
n, first = 0, None
for line in sys.stdin:
    if first is None: first = time.time_ns()
    n += 1
print(n, first, time.time_ns())'
}
read -r nd d0 d1 < <(kcat_run bench-kcat-default)
read -r n t0 t1 < <(kcat_run bench-kcat -X queued.min.messages=$PREFETCH)
# The mock cluster keeps a bounded log per partition (older message sets are dropped),
# so what both consumers can read is what kcat read, not what was produced.

config agent "$BROKERS" metrics > "$T/agent.yaml"
"$B/meshd" --config "$T/agent.yaml" 2> "$T/agent.log" &
pids+=($!)
# The agent's clock runs from the first heartbeat showing an event to the one showing
# all, read by one poller process (a python start per poll would take a core from the
# 2-core machine the agent runs on).
read -r t2 t3 < <(python3 - "$B/meshctl" "$T/agent.yaml" "$n" <<'PY'
import json, subprocess, sys, time
meshctl, config, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
first = None
while True:
    out = subprocess.run([meshctl, "--config", config, "--json", "status"],
                         capture_output=True, text=True).stdout
    try:
        events = json.loads(out)["agents"][0]["counters"].get("events", 0)
    except (ValueError, KeyError, IndexError):
        events = 0
    now = time.time_ns()
    if first is None and events >= 1:
        first = now
    if events >= n:
        print(first, now)
        break
    time.sleep(0.01)
PY
)
python3 - "$n" "$t0" "$t1" "$t2" "$t3" "$size" "$nd" "$d0" "$d1" <<'PY'
import sys
n, t0, t1, t2, t3, size, nd, d0, d1 = map(int, sys.argv[1:])
k = n / ((t1 - t0) / 1e9); a = n / ((t3 - t2) / 1e9); kd = nd / ((d1 - d0) / 1e9)
print(f"messages: {n} retained by the embedded broker (~{size} bytes of JSON each), 16 partitions")
print(f"{'consumer':<38}{'events/s':>12}{'seconds':>10}")
print(f"{'kcat -G, librdkafka defaults':<38}{kd:>12,.0f}{(d1-d0)/1e9:>10.2f}")
print(f"{'kcat -G, same prefetch (baseline)':<38}{k:>12,.0f}{(t1-t0)/1e9:>10.2f}")
print(f"{'meshd + mesh-agent (decode+detect)':<38}{a:>12,.0f}{(t3-t2)/1e9:>10.2f}")
print("each timed from the first message consumed to the last (group join excluded);")
print("the agent's figure is read from 50 ms heartbeats, so it is a lower bound")
print(f"ratio agent / kcat with the same prefetch: {a / k:.2f}")
PY
