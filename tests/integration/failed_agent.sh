#!/usr/bin/env bash
# An agent past its restart intensity is visible: status shows it `failed`, meshd's
# `ready` is false, STATUS= names it, and WATCHDOG=1 stops, so systemd's watchdog
# (WatchdogSec=) restarts the whole service.  Each death and the failure are recorded
# in the decision log.  systemd is not PID 1 in the test sandbox, so meshd talks to a
# fake NOTIFY_SOCKET (a unix datagram socket this test reads) with WATCHDOG_USEC set.
source "$(dirname "$0")/lib.sh"

# "broken" cannot start (exit 1 at once); "ops" is healthy.
cat > "$T/agent.sh" <<SH
#!/bin/sh
case " \$* " in *" --agent broken "*) echo "broken agent: refusing to start" >&2; exit 1;; esac
exec "$BIN/mesh-agent" "\$@"
SH
chmod 755 "$T/agent.sh"
agent_yaml() {
    echo "  - name: $1
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    detector: { kind: ewma, alpha: 0.05, warmup: 30, threshold: 0.99 }
    reason: { backend: scripted, workers: 1 }
    actions: [scale_out, escalate]
    fallback: escalate"
}
write_config "$(agent_yaml ops)
$(agent_yaml broken)"
sed -i "s|^  restart: .*|  restart: { backoff_initial_ms: 300, backoff_max_ms: 300, healthy_after_s: 30, intensity: 2, period_s: 60 }\n  agent_binary: $T/agent.sh|" "$T/meshd.yaml"

python3 - "$T/notify.sock" "$T/notify.log" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(0.2)
with open(sys.argv[2], "a", buffering=1) as out:
    end = time.time() + 120
    while time.time() < end:
        try:
            data = s.recv(4096)
        except socket.timeout:
            continue
        for line in data.decode().splitlines():
            out.write(f"{time.monotonic():.3f} {line}\n")
PY
NOTIFY=$!; PIDS+=("$NOTIFY")
for _ in $(seq 50); do [ -S "$T/notify.sock" ] && break; sleep 0.1; done

NOTIFY_SOCKET=$T/notify.sock WATCHDOG_USEC=1000000 \
    "$BIN/meshd" --config "$T/meshd.yaml" 2> "$T/meshd.log" &
MESHD=$!; PIDS+=("$MESHD")

state=
for _ in $(seq 150); do
    state=$(status_json | jq_py 'print([a["state"] for a in d["agents"] if a["name"]=="broken"][0])' 2>/dev/null || true)
    [ "$state" = failed ] && break
    sleep 0.2
done
[ "$state" = failed ] || fail "broken agent not failed (state '$state')"
failed_at=$(python3 -c 'import time; print(f"{time.monotonic():.3f}")')
note "broken agent failed"
sleep 3      # three watchdog intervals

status_json > "$T/status.json"
[ "$(jq_py 'print(d["daemon"]["ready"])' < "$T/status.json")" = False ] || fail "meshd still says ready"
[ "$(jq_py 'print([a["state"] for a in d["agents"] if a["name"]=="ops"][0])' < "$T/status.json")" = running ] \
    || fail "the healthy agent is not running"
MESHCTL status > "$T/status.txt"
grep -q "NOT READY (agent failed)" "$T/status.txt" || { cat "$T/status.txt"; fail "meshctl status does not say not ready"; }
grep -qE '^broken +0 failed' "$T/status.txt" || { cat "$T/status.txt"; fail "meshctl status does not show broken as failed"; }

before=$(awk -v t="$failed_at" '$1 < t && $2 == "WATCHDOG=1"' "$T/notify.log" | wc -l)
after=$(awk -v t="$failed_at" '$1 >= t && $2 == "WATCHDOG=1"' "$T/notify.log" | wc -l)
note "WATCHDOG=1: $before before the failure, $after in the 3 s after"
[ "$before" -ge 1 ] || fail "no watchdog pings while healthy"
[ "$after" = 0 ] || fail "meshd kept feeding the watchdog with a failed agent"
grep -q '^[0-9.]* READY=1' "$T/notify.log" && fail "READY=1 sent although an agent never came up"
grep -q 'STATUS=.*1 failed (broken: last exit 1)' "$T/notify.log" || { cat "$T/notify.log"; fail "STATUS= does not name the failed agent"; }
grep -q 'agent broken failed: 3 restarts within 60 s' "$T/meshd.log" || fail "no failure line in the log"

stop_meshd
python3 - "$T/state/decisions.jsonl" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
died = [r for r in recs if r.get("type") == "agent" and r.get("event") == "died"]
failed = [r for r in recs if r.get("type") == "agent" and r.get("event") == "failed"]
print(f"{len(died)} died records, {len(failed)} failed records")
assert len(died) == 3 and all(r["instance"] == "broken" and r["exit"] == 1 and r["pid"] > 0 for r in died), died
assert len(failed) == 1 and failed[0]["instance"] == "broken" and failed[0]["agent"] == "broken", failed
PY
MESHCTL --log "$T/state/decisions.jsonl" audit verify
echo ok
