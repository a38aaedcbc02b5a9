#!/usr/bin/env bash
# Only processes meshd spawned speak as an agent, and only as themselves.  A local
# process connects to agents.ipc with the routing ids the real agent uses ("ops",
# "ops/x", "ops/w0") and sends, without a token and with a wrong one: hellos, a forged
# decision, requests for pending decisions, messages in an old protocol version (which
# would get an authenticated agent killed), a 10,000-message flood, and a 5 MiB frame.
# The real agent is never killed or restarted, no forged record reaches the ledger, no
# request is answered, meshd's memory does not grow by the big frame, the drops are
# counted in status, and the log has a few lines, not 10,000.  Also: socket modes.
source "$(dirname "$0")/lib.sh"

write_config "  - name: ops
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    detector: { kind: ewma, alpha: 0.05, warmup: 30, threshold: 0.99 }
    reason: { backend: scripted, workers: 2 }
    actions: [scale_out, escalate]
    fallback: escalate"
start_meshd
EP="ipc://$T/run/agents.ipc"
SPOOF="$BIN/tests/spoof"

[ "$(stat -c %a "$T/run/agents.ipc")" = 600 ] || fail "agents.ipc mode $(stat -c %a "$T/run/agents.ipc"), want 600"
[ "$(stat -c %a "$T/run/control.ipc")" = 660 ] || fail "control.ipc mode $(stat -c %a "$T/run/control.ipc"), want 660"
[ "$(stat -c %a "$T/run")" = 750 ] || fail "runtime dir mode $(stat -c %a "$T/run"), want 750"

read -r pid0 restarts0 < <(status_json | jq_py 'a=d["agents"][0]; print(a["pid"], a["restarts"])')
[ "$pid0" -gt 0 ] || fail "no agent pid"
seq0=$(status_json | jq_py 'print(d["daemon"]["ledger_seq"])')
note "agent ops is pid $pid0; ledger at seq $seq0"

for id in ops ops/x ops/w0; do
    for mode in hello decision pending badauth badversion; do
        out=$("$SPOOF" "$EP" "$id" "$mode" 3) || fail "spoof $id $mode failed"
        note "$id $mode: $out"
        [ "$out" = "sent 3 replies 0" ] || fail "$id $mode: expected 3 sent and no reply, got '$out'"
    done
done

rss_kb() { awk '/^VmHWM/ {print $2}' "/proc/$MESHD/status"; }
before=$(rss_kb)
out=$("$SPOOF" "$EP" ops/big big $((5 * 1024 * 1024)))
[ "$out" = "sent 1 replies 0" ] || fail "big frame: $out"
sleep 0.5
after=$(rss_kb)
note "meshd peak RSS $before kB before the 5 MiB frame, $after kB after"
[ $((after - before)) -lt 2048 ] || fail "meshd's peak RSS grew by $((after - before)) kB for a 5 MiB frame"

lines_before=$(grep -c 'unauthenticated' "$T/meshd.log" || true)
t0=$(date +%s)
out=$("$SPOOF" "$EP" ops/x badversion 10000)
[ "$out" = "sent 10000 replies 0" ] || fail "flood: $out"
# every message of the flood is counted before we look
for _ in $(seq 100); do
    n=$(status_json | jq_py 'print(d["daemon"]["dropped"].get("unauthenticated",0))')
    [ "$n" -ge 10030 ] && break
    sleep 0.1
done
status_json > "$T/status.json"
jq_py 'print("dropped:", d["daemon"]["dropped"])' < "$T/status.json"
unauth=$(jq_py 'print(d["daemon"]["dropped"].get("unauthenticated",0))' < "$T/status.json")
badauth=$(jq_py 'print(d["daemon"]["dropped"].get("bad_auth",0))' < "$T/status.json")
# "ops" is the real agent's control socket, connected: ZeroMQ does not even read a second
# peer with that routing id.  "ops/x" and "ops/w0" (the real worker's is "ops/w0.<random>")
# are read and dropped: 2 ids x (3 hello + 3 decision + 3 pending + 3 hello after a bad AUTH
# + 3 old-version) + the 10,000 flood.
[ "$unauth" -ge 10030 ] || fail "unauthenticated drops counted: $unauth, want >= 10030"
[ "$badauth" -ge 6 ] || fail "bad AUTH counted: $badauth, want >= 6"
lines=$(grep -c 'unauthenticated' "$T/meshd.log" || true)
elapsed=$(( $(date +%s) - t0 ))
note "log lines about unauthenticated peers: $lines_before before the flood, $lines after (${elapsed}s)"
# one first line, then at most one summary per 10 s
[ "$lines" -le $((lines_before + 1 + elapsed / 10 + 1)) ] || fail "$lines log lines for a 10,000-message flood"
[ "$(grep -c 'bad_auth' "$T/meshd.log" || true)" -le 3 ] || fail "bad AUTH logged more than rate-limited"

read -r pid1 restarts1 state1 < <(status_json | jq_py 'a=d["agents"][0]; print(a["pid"], a["restarts"], a["state"])')
[ "$pid1" = "$pid0" ] || fail "the real agent was replaced (pid $pid0 -> $pid1)"
[ "$restarts1" = "$restarts0" ] || fail "the real agent was restarted ($restarts0 -> $restarts1)"
[ "$state1" = running ] || fail "the real agent is $state1"
kill -0 "$pid0" || fail "the real agent is gone"
grep -q 'sent an invalid message' "$T/meshd.log" && fail "someone was punished"

stop_meshd
if grep -q ffffffffffffffff "$T/state/decisions.jsonl" || grep -q '"forged"' "$T/state/decisions.jsonl"; then
    fail "a forged record reached the ledger"
fi
MESHCTL --log "$T/state/decisions.jsonl" audit verify
echo ok
