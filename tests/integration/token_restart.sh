#!/usr/bin/env bash
# A restart never hands out a fresh budget: meshd is SIGKILLed mid-window while a call
# holds a reservation; started again, every scope has what it had used, plus the
# reservations of that moment charged in full (the server may have generated), and
# nothing reserved.  A calendar-day budget in a named zone is among them.
source "$(dirname "$0")/lib.sh"

"$BIN/tests/fake_llm" --port-file "$T/llm.port" --mode max-usage --delay-ms 1500 \
    --responses "$ROOT/config/demo-responses.jsonl" 2> "$T/llm.log" &
PIDS+=("$!")
for _ in $(seq 100); do [ -s "$T/llm.port" ] && break; sleep 0.1; done
[ -s "$T/llm.port" ] || fail "fake_llm did not start"

write_config "  - name: ops
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    incident: { cooldown_s: 60 }
    reason:
      backend: llm
      max_steps: 1
      max_tokens: 64
      workers: 2
      incident_token_cap: 100000
      budget: { tokens: 500000, window: day, time_zone: Europe/Berlin }
    actions: [scale_out, escalate]
    fallback: escalate"
sed -i "/^backends:/a\\  llm: { kind: openai, url: \"http://127.0.0.1:$(cat "$T/llm.port")\", model: fake, timeout_ms: 10000, json_schema: false }" \
    "$T/meshd.yaml"
echo "budget: { tokens: 900000, window_s: 86400 }" >> "$T/meshd.yaml"
start_meshd
"$BIN/mesh-gen" --brokers "$BROKERS" --topic metrics --hosts 3 --metrics 3 --points 300 \
    2> "$T/gen.log" || fail "mesh-gen failed"

# Wait for some charges and a reservation held right now.  The agents are stopped
# (SIGSTOP) before the snapshot that counts, so that no grant or charge comes between it
# and the kill: a request already sent is answered by meshd while they are stopped, and
# so is in the snapshot.
held_now() {
    MESHCTL --json budget > "$T/before.json" 2>/dev/null || return 1
    python3 -c "
import json,sys; d=json.load(open('$T/before.json')); s={x['scope']:x for x in d['scopes']}
sys.exit(0 if s['daemon']['used'] > 0 and d['reserved'] > 0 else 1)" 2>/dev/null
}
snapshot=
for _ in $(seq 150); do
    if held_now; then
        pkill -STOP -f "mesh-agent --config $T/" || true
        sleep 0.3
        if held_now; then snapshot=1; break; fi
        pkill -CONT -f "mesh-agent --config $T/" || true
    fi
    sleep 0.1
done
[ -n "$snapshot" ] || fail "never saw a charge and a reservation at once"
kill -KILL "$MESHD"
wait "$MESHD" 2>/dev/null || true
pkill -CONT -f "mesh-agent --config $T/" || true   # their parent-death signal is pending
for _ in $(seq 100); do pgrep -f "mesh-agent --config $T/" >/dev/null || break; sleep 0.1; done
pgrep -f "mesh-agent --config $T/" >/dev/null && fail "agents outlived meshd"

start_meshd
MESHCTL --json budget > "$T/after.json" || fail "meshctl budget failed after the restart"
MESHCTL budget | head -4
python3 - "$T/before.json" "$T/after.json" <<'PY'
import json, sys
before, after = (json.load(open(p)) for p in sys.argv[1:3])
b = {s["scope"]: s for s in before["scopes"]}
a = {s["scope"]: s for s in after["scopes"]}
held = before["reserved"]
for scope in ("daemon", "agent:ops", "backend:llm"):
    used0, used1 = b[scope]["used"], a[scope]["used"]
    print("%-12s before: used %d + reserved %d; after the restart: used %d, reserved %d"
          % (scope, used0, b[scope]["reserved"], used1, a[scope]["reserved"]))
    assert used0 <= used1 <= used0 + b[scope]["reserved"], scope
    assert a[scope]["reserved"] == 0, scope
    if a[scope]["limit"] is not None:
        assert a[scope]["remaining"] == a[scope]["limit"] - used1, scope
assert a["agent:ops"]["time_zone"] == "Europe/Berlin"
assert after["reserved"] == 0
PY
stop_meshd
echo ok
