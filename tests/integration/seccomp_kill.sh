#!/usr/bin/env bash
# An agent that makes a system call outside its seccomp allow-list dies by SIGSYS (31),
# and the supervisor says which agent died and by what.  The test hook
# MESH_TEST_FORBIDDEN_SYSCALL=1 (test only) makes every agent call personality
# (0xffffffff) right after it confined itself; meshd passes its environment on.
source "$(dirname "$0")/lib.sh"

write_config "  - name: jailed
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    reason: { backend: scripted }
    actions: [scale_out, escalate]
    fallback: escalate"
cat >> "$T/meshd.yaml" <<YAML
sandbox:
  seccomp: kill
YAML

MESH_TEST_FORBIDDEN_SYSCALL=1 "$BIN/meshd" --config "$T/meshd.yaml" 2> "$T/meshd.log" &
MESHD=$!
PIDS+=("$MESHD")
# The agent confines itself, calls the forbidden system call and is killed; meshd
# restarts it with backoff, so the line appears again and again.  Wait for two deaths.
for _ in $(seq 150); do
    [ "$(grep -cE 'agent jailed died \(signal (31|SIGSYS)' "$T/meshd.log")" -ge 2 ] && break
    kill -0 "$MESHD" 2>/dev/null || fail "meshd exited"
    sleep 0.2
done
grep -E 'confined: .*seccomp kill' "$T/meshd.log" | head -1 \
    || fail "the agent did not report its confinement"
grep -E 'test hook: calling personality' "$T/meshd.log" | head -1 \
    || fail "the agent did not reach the test hook"
grep -E 'agent jailed died \(signal (31|SIGSYS)' "$T/meshd.log" | head -1 \
    || fail "meshd did not log the agent's death by SIGSYS (signal 31)"
# It never got further than the hook: no hello, so never running.
grep -q 'consuming metrics' "$T/meshd.log" && fail "the agent kept running after the forbidden call"

# The decision log records the death, with the signal and why.
for _ in $(seq 50); do
    grep -qs '"event":"died"' "$T/state/decisions.jsonl" && break
    sleep 0.1
done
grep '"event":"died"' "$T/state/decisions.jsonl" | grep '"agent":"jailed' \
    | grep -q '"signal":"SIGSYS"' \
    || fail "no {type: agent, event: died, signal: SIGSYS} record for jailed in the log"
note "the decision log records the death"

# The same config with seccomp: log keeps the agent alive through the same call.
kill -TERM "$MESHD"; wait "$MESHD" || true
sed -i 's/^  seccomp: kill$/  seccomp: log/' "$T/meshd.yaml"
MESH_TEST_FORBIDDEN_SYSCALL=1 "$BIN/meshd" --config "$T/meshd.yaml" 2> "$T/meshd.log" &
MESHD=$!
PIDS+=("$MESHD")
for _ in $(seq 150); do
    [ "$(status_json | jq_py 'print(d["daemon"]["ready"])' 2>/dev/null)" = True ] && break
    kill -0 "$MESHD" 2>/dev/null || fail "meshd exited"
    sleep 0.2
done
[ "$(status_json | jq_py 'print(d["agents"][0]["state"])')" = running ] \
    || fail "with seccomp: log the agent is not running"
grep -q 'test hook: calling personality' "$T/meshd.log" || fail "log mode: hook not reached"
grep -qE 'agent jailed died' "$T/meshd.log" && fail "with seccomp: log the agent died"
stop_meshd
echo ok
