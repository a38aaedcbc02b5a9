#!/usr/bin/env bash
# meshctl's command line as a newcomer meets it (meshctl(1)): a verdict that does not
# exist is refused with the list; --since/--until take RFC 3339 (offsets, fractions), now,
# a duration ago, @EPOCH and epoch seconds from 10^9, and refuse the rest ("2026" is no
# time); summary with meshd down shows the log's figures and n/a for the live ones, exit
# 3; --help on stdout with 0 and usage errors on stderr with 64, for meshctl, meshd and
# mesh-agent; --version for all three; every error line starts "meshctl: "; silence add
# says when it applies, with and without a meshd running.
source "$(dirname "$0")/lib.sh"

# A hand-written log: five decisions, one each side of 2026-12-05T07:44:26Z, one at it,
# one an hour ago and one three hours ago.
python3 - "$T/decisions.jsonl" <<'PY'
import json, sys, time, calendar
t0 = calendar.timegm((2026, 12, 5, 7, 44, 26)) * 1000
now = int(time.time() * 1000)
recs = [(1, t0 - 1000, "accepted"), (2, t0, "rejected"), (3, t0 + 500, "shed"),
        (4, now - 3600 * 1000, "model_failed"), (5, now - 3 * 3600 * 1000, "budget_exhausted")]
with open(sys.argv[1], "w") as f:
    for n, ts, verdict in recs:
        f.write(json.dumps({"type": "decision", "id": "%064x" % n, "agent": "ops", "ts": ts,
                            "verdict": verdict, "fallback": False, "tokens": 10,
                            "attempts": []}) + "\n")
PY
L=(--config "$T/none.yaml" --log "$T/decisions.jsonl")
# ids listed (the last hex digit of each) for the filter ARGS
ids() { "$BIN/meshctl" "${L[@]}" --json audit list "$@" | jq_py 'print(" ".join(r["id"][-1] for r in d))'; }
# RC STDOUT_FILE STDERR_FILE: run ARGS...
run() { local rc=0; "$@" > "$T/out" 2> "$T/err" || rc=$?; echo "$rc"; }

# 1. --verdict
rc=$(run "$BIN/meshctl" "${L[@]}" audit list --verdict bogus)
[ "$rc" = 64 ] || fail "--verdict bogus exited $rc, not 64"
[ ! -s "$T/out" ] || fail "--verdict bogus printed a listing"
grep -q "^meshctl: --verdict 'bogus' is not a verdict; one of: accepted rejected model_failed budget_exhausted shed$" "$T/err" \
    || { cat "$T/err"; fail "no list of verdicts"; }
[ "$(ids --verdict shed)" = 3 ] || fail "--verdict shed"
note "--verdict bogus: 64 with the list"

# 2. --since / --until
[ "$(ids --since 2026-12-05T07:44:26Z --until 2026-12-05T07:44:27Z)" = "2 3" ] || fail "RFC 3339 Z: $(ids --since 2026-12-05T07:44:26Z --until 2026-12-05T07:44:27Z)"
[ "$(ids --since 2026-12-05T08:44:26+01:00 --until 2026-12-05T02:44:27-05:00)" = "2 3" ] || fail "RFC 3339 offsets"
[ "$(ids --since 2026-12-05T07:44:26.250Z --until 2026-12-05T07:44:26.6Z)" = 3 ] || fail "fractional seconds"
[ "$(ids --since 2026-12-05T07:44:25.000Z --until 2026-12-05T07:44:26Z)" = 1 ] || fail "--until is exclusive"
t0=$(python3 -c 'import calendar; print(calendar.timegm((2026, 12, 5, 7, 44, 26)))')
[ "$(ids --since "$t0" --until @$((t0 + 1)))" = "2 3" ] || fail "epoch seconds, @epoch"
[ "$(ids --since 2h)" = 4 ] || fail "--since 2h: $(ids --since 2h)"
[ "$(ids --since -4h --until 2h)" = 5 ] || fail "--since -4h --until 2h"
[ "$(ids --since 1d --until now)" = "4 5" ] || fail "--since 1d --until now"
for bad in 2026 1733384666x 0x7fffffff 1e10 @-5 yesterday 2026-12-05 "2026-12-05T07:44:26" 2026-13-05T07:44:26Z 2h30 ""; do
    rc=$(run "$BIN/meshctl" "${L[@]}" audit list --since "$bad")
    [ "$rc" = 64 ] || fail "--since '$bad' exited $rc, not 64"
    grep -q "^meshctl: --since '$bad' is not a time: use RFC 3339" "$T/err" || { cat "$T/err"; fail "no reason for '$bad'"; }
done
rc=$(run "$BIN/meshctl" "${L[@]}" audit stats --until 2026)
[ "$rc" = 64 ] || fail "audit stats --until 2026 exited $rc"
note "--since/--until: RFC 3339, offsets, fractions, epoch, durations; 2026 refused"

