#!/usr/bin/env bash
# GET /readyz follows meshd's readiness: 503 with a reason while an agent has not said
# hello yet (its start is slowed by a wrapper), 200 once every agent is ready, 503 again
# while the decision log is not writable (the state directory made immutable, as in
# storage_down.sh), 200 when it is writable again.  /healthz is 200 all along.
source "$(dirname "$0")/lib.sh"
mkdir -m 0750 "$T/state"
if ! chattr +i "$T/state" 2>/dev/null || ! chattr -i "$T/state"; then
    echo "SKIP: chattr +i is not supported here (needs root and ext4/xfs/btrfs)"; exit 0
fi
trap 'chattr -R -i "$T/state" 2>/dev/null || true; cleanup' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
URL=http://127.0.0.1:$PORT
# The agent starts 3 s late: meshd serves HTTP meanwhile and is not ready.
cat > "$T/slow-agent" <<SH
#!/bin/sh
sleep 3
exec "$BIN/mesh-agent" "\$@"
SH
chmod 0755 "$T/slow-agent"
write_config "  - name: ops
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    detector: { kind: ewma, alpha: 0.05, warmup: 30, threshold: 0.99 }
    reason: { backend: scripted, workers: 1 }
    actions: [scale_out, escalate]
    fallback: escalate"
sed -i "s|^daemon:|daemon:\n  agent_binary: $T/slow-agent|" "$T/meshd.yaml"
printf 'http:\n  listen: true\n  port: %s\n' "$PORT" >> "$T/meshd.yaml"

"$BIN/meshd" --config "$T/meshd.yaml" 2> "$T/meshd.log" &
MESHD=$!
PIDS+=("$MESHD")
code=000
for _ in $(seq 100); do
    code=$(curl -s -o "$T/body" -w '%{http_code}' --max-time 2 "$URL/readyz" || true)
    [ "$code" != 000 ] && break
    kill -0 "$MESHD" 2>/dev/null || fail "meshd exited during start"
    sleep 0.05
done
note "/readyz before the agent said hello: $code $(cat "$T/body")"
[ "$code" = 503 ] || fail "/readyz answered $code before the agent was ready"
grep -q '^not ready: agents: ' "$T/body" || fail "the 503 does not say why: $(cat "$T/body")"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/healthz")" = 200 ] || fail "/healthz not 200 while starting"
for _ in $(seq 150); do
    code=$(curl -s -o "$T/body" -w '%{http_code}' "$URL/readyz" || true)
    [ "$code" = 200 ] && break
    sleep 0.1
done
[ "$code" = 200 ] || fail "/readyz never 200 (last $code $(cat "$T/body"))"
[ "$(cat "$T/body")" = ready ] || fail "the 200's body is not 'ready'"
[ "$(status_json | jq_py 'print(d["daemon"]["ready"])')" = True ] || fail "/readyz 200 but status not ready"
note "/readyz 200 once the agent said hello"

# The ledger not writable: the next append fails, the probe too -> 503.
victim=$(status_json | jq_py 'print(d["agents"][0]["pid"])')
chattr +i "$T/state/decisions.jsonl" "$T/state" || fail "cannot make the state directory immutable"
kill -KILL "$victim"      # its death record is the append that fails
for _ in $(seq 100); do
    code=$(curl -s -o "$T/body" -w '%{http_code}' "$URL/readyz" || true)
    [ "$code" = 503 ] && break
    sleep 0.1
done
note "/readyz with the ledger not writable: $code $(cat "$T/body")"
[ "$code" = 503 ] || fail "/readyz answered $code with the ledger not writable"
grep -q '^not ready: the ledger is not writable: ' "$T/body" || fail "the 503 does not say the ledger: $(cat "$T/body")"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/healthz")" = 200 ] || fail "/healthz not 200 while storage is down"
chattr -i "$T/state/decisions.jsonl" "$T/state"
for _ in $(seq 200); do
    code=$(curl -s -o "$T/body" -w '%{http_code}' "$URL/readyz" || true)
    [ "$code" = 200 ] && break
    sleep 0.1
done
[ "$code" = 200 ] || fail "/readyz not 200 after the storage came back (last $code $(cat "$T/body"))"
note "/readyz 200 again once the ledger is writable"
# The restarted agent's wrapper sleeps; let it say hello before the stop.
for _ in $(seq 100); do [ "$(grep -c 'agent ops is up' "$T/meshd.log")" -ge 2 ] && break; sleep 0.1; done
stop_meshd
echo "http_readyz: ok"
