#!/usr/bin/env bash
# `meshctl summary` offline on a hand-written decision log: the per-backend table (calls,
# accepted, acceptance rate, tokens, latency p50/p99 from the attempts), and for the
# decisions with a "cascade": escalations by cause and the estimated saving against sending
# everything to the last backend; "n/a" when no decision reached the last backend.  No
# meshd runs: the summary's counters need it, these figures come from the log alone.
source "$(dirname "$0")/lib.sh"

# Two logs: the cascade [small, big] of agent "ops" and a one-backend agent; then a
# cascade whose decisions all stopped at the first backend.
python3 - "$T/decisions.jsonl" "$T/early.jsonl" <<'PY'
import json, sys

def attempt(step, backend, charged, latency, accepted, escalated=None):
    a = {"step": step, "backend": backend, "tier": 0, "charged": charged,
         "latency_ms": latency, "ttft_ms": None, "accepted": accepted,
         "error": None if accepted else "rule_reject"}
    if escalated:
        a["escalated"] = escalated
    return a

def decision(n, agent, attempts, cascade=None):
    d = {"type": "decision", "id": "%064x" % n, "agent": agent, "attempts": attempts,
         "verdict": "accepted" if any(a["accepted"] for a in attempts) else "rejected",
         "fallback": False, "tokens": sum(a.get("charged", 0) for a in attempts)}
    if cascade is not None:
        d["cascade"] = cascade
    return d

def cascade(escalations, final):
    return {"backends": ["small", "big"], "final": final,
            "escalations": [{"step": s, "from": f, "to": t, "cause": c}
                            for s, f, t, c in escalations]}

decs = [
    # Accepted at the first backend: no escalation.
    decision(1, "ops", [attempt(1, "small", 100, 50, True)], cascade([], "small")),
    # Refused at small, accepted at big.
    decision(2, "ops", [attempt(1, "small", 120, 70, False, "rule_reject"),
                        attempt(2, "big", 400, 900, True)],
             cascade([(1, "small", "big", "rule_reject")], "big")),
    # small's circuit open: straight to big, which needs two steps.
    decision(3, "ops", [attempt(1, "big", 600, 1100, False), attempt(2, "big", 500, 1000, True)],
             cascade([(1, "small", "big", "circuit_open")], "big")),
    # small not sure: big decides.
    decision(4, "ops", [attempt(1, "small", 80, 30, False, "low_confidence"),
                        attempt(2, "big", 300, 700, True)],
             cascade([(1, "small", "big", "low_confidence")], "big")),
    # An agent with one backend: no cascade.
    decision(5, "solo", [attempt(1, "scripted", 50, 5, True)]),
]
# A record from before attempts named their backend: in no backend's row.
old = decision(6, "solo", [attempt(1, "x", 10, 1, True)])
del old["attempts"][0]["backend"]
decs.append(old)
with open(sys.argv[1], "w") as f:
    for d in decs:
        f.write(json.dumps(d) + "\n")
        f.write(json.dumps({"type": "outcome", "id": d["id"], "agent": d["agent"],
                            "status": "done"}) + "\n")
# Every cascade decision stopped at the first backend: no saving can be estimated.
with open(sys.argv[2], "w") as f:
    f.write(json.dumps(decision(7, "ops", [attempt(1, "small", 90, 40, True)],
                                cascade([], "small"))) + "\n")
PY

# No config and no meshd: the counters are missing, the log's figures are not; meshctl
# says so with its exit status 3 (meshd not reachable), which is what SUMMARY expects.
SUMMARY() {
    local rc=0
    "$BIN/meshctl" --config "$T/none.yaml" --log "$1" "${@:2}" summary 2> "$T/stderr" || rc=$?
    [ "$rc" = 3 ] || { echo "summary exited $rc, not 3 (meshd down)" >&2; return 1; }
}

SUMMARY "$T/decisions.jsonl" > "$T/summary.txt" || fail "summary failed: $(cat "$T/stderr")"
cat "$T/summary.txt"
expect() { grep -qF -- "$1" "$T/summary.txt" || fail "summary lacks: $1"; }
expect "  per backend                 calls accepted    rate     tokens  latency p50/p99 ms"
expect "    small                         3        1   33.3%        300  50/70"
expect "    big                           4        3   75.0%       1800  900/1100"
expect "    scripted                      1        1  100.0%         50  5/5"
expect "  cascade                  4 decisions, 3 escalations: rule_reject 1, circuit_open 1, low_confidence 1"
# Estimate: 4 decisions x (1800 tokens at big / 3 decisions that reached it) = 2400;
# spent 100 + 520 + 1100 + 380 = 2100; saving 1 - 2100/2400 = 12.5 %.
expect "  cascade saving           12.5% (an estimate: 2100 tokens spent against ~2400 had every decision gone to the last backend; the measured figure is the bench's)"
grep -q "last backend small\|last backend big" "$T/summary.txt" && fail "one last backend: no per-group lines"

