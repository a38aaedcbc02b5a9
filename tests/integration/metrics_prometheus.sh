#!/usr/bin/env bash
# meshd-test: no-asan
# GET /metrics against the real Prometheus tools: meshd with http on and events flowing;
# the exposition passes `promtool check metrics`; a real Prometheus server (Debian's
# prometheus package) scrapes meshd on loopback, and the events-consumed counter it
# stored equals the one `meshctl --json status` shows; the shipped alerting rules pass
# `promtool check rules`.
source "$(dirname "$0")/lib.sh"
command -v promtool > /dev/null || fail "promtool not installed (Debian package prometheus, in TEST_DEBS)"
[ -x /usr/bin/prometheus ] || fail "/usr/bin/prometheus not installed (Debian package prometheus)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
PROM_PORT=$(free_port)
write_config "  - name: ops
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    detector: { kind: ewma, alpha: 0.1, warmup: 5, threshold: 0.5 }
    reason: { backend: scripted }
    actions: [scale_out, escalate]
    fallback: escalate
  - name: blind
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    detector: { kind: ewma, alpha: 0.1, warmup: 5, threshold: 0.5 }
    reason: { backend: dead }
    actions: [scale_out, escalate]
    fallback: escalate"
printf 'http:\n  listen: true\n  port: %s\n' "$PORT" >> "$T/meshd.yaml"
start_meshd
"$BIN/mesh-gen" --brokers "$BROKERS" --topic metrics --hosts 2 --metrics 2 --points 60 \
    --labels "$T/labels.json" 2> "$T/gen.log" || fail "mesh-gen failed"
total=$(jq_py 'print(d["events"] + d["malformed"])' < "$T/labels.json")
wait_handled "$total" 90

curl -sf -D "$T/headers" -o "$T/metrics.txt" "http://127.0.0.1:$PORT/metrics" || fail "GET /metrics failed"
grep -qi '^Content-Type: text/plain; version=0.0.4' "$T/headers" || fail "not the 0.0.4 content type: $(cat "$T/headers")"
promtool check metrics < "$T/metrics.txt" > "$T/promtool.out" 2>&1 || { cat "$T/promtool.out"; fail "promtool check metrics refused the exposition"; }
note "promtool check metrics: ok ($(wc -l < "$T/metrics.txt") lines, $(wc -c < "$T/metrics.txt") bytes)"
for m in meshd_build_info meshd_events_consumed_total meshd_decisions_total meshd_ledger_fsync_seconds_bucket \
         meshd_agent_restarts_total meshd_consumer_lag_messages meshd_gate_evaluation_seconds_bucket \
         meshd_token_reservation_seconds_count meshd_action_outcomes_total; do
    grep -q "^$m" "$T/metrics.txt" || fail "$m missing from /metrics"
done
# The agent whose backend refuses connections: its circuit and its model calls' latency.
grep -q '^meshd_backend_circuit_state{agent="blind",backend="dead",state="open"} [01]$' "$T/metrics.txt" \
    || fail "no circuit state for the dead backend"
calls=$(sed -n 's/^meshd_model_call_duration_seconds_count{agent="blind",backend="dead"} //p' "$T/metrics.txt")
[ "${calls:-0}" -gt 0 ] || fail "no model call latency for the dead backend"
note "dead backend: $calls model calls measured, circuit $(grep '^meshd_backend_circuit_state{agent="blind".* 1$' "$T/metrics.txt" | sed 's/.*state="\([a-z_]*\)".*/\1/')"
gates=$(sed -n 's/^meshd_gate_evaluation_seconds_count{agent="ops"} //p' "$T/metrics.txt")
[ "${gates:-0}" -gt 0 ] || fail "no gate evaluation reported by the agent"
parts=$(grep -c '^meshd_consumer_lag_messages{agent="ops",topic="metrics",partition="[0-9]*"}' "$T/metrics.txt" || true)
[ "$parts" = 4 ] || fail "lag of $parts partitions of topic metrics, expected 4"
events=$(status_json | jq_py 'print(sum(a["counters"]["events"] for a in d["agents"] if a["agent"] == "ops"))')
scraped=$(sed -n 's/^meshd_events_consumed_total{agent="ops"} //p' "$T/metrics.txt")
[ "$scraped" = "$events" ] || fail "/metrics says $scraped events, meshctl status $events"
fsyncs=$(sed -n 's/^meshd_ledger_fsync_seconds_count //p' "$T/metrics.txt")
[ "${fsyncs:-0}" -gt 0 ] || fail "no ledger fsync counted"
note "events consumed: $events in both; ledger fsyncs observed: $fsyncs"
# What a scrape costs the main loop (it renders on the loop's thread): 50 in a row.
t0=$(date +%s%N)
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/metrics" || fail "a scrape failed"; done
note "50 scrapes: $(( ($(date +%s%N) - t0) / 50000 )) us each on average (curl included)"

# A real Prometheus scraping meshd every second.
cat > "$T/prometheus.yml" <<YAML
global: { scrape_interval: 1s, evaluation_interval: 1s }
rule_files: [ "$ROOT/config/meshd-alerts.yml" ]
scrape_configs:
  - job_name: meshd
    static_configs: [ { targets: [ "127.0.0.1:$PORT" ] } ]
YAML
/usr/bin/prometheus --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/tsdb" \
    --web.listen-address="127.0.0.1:$PROM_PORT" > "$T/prometheus.log" 2>&1 &
PROM=$!
PIDS+=("$PROM")
query() {  # PromQL -> the first sample's value, or ""
    curl -sf --get --data-urlencode "query=$1" "http://127.0.0.1:$PROM_PORT/api/v1/query" |
        jq_py 'r = d["data"]["result"]; print(r[0]["value"][1] if r else "")' 2>/dev/null || true
}
got=
for _ in $(seq 120); do
    kill -0 "$PROM" 2>/dev/null || { tail -20 "$T/prometheus.log"; fail "prometheus exited"; }
    got=$(query 'meshd_events_consumed_total{agent="ops"}')
    [ -n "$got" ] && break
    sleep 0.5
done
[ -n "$got" ] || { tail -20 "$T/prometheus.log"; fail "Prometheus never stored meshd_events_consumed_total"; }
events=$(status_json | jq_py 'print(sum(a["counters"]["events"] for a in d["agents"] if a["agent"] == "ops"))')
[ "$got" = "$events" ] || fail "Prometheus has $got events consumed, meshctl status $events"
up=$(query 'up{job="meshd"}')
[ "$up" = 1 ] || fail "Prometheus's up{job=\"meshd\"} is '$up'"
rules=$(curl -sf "http://127.0.0.1:$PROM_PORT/api/v1/rules" | jq_py 'print(sum(len(g["rules"]) for g in d["data"]["groups"]))')
[ "${rules:-0}" -gt 0 ] || fail "Prometheus loaded no alerting rule from config/meshd-alerts.yml"
note "Prometheus scraped meshd: events consumed $got = meshctl status $events; up 1; $rules alerting rules loaded"

promtool check rules "$ROOT/config/meshd-alerts.yml" > "$T/rules.out" 2>&1 || { cat "$T/rules.out"; fail "promtool check rules refused config/meshd-alerts.yml"; }
promtool test rules "$ROOT/tests/integration/meshd-alerts.test.yml" > "$T/rules-test.out" 2>&1 \
    || { cat "$T/rules-test.out"; fail "the alerting rules' unit tests failed"; }
note "promtool check rules and test rules: ok"
stop_meshd
echo "metrics_prometheus: ok"
