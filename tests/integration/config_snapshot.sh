#!/usr/bin/env bash
# Config snapshot: an agent runs the config meshd checked and recorded, and the rule set
# archived for it.  The config and a rule file are edited on disk without a reload, the
# agent is killed: its replacement runs the recorded config (same snapshot, same SHA-256)
# and the recorded rules hash.  Only a reload changes them; a refused reload names the
# position of what it refuses.  A snapshot changed behind meshd's back is refused by the
# agent.  Then meshd --check-config=FILE, and the StrictModes refusals it reports.
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
cp "$T/meshd.yaml" "$T/recorded.yaml"
start_meshd
agent() { status_json | jq_py "a=d['agents'][0]; print(a['$1'])"; }
arg() { tr '\0' '\n' < "/proc/$1/cmdline" | grep -A1 -x -- "$2" | tail -n 1; }
for _ in $(seq 50); do h1=$(agent rules_hash); [ "$h1" != None ] && break; sleep 0.1; done
pid1=$(agent pid)
snap=$(arg "$pid1" --snapshot); sha=$(arg "$pid1" --sha256)
note "running: pid $pid1, rules $h1, config $sha in $snap"
[ -n "$snap" ] && [ -n "$sha" ] || fail "the agent was not given a snapshot and its hash"
[ "$(arg "$pid1" --rules-sha256)" = "$h1" ] || fail "the agent was not given its rules hash"
cmp -s "$snap" "$T/recorded.yaml" || fail "the snapshot is not the config meshd loaded"
[ "$(sha256sum < "$snap" | cut -d' ' -f1)" = "$sha" ] || fail "the hash passed is not the snapshot's"
[ "$(stat -c %a "$snap")" = 600 ] || fail "the snapshot is not private (mode $(stat -c %a "$snap"))"
grep -q "\"config_sha256\": *\"$sha\"" "$T/state/decisions.jsonl" \
    || fail "the decision log does not record the config's hash"

# 1. edit the config and the rule on disk, no reload; kill the agent
sed -i 's/cooldown_s: 600/cooldown_s: 900/' "$T/meshd.yaml"
sed 's/0\.6/0.65/' rules/confidence_floor.lua > "$T/floor.lua"
kill -KILL "$pid1"
for _ in $(seq 200); do
    p=$(agent pid); s=$(agent state)
    [ "$p" != "$pid1" ] && [ "$p" != 0 ] && [ "$s" = running ] && break; sleep 0.1
done
pid2=$(agent pid)
[ "$pid2" != "$pid1" ] || fail "the agent did not come back"
for _ in $(seq 50); do h2=$(agent rules_hash); [ "$h2" != None ] && break; sleep 0.1; done
note "restarted: pid $pid2, rules $h2, config $(arg "$pid2" --sha256)"
[ "$h2" = "$h1" ] || fail "the restarted agent runs rules $h2, not the recorded $h1"
[ "$(arg "$pid2" --sha256)" = "$sha" ] || fail "the restarted agent was given another config"
[ "$(arg "$pid2" --snapshot)" = "$snap" ] || fail "the restarted agent was given another snapshot"

# 2. only a reload changes it
MESHCTL reload || fail "a valid reload was refused"
for _ in $(seq 200); do
    p=$(agent pid); s=$(agent state)
    [ "$p" != "$pid2" ] && [ "$p" != 0 ] && [ "$s" = running ] && break; sleep 0.1
done
pid3=$(agent pid)
for _ in $(seq 50); do h3=$(agent rules_hash); [ "$h3" != "$h1" ] && break; sleep 0.1; done
sha3=$(arg "$pid3" --sha256)
note "reloaded: pid $pid3, rules $h3, config $sha3"
[ "$sha3" != "$sha" ] || fail "the reload did not hand the agent the new config"
[ "$h3" != "$h1" ] || fail "the reload did not hand the agent the new rules"

# 2b. a refused reload names the position of what it refuses
sed -i 's/heartbeat_ms: 200/heartbeat_ms: 300/' "$T/meshd.yaml"
if out=$(MESHCTL reload 2>&1); then fail "a daemon change was applied by reload"; fi
echo "$out"
line=$(grep -n "^daemon:" "$T/meshd.yaml" | cut -d: -f1)
echo "$out" | grep -q "$T/meshd.yaml:$line:1: the 'daemon' section changed" \
    || fail "the refused reload does not name FILE:LINE:COL of the daemon section"
sed -i 's/heartbeat_ms: 300/heartbeat_ms: 200/' "$T/meshd.yaml"

# 3. a snapshot changed behind meshd's back: the agent refuses it (exit 78), never runs it
snap3=$(arg "$pid3" --snapshot)
echo "# changed" >> "$snap3"
kill -KILL "$pid3"
for _ in $(seq 100); do grep -q "it was changed, so it is not used" "$T/meshd.log" && break; sleep 0.1; done
grep -q "it was changed, so it is not used" "$T/meshd.log" || fail "a changed snapshot was not refused"
# The supervisor sees that life end with 78 before meshd is stopped (a stop while the
# agent is still exiting would end it with SIGTERM instead).
for _ in $(seq 100); do grep -q "agent watcher .*exit code 78" "$T/meshd.log" && break; sleep 0.1; done
grep -q "agent watcher .*exit code 78" "$T/meshd.log" || fail "the agent did not exit 78"
stop_meshd

# 4. --check-config=FILE, and what it refuses
"$BIN/meshd" --check-config="$T/meshd.yaml" || fail "--check-config=FILE refused a good config"
"$BIN/meshd" --check-config "$T/meshd.yaml" >/dev/null || fail "--check-config FILE refused it"
chmod 0664 "$T/floor.lua"
if out=$("$BIN/meshd" --check-config="$T/meshd.yaml" 2>&1); then
    fail "--check-config accepted a group-writable rule file"
fi
echo "$out"
line=$(grep -n "floor.lua" "$T/meshd.yaml" | head -n 1 | cut -d: -f1)
echo "$out" | grep -Eq "^$T/meshd.yaml:$line:[0-9]+: agents\[0\]\.rules\[0\]: .*floor.lua is writable by its group" \
    || fail "the refusal does not name FILE:LINE:COL of the rule"
chmod 0644 "$T/floor.lua"
chmod 0666 "$T/meshd.yaml"
if out=$("$BIN/meshd" --check-config="$T/meshd.yaml" 2>&1); then
    fail "--check-config accepted a world-writable config"
fi
echo "$out" | grep -q "^$T/meshd.yaml:1:1: the configuration cannot be trusted: .*writable by others" \
    || fail "the refusal of the config file does not say why"
echo ok
