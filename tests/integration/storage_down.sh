#!/usr/bin/env bash
# A state directory that stops taking writes is one clear `storage: down` state, not a
# crash loop: logged once, agents held (not restarted), status shows storage "down" with
# the error, meshd is not ready and stops feeding the watchdog; when a probe write
# succeeds again the agents start and records kept meanwhile are written.  The state
# directory and the log are made immutable (chattr +i: root ignores file modes, and a
# read-only remount is refused while meshd holds the log open), so every write fails
# with EPERM as it would on a failing or read-only disk.
source "$(dirname "$0")/lib.sh"
mkdir -m 0750 "$T/state"
if ! chattr +i "$T/state" 2>/dev/null || ! chattr -i "$T/state"; then
    echo "SKIP: chattr +i is not supported here (needs root and ext4/xfs/btrfs)"; exit 0
fi
trap 'chattr -R -i "$T/state" 2>/dev/null || true; cleanup' EXIT

write_config "  - name: ops
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    detector: { kind: ewma, alpha: 0.05, warmup: 30, threshold: 0.99 }
    reason: { backend: scripted, workers: 1 }
    actions: [scale_out, escalate]
    fallback: escalate"

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
PIDS+=($!)
for _ in $(seq 50); do [ -S "$T/notify.sock" ] && break; sleep 0.1; done
export NOTIFY_SOCKET=$T/notify.sock WATCHDOG_USEC=1000000
start_meshd
unset NOTIFY_SOCKET WATCHDOG_USEC

victim=$(status_json | jq_py 'print(d["agents"][0]["pid"])')
chattr +i "$T/state/decisions.jsonl" "$T/state" || fail "cannot make the state directory immutable"
kill -KILL "$victim"      # its death record is the append that fails
storage=
for _ in $(seq 100); do
    storage=$(status_json | jq_py 'print(d["daemon"]["storage"])' 2>/dev/null || true)
    [ "$storage" = down ] && break
    sleep 0.1
done
[ "$storage" = down ] || fail "storage not reported down"
down_at=$(python3 -c 'import time; print(f"{time.monotonic():.3f}")')
note "storage down: $(status_json | jq_py 'print(d["daemon"]["storage_error"])')"
sleep 3
status_json > "$T/status.json"
jq_py 'assert "Operation not permitted" in d["daemon"]["storage_error"], d["daemon"]' < "$T/status.json" \
    || fail "storage_error does not say why"
[ "$(jq_py 'print(d["daemon"]["ready"])' < "$T/status.json")" = False ] || fail "ready while storage is down"
read -r state pid restarts < <(jq_py 'a=d["agents"][0]; print(a["state"], a["pid"], a["restarts"])' < "$T/status.json")
note "agent: $state, pid $pid, $restarts restart(s)"
[ "$state" = held ] || fail "agent is $state, want held"
[ "$pid" = 0 ] || fail "an agent runs while the storage is down"
[ "$restarts" -le 1 ] || fail "the agent was restarted $restarts times while the storage is down"
[ "$(grep -c 'storage: down' "$T/meshd.log")" = 1 ] || fail "storage: down not logged exactly once"
MESHCTL status | grep -q 'STORAGE DOWN' || fail "meshctl status does not show the storage"
wd=$(awk -v t="$down_at" '$1 >= t && $2 == "WATCHDOG=1"' "$T/notify.log" | wc -l)
[ "$wd" = 0 ] || fail "$wd watchdog pings while storage is down"
grep -q 'STATUS=storage down: ' "$T/notify.log" || fail "STATUS= does not say storage down"

chattr -i "$T/state/decisions.jsonl" "$T/state" || fail "cannot make the state directory writable again"
ok=
for _ in $(seq 150); do
    ok=$(status_json | jq_py 'print(d["daemon"]["storage"] == "up" and d["daemon"]["ready"] and d["agents"][0]["state"] == "running")' 2>/dev/null || true)
    [ "$ok" = True ] && break
    sleep 0.1
done
[ "$ok" = True ] || fail "not back up after the storage came back"
grep -q 'storage: up again' "$T/meshd.log" || fail "no recovery line"
up_wd=$(awk -v t="$down_at" '$1 >= t && $2 == "WATCHDOG=1"' "$T/notify.log" | wc -l)
note "back up; watchdog pings since recovery: $up_wd"

stop_meshd
python3 - "$T/state/decisions.jsonl" "$victim" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
died = [r for r in recs if r.get("type") == "agent" and r.get("event") == "died"]
print("died records:", died)
assert any(r["pid"] == int(sys.argv[2]) and r["signal"] == "SIGKILL" and r.get("recorded_late") for r in died)
PY
MESHCTL --log "$T/state/decisions.jsonl" audit verify
echo ok
