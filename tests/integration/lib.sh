# Shared helpers for the integration tests (sourced, not run).
# Every test gets a scratch directory and a trap that stops every process it
# started, also when the test fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
B=${B:-build}
BIN=$ROOT/$B
T=$(mktemp -d /tmp/meshd-it.XXXXXX)
PIDS=()

cleanup() {
    local p
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] || continue
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] || continue
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$p" 2>/dev/null || true
    done
    # agents whose supervisor is gone stop by themselves; make sure
    pkill -KILL -f "mesh-agent --config $T/" 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    if [ -f "$T/meshd.log" ]; then
        tail -30 "$T/meshd.log" >&2
        mkdir -p "$ROOT/$B/test-logs"
        cp "$T/meshd.log" "$ROOT/$B/test-logs/$(basename "$0" .sh).meshd.log"
    fi
    exit 1
}
note() { echo "-- $*"; }
jq_py() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }

# A config for the tests: embedded broker, the shipped rules, the demo responses,
# agents given as YAML in $1 (appended under "agents:").
write_config() {
    cat > "$T/meshd.yaml" <<YAML
daemon:
  runtime_dir: $T/run
  state_dir: $T/state
  heartbeat_ms: 200
  liveness_timeout_ms: 5000
  drain_timeout_ms: 10000
  restart: { backoff_initial_ms: 100, backoff_max_ms: 2000, healthy_after_s: 30, intensity: 20, period_s: 60 }
kafka:
  brokers: embedded
  session_timeout_ms: 6000
  commit_interval_ms: 200
  embedded: { partitions: 4, topics: [metrics, mesh.actions] }
gates:
  rules: [$ROOT/rules/action_allowlist.lua]
backends:
  scripted: { kind: scripted, file: $ROOT/config/demo-responses.jsonl }
  dead: { kind: openai, url: "http://127.0.0.1:9", model: none, timeout_ms: 500, connect_timeout_ms: 200 }
actions:
  scale_out:
    kind: kafka
    topic: mesh.actions
    description: "Add replicas"
    params:
      service:  { type: string, pattern: "[a-z][a-z0-9-]{0,62}" }
      replicas: { type: integer, min: 1, max: 10 }
  escalate:
    kind: log
    description: "Ask a human"
    params:
      summary: { type: string, max_length: 500, required: false }
agents:
$1
YAML
}

MESHCTL() { "$BIN/meshctl" --config "$T/meshd.yaml" "$@"; }
status_json() { MESHCTL --json status 2>/dev/null || true; }

start_meshd() {
    "$BIN/meshd" --config "$T/meshd.yaml" 2> "$T/meshd.log" &
    MESHD=$!
    PIDS+=("$MESHD")
    for _ in $(seq 150); do
        [ "$(status_json | jq_py 'print(d["daemon"]["ready"])' 2>/dev/null)" = True ] && break
        kill -0 "$MESHD" 2>/dev/null || fail "meshd exited during start"
        sleep 0.2
    done
    [ "$(status_json | jq_py 'print(d["daemon"]["ready"])')" = True ] || fail "meshd not ready"
    BROKERS=$(cat "$T/run/brokers")
}

stop_meshd() {
    kill -TERM "$MESHD"
    local rc=0
    wait "$MESHD" || rc=$?
    [ "$rc" = 0 ] || fail "meshd exited with $rc on SIGTERM"
    check_log "$T/meshd.log"
}

# A sanitizer report from any process, or an agent that did not drain cleanly at stop.
check_log() {
    if grep -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$1"; then
        fail "sanitizer report in $1"
    fi
    if grep -E 'agent .* exited \([1-9-]' "$1"; then
        fail "an agent did not exit cleanly on stop"
    fi
}

# Wait until every agent's lag and inflight are 0 and events+malformed >= $1 (timeout $2 s).
wait_handled() {
    local want=$1 limit=${2:-90} t0=$(date +%s) seen_ok=
    while :; do
        local ok
        ok=$(status_json | jq_py "
print('yes' if all(a['state']=='running' and a['counters'].get('lag',-1)==0 and
  a['counters'].get('inflight',1)==0 and
  a['counters'].get('events',0)+a['counters'].get('malformed',0) >= $want for a in d['agents']) else 'no')" 2>/dev/null || echo no)
        # Twice in a row: a message between its poll and its enqueue is in neither count.
        if [ "$ok" = yes ]; then [ "${seen_ok:-}" = 1 ] && return 0; seen_ok=1; else seen_ok=; fi
        [ $(( $(date +%s) - t0 )) -lt "$limit" ] || { MESHCTL --json status || true; fail "events not handled within $limit s"; }
        sleep 0.3
    done
}
