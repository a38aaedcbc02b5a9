#!/usr/bin/env bash
# Reload: a broken rule leaves the old rule set in force and the error visible in
# `meshctl status`; a good one is swapped in without restarting the agent and recorded
# in the decision log, and `meshctl reload` returns only once the agent reports it; an agent whose own config changed is restarted; a daemon-level
# change is refused.
source "$(dirname "$0")/lib.sh"

cp rules/confidence_floor.lua "$T/floor.lua"
agents="  - name: watcher
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    incident: { cooldown_s: 600 }
    reason: { backend: scripted }
    actions: [scale_out, escalate]
    fallback: escalate
    rules: [$T/floor.lua]"
write_config "$agents"
start_meshd
agent() { status_json | jq_py "a=d['agents'][0]; print(a['$1'])"; }
for _ in $(seq 50); do h1=$(agent rules_hash); [ "$h1" != None ] && break; sleep 0.1; done
pid1=$(agent pid)
note "running: pid $pid1, rules $h1"

# 1. a rule that does not compile
printf 'return { name = "confidence_floor", check = function (p, c) return true end\n' > "$T/floor.lua"
if out=$(MESHCTL reload 2>&1); then fail "reload accepted a broken rule"; fi
echo "$out"
echo "$out" | grep -q "floor.lua" || fail "the reload error does not name the rule file"
MESHCTL status | tee "$T/status.txt"
grep -q "LAST RELOAD FAILED" "$T/status.txt" || fail "status does not show the failed reload"
grep -q "floor.lua" "$T/status.txt" || fail "status does not show why"
[ "$(agent rules_hash)" = "$h1" ] || fail "rules changed after a failed reload"
[ "$(agent pid)" = "$pid1" ] || fail "agent restarted after a failed reload"

# 2. SIGHUP with the same broken rule: refused, logged
kill -HUP "$MESHD"; sleep 0.5
grep -q "reload refused" "$T/meshd.log" || fail "SIGHUP reload failure not logged"
kill -0 "$MESHD" || fail "meshd died on SIGHUP"

# 3. a good new rule: swapped in place, recorded
sed 's/0\.6/0.65/' rules/confidence_floor.lua > "$T/floor.lua"
MESHCTL reload || fail "a valid reload was refused"
# meshctl reload returns once every agent reports the new rule set: the very next
# status shows it, no polling.
h2=$(agent rules_hash)
[ "$h2" != "$h1" ] || fail "status right after the reload shows the old rules hash"
MESHCTL status | grep -q "${h2:0:12}" || fail "text status does not show the new rules hash"
[ "$(agent pid)" = "$pid1" ] || fail "the agent was restarted for a rules-only change"
MESHCTL status | grep -q "LAST RELOAD FAILED" && fail "status still shows the old failure"
note "rules swapped: $h1 -> $h2 in pid $pid1"

# 4. the agent's own config changed: it is drained and restarted
write_config "${agents/cooldown_s: 600/cooldown_s: 900}"
MESHCTL reload || fail "reload with a changed agent refused"
for _ in $(seq 100); do
    p=$(agent pid); s=$(agent state)
    [ "$p" != "$pid1" ] && [ "$p" != 0 ] && [ "$s" = running ] && break; sleep 0.1
done
[ "$(agent pid)" != "$pid1" ] || fail "changed agent not restarted"

# 5. a daemon-level change is refused
sed -i 's/heartbeat_ms: 200/heartbeat_ms: 300/' "$T/meshd.yaml"
if out=$(MESHCTL reload 2>&1); then fail "a daemon change was applied by reload"; fi
echo "$out" | grep -q "restart meshd" || fail "no hint that meshd must be restarted"

stop_meshd
python3 - "$T/state/decisions.jsonl" "$h1" "$h2" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if '"type":"rules"' in l]
events = [(r["event"], r["rules_hash"]) for r in recs]
print(events)
assert ("start", sys.argv[2]) in events, "start rule set not recorded"
assert ("reload", sys.argv[3]) in events, "reloaded rule set not recorded"
PY
MESHCTL --log "$T/state/decisions.jsonl" audit verify
echo ok