# 3. one error prefix: a library's complaint reads like meshctl's own
rc=$(run "$BIN/meshctl" "${L[@]}" audit stats --since 2026-12-05T07:44:27Z --until 2026-12-05T07:44:26Z)
[ "$rc" != 0 ] || fail "audit stats with --until before --since succeeded"
cat "$T/err"
grep -q '^meshctl: audit stats: --until must be later than --since' "$T/err" || fail "stats error not prefixed 'meshctl: '"
grep -v '^meshctl: ' "$T/err" && fail "an error line without the prefix"

# 4. --help, usage errors, --version
for prog in meshctl meshd mesh-agent; do
    rc=$(run "$BIN/$prog" --help)
    [ "$rc" = 0 ] || fail "$prog --help exited $rc"
    grep -q "^usage: $prog" "$T/out" || fail "$prog --help: no usage on stdout"
    [ ! -s "$T/err" ] || fail "$prog --help wrote to stderr"
    rc=$(run "$BIN/$prog" --no-such-option)
    [ "$rc" = 64 ] || fail "$prog --no-such-option exited $rc, not 64"
    [ ! -s "$T/out" ] || fail "$prog: usage error on stdout"
    grep -q "usage: $prog" "$T/err" || fail "$prog: no usage on stderr"
    rc=$(run "$BIN/$prog" --version)
    [ "$rc" = 0 ] || fail "$prog --version exited $rc"
    cat "$T/out"
    grep -Eq "^$prog $(cat VERSION) \(commit ([0-9a-f]{7}(-dirty)?|unknown), built [0-9]{4}-[0-9]{2}-[0-9]{2}, librdkafka [0-9.]+, Lua 5\.4\.[0-9]+, libsodium [0-9.]+" "$T/out" \
        || fail "$prog --version: $(cat "$T/out")"
done
rc=$(run "$BIN/meshctl" silence --help)
[ "$rc" = 0 ] && grep -q "^usage: meshctl .* silence COMMAND" "$T/out" && [ ! -s "$T/err" ] || fail "meshctl silence --help: $rc"
rc=$(run "$BIN/meshctl" no-such-command)
[ "$rc" = 64 ] && [ ! -s "$T/out" ] && grep -q "^usage: meshctl" "$T/err" || fail "unknown command: $rc"
rc=$(run "$BIN/meshd" --log syslog --check-config "$T/none.yaml")
[ "$rc" = 64 ] && grep -q "^meshd: --log 'syslog': expected auto, journal or stderr" "$T/err" || fail "meshd --log syslog: $rc"
note "--help: stdout, 0; usage errors: stderr, 64; --version on all three"

# 5. summary with meshd down: the log's figures, live ones n/a, exit 3
agents="  - name: ops
    topics: [metrics]
    fields: { key: [host], value: value, time: ts }
    reason: { backend: scripted }
    actions: [scale_out, escalate]
    fallback: escalate"
write_config "$agents"
rc=$(run "$BIN/meshctl" --config "$T/meshd.yaml" --log "$T/decisions.jsonl" summary)
cat "$T/out"
[ "$rc" = 3 ] || fail "summary with meshd down exited $rc, not 3"
grep -q "^meshd summary (meshd not running: live counters n/a" "$T/out" || fail "summary does not say meshd is down"
grep -q "^  events consumed          n/a$" "$T/out" || fail "events not n/a"
grep -q "^  agent restarts           n/a$" "$T/out" || fail "restarts not n/a"
grep -Eq "^  (events consumed|anomalies|incidents|reasoning loops|agent restarts) +0" "$T/out" && fail "a live figure printed as 0"
grep -q "^  decisions                5:" "$T/out" || fail "the log's decisions missing"
grep -q "^meshctl: meshd is not answering" "$T/err" || fail "no word that meshd is not answering"
rc=$(run "$BIN/meshctl" --config "$T/meshd.yaml" --log "$T/decisions.jsonl" --json summary)
[ "$rc" = 3 ] || fail "summary --json with meshd down exited $rc"
jq_py 'assert d["events"] is None and d["restarts"] is None and d["meshd"] == "not running", d
assert d["decisions"]["total"] == 5' < "$T/out"
note "summary, meshd down: n/a and exit 3"

# 6. silence add: stored for later when no meshd runs, followed when one does
mkdir -m 0750 -p "$T/state"
rc=$(run "$BIN/meshctl" --config "$T/meshd.yaml" silence add --match host=a --for 1h)
[ "$rc" = 0 ] || fail "silence add exited $rc: $(cat "$T/err")"
cat "$T/out"
grep -q "meshd is not running, it applies when meshd starts" "$T/out" || fail "silence add without meshd"
grep -q "agents follow" "$T/out" && fail "silence add promised agents without meshd"
start_meshd
rc=$(run "$BIN/meshctl" --config "$T/meshd.yaml" silence add --match host=b --for 1h)
cat "$T/out"
grep -q "agents follow it within a second" "$T/out" || fail "silence add with meshd running"
rc=$(run "$BIN/meshctl" --config "$T/meshd.yaml" summary)
[ "$rc" = 0 ] || fail "summary with meshd up exited $rc"
grep -q "^  events consumed          0 " "$T/out" || fail "live summary: $(cat "$T/out")"
stop_meshd
echo ok