SUMMARY "$T/decisions.jsonl" --json > "$T/summary.json" || fail "summary --json failed"
jq_py '
b = d["backends"]
assert set(b) == {"small", "big", "scripted"}, b
assert b["small"] == {"calls": 3, "accepted": 1, "acceptance_rate": 1/3, "tokens": 300,
                      "latency_ms": {"p50": 50, "p99": 70}}, b["small"]
assert b["big"]["calls"] == 4 and b["big"]["accepted"] == 3 and b["big"]["tokens"] == 1800
assert b["big"]["acceptance_rate"] == 0.75 and b["big"]["latency_ms"] == {"p50": 900, "p99": 1100}
c = d["cascade"]
print(c)
assert c["decisions"] == 4 and c["tokens"] == 2100 and c["counted_tokens"] == 2100
assert c["escalations"] == {"rule_reject": 1, "circuit_open": 1, "low_confidence": 1}
assert c["reached_last"] == 3 and c["estimate_all_last_tokens"] == 2400
assert abs(c["estimated_saving"] - 0.125) < 1e-9
g = c["by_last"]["big"]
assert g["decisions"] == 4 and g["reached_last"] == 3 and g["last_tokens"] == 1800
assert d["economics"]["calls"] == 9, d["economics"]' < "$T/summary.json"

SUMMARY "$T/early.jsonl" > "$T/summary.txt" || fail "summary failed on the early log"
cat "$T/summary.txt"
expect "  cascade                  1 decision, 0 escalations"
expect "  cascade saving           n/a (no decision reached the last backend)"
SUMMARY "$T/early.jsonl" --json | jq_py '
c = d["cascade"]
assert c["reached_last"] == 0 and c["estimate_all_last_tokens"] is None
assert c["estimated_saving"] is None, c'

# Two cascades ending at different backends: each group is estimated at its own last
# backend; a group in which no decision reached it is left out of the total.
python3 - "$T/two.jsonl" <<'PY'
import json, sys
def dec(n, backends, attempts):
    return {"type": "decision", "id": "%064x" % n, "agent": "a%d" % n, "verdict": "accepted",
            "tokens": sum(c for _, c in attempts),
            "attempts": [{"step": i + 1, "backend": b, "charged": c, "latency_ms": 10,
                          "accepted": i == len(attempts) - 1} for i, (b, c) in enumerate(attempts)],
            "cascade": {"backends": backends, "escalations": [], "final": attempts[-1][0]}}
with open(sys.argv[1], "w") as f:
    for d in [dec(1, ["small", "big"], [("small", 100)]),
              dec(2, ["small", "big"], [("small", 50), ("big", 450)]),
              dec(3, ["tiny", "huge"], [("tiny", 20)])]:
        f.write(json.dumps(d) + "\n")
PY
SUMMARY "$T/two.jsonl" > "$T/summary.txt" || fail "summary failed on two cascades"
cat "$T/summary.txt"
# big: 2 decisions x 450 = 900 against 600 spent: 33.3 %; huge: not reached, not counted.
expect "  cascade saving           33.3% (an estimate: 600 tokens spent against ~900 had every decision gone to the last backend; the measured figure is the bench's)"
expect "    last backend big         2 decision(s), 1 reached it, saving 33.3% estimated"
expect "    last backend huge        1 decision(s), 0 reached it, saving n/a (not counted)"
SUMMARY "$T/two.jsonl" --json | jq_py '
c = d["cascade"]
assert c["decisions"] == 3 and c["tokens"] == 620 and c["counted_tokens"] == 600, c
assert c["by_last"]["huge"]["estimate_all_last_tokens"] is None, c'

# A log without cascades: the table, no cascade lines, "cascade": null.
head -n 1 "$T/decisions.jsonl" | python3 -c '
import json, sys
d = json.loads(sys.stdin.read()); del d["cascade"]; print(json.dumps(d))' > "$T/plain.jsonl"
SUMMARY "$T/plain.jsonl" > "$T/summary.txt" || fail "summary failed on the plain log"
expect "    small                         1        1  100.0%        100  50/50"
grep -q "cascade" "$T/summary.txt" && fail "cascade lines without a cascade"
SUMMARY "$T/plain.jsonl" --json | jq_py 'assert d["cascade"] is None'
echo ok
