#!/usr/bin/env bash
# Reload off the main loop: rules whose top level runs until its time limit (four of
# them, 2.5 s each) are checked in a child process.  While `meshctl reload` waits for
# the verdict, `meshctl status` keeps answering fast, no agent is killed for missing
# heartbeats, and the reload is refused naming the slow rule.
source "$(dirname "$0")/lib.sh"

agents="  - name: watcher
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    incident: { cooldown_s: 600 }
    reason: { backend: scripted }
    actions: [scale_out, escalate]
    fallback: escalate"
write_config "$agents"
start_meshd
agent() { status_json | jq_py "a=d['agents'][0]; print(a['$1'])"; }
pid1=$(agent pid)
note "running: agent pid $pid1"

slow=""
for i in 1 2 3 4; do
    printf 'while true do end\n' > "$T/slow$i.lua"
    chmod 644 "$T/slow$i.lua"
    slow="$slow, $T/slow$i.lua"
done
sed -i "s|^  rules: \[$ROOT/rules/action_allowlist.lua\]|  rules: [$ROOT/rules/action_allowlist.lua$slow]\n  instructions: 1000000000\n  time_ms: 2500|" "$T/meshd.yaml"
grep -q "time_ms: 2500" "$T/meshd.yaml" || fail "could not write the slow config"

t0=$(date +%s.%N)
( rc=0; MESHCTL reload > "$T/reload.out" 2>&1 || rc=$?; echo $rc > "$T/reload.rc" ) &
reloader=$!
worst=0
for _ in $(seq 60); do
    s0=$(date +%s.%N)
    MESHCTL status > /dev/null || fail "meshctl status failed during the reload check"
    dt=$(python3 -c "print($(date +%s.%N) - $s0)")
    worst=$(python3 -c "print(max($worst, $dt))")
    [ -f "$T/reload.rc" ] && break
    sleep 0.5
done
wait "$reloader"
took=$(python3 -c "print(round($(date +%s.%N) - $t0, 1))")
note "reload answered after ${took}s; slowest status during it: ${worst}s"
cat "$T/reload.out"
[ "$(cat "$T/reload.rc")" != 0 ] || fail "a reload with rules that hit their limit was accepted"
grep -q "slow1.lua" "$T/reload.out" || fail "the refusal does not name the slow rule"
python3 -c "import sys; sys.exit(0 if $took >= 2.5 else 1)" \
    || fail "the reload took ${took}s: the slow rules did not run"
python3 -c "import sys; sys.exit(0 if $worst < 1.0 else 1)" \
    || fail "status took ${worst}s while the rules were being checked"
[ "$(agent pid)" = "$pid1" ] || fail "the agent was restarted during the reload"
grep -q "sent no heartbeat" "$T/meshd.log" && fail "an agent was killed for missing heartbeats"

# SIGHUP takes the same road: the supervisor keeps answering.
kill -HUP "$MESHD"
s0=$(date +%s.%N)
MESHCTL status > /dev/null || fail "status failed after SIGHUP"
dt=$(python3 -c "print($(date +%s.%N) - $s0)")
python3 -c "import sys; sys.exit(0 if $dt < 1.0 else 1)" || fail "status took ${dt}s after SIGHUP"
for _ in $(seq 100); do grep -q "reload refused" "$T/meshd.log" && break; sleep 0.2; done
stop_meshd
echo ok
