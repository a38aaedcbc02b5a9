#!/usr/bin/env bash
# meshd never acts on a decision log that fails verification: a decision appended with a
# valid chain and head but no MAC (scale database to 10), or an altered complete last
# record, makes meshd exit 65 with a multi-line error and leaves the log and head byte
# for byte as they were; `meshd --set-aside-log` moves them aside intact and starts a
# new log, and meshd then starts on it without carrying out the forged decision.
source "$(dirname "$0")/lib.sh"

write_config "  - name: victim
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    detector: { kind: ewma, alpha: 0.05, warmup: 30, threshold: 0.99 }
    reason: { backend: scripted }
    actions: [scale_out, escalate]
    fallback: escalate"
LOG=$T/state/decisions.jsonl
start_meshd
stop_meshd
MESHCTL audit verify > "$T/v.txt" || fail "a fresh log does not verify"
grep -q "mac: not checked (key not given)" "$T/v.txt" || fail "verify without key: $(cat "$T/v.txt")"
MESHCTL audit verify --key "$T/state/ledger.key" > "$T/v.txt" || fail "verify --key fails"
grep -q "mac: verified for every record" "$T/v.txt" || fail "verify --key: $(cat "$T/v.txt")"
[ "$(stat -c %a "$T/state/ledger.key")" = 600 ] || fail "ledger.key is not 0600"

# Start meshd on the log as it is now; expect exit 65 and nothing changed.
expect_refusal() {  # what
    local before after rc=0
    before=$(cat "$LOG" "$LOG.head" | sha256sum)
    timeout 30 "$BIN/meshd" --config "$T/meshd.yaml" 2> "$T/refused.log" || rc=$?
    [ "$rc" = 65 ] || { cat "$T/refused.log"; fail "meshd exited $rc, not 65, after: $1"; }
    check_log "$T/refused.log"
    grep -q "fails verification" "$T/refused.log" || fail "no 'fails verification' ($1)"
    grep -q "meshd --set-aside-log --config" "$T/refused.log" || fail "no way out named ($1)"
    grep -q "meshctl --config .* audit verify" "$T/refused.log" || fail "no inspect step ($1)"
    after=$(cat "$LOG" "$LOG.head" | sha256sum)
    [ "$before" = "$after" ] || fail "the log or head changed after a refusal ($1)"
    if MESHCTL audit verify --key "$T/state/ledger.key" > "$T/v.txt"; then
        fail "verify --key passed after: $1"
    fi
    note "$1 -> exit 65; $(grep -m1 'record seq' "$T/refused.log" | sed 's/^<[0-9]>//')"
}

# 1. A forged decision appended with a valid chain and head, without a MAC.
python3 - "$LOG" <<'PY'
import hashlib, json, sys
path = sys.argv[1]
lines = open(path, 'rb').read().splitlines()
last = json.loads(lines[-1])
rec = {"seq": last["seq"] + 1, "prev": last["hash"], "ts": last["ts"] + 1, "type": "decision",
       "id": "f" * 64, "agent": "victim", "verdict": "accepted",
       "action": {"name": "scale_out", "kind": "kafka",
                  "params": {"service": "database", "replicas": 10}}}
body = json.dumps(rec, separators=(",", ":"))[:-1]
h = hashlib.sha256(body.encode()).hexdigest()
open(path, 'ab').write((body + ',"hash":"%s"}\n' % h).encode())
open(path + '.head', 'w').write('{"seq":%d,"hash":"%s"}\n' % (rec["seq"], h))
PY
MESHCTL audit verify > /dev/null || fail "the forged line should pass a check without the key"
expect_refusal "a decision appended without a MAC"
cp "$LOG" "$T/forged.jsonl"

# 2. Set aside: moved intact, a new log that names it, and meshd starts on it.
"$BIN/meshd" --set-aside-log --config "$T/meshd.yaml" 2> "$T/aside.log" || { cat "$T/aside.log"; fail "set-aside failed"; }
check_log "$T/aside.log"
moved=$(ls "$LOG".set-aside-* | grep -v '\.head$' | head -1)
cmp "$moved" "$T/forged.jsonl" || fail "the set-aside log is not the log byte for byte"
[ -f "$moved.head" ] || fail "the head was not moved with the log"
python3 - "$LOG" "$moved" <<'PY'
import json, sys
first = json.loads(open(sys.argv[1]).readline())
assert first["event"] == "set_aside" and first["moved_to"] == sys.argv[2], first
assert "MAC" in first["reason"] or "mac" in first["reason"], first
print("new log starts with", first["event"], "last verified seq", first["last_verified_seq"])
PY
"$BIN/meshd" --set-aside-log --config "$T/meshd.yaml" 2> /dev/null && fail "set-aside of a log that verifies succeeded"
start_meshd
[ "$(status_json | jq_py 'print(d["agents"][0]["counters"].get("recovered",0))')" = 0 ] || fail "something was recovered"
stop_meshd
grep -q '"replicas":10' "$LOG" && fail "the forged decision reached the new log"

# 3. A complete last record altered (a digit of its ts changed, the line kept whole).
python3 - "$LOG" <<'PY'
import sys
path = sys.argv[1]
lines = open(path, 'rb').read().split(b'\n')
assert lines[-1] == b'' and len(lines) > 2
last = bytearray(lines[-2]); i = last.index(b'"ts":') + 6
last[i] = ord('1') if last[i] != ord('1') else ord('2')
lines[-2] = bytes(last); open(path, 'wb').write(b'\n'.join(lines))
PY
expect_refusal "the complete last record altered"
echo ok
