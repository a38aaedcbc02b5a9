#!/usr/bin/env bash
# The cascade bench: what a cascade of a small and a large model saves against the large
# model alone, at equal acceptance, measured on the same events (docs/performance.md,
# "Cascade"; FrugalGPT and RouteLLM measure LLM cascades and routers the same way).
#
#   bench/cascade.sh                    (make bench BENCH=cascade)
#   SEEDS="42 7 1234" bench/cascade.sh  the stream seeds, one meshd run each (default: the
#                                       demo's 42, 1234 and 1 to 18: 20 runs of 5-10 s; a
#                                       seed gives only 7-36 decisions per agent)
#   CASCADE_CONFIG=FILE bench/cascade.sh   another config of the same shape (state in
#                                       build/cascade, agents "single" and "cascade")
#
# Per seed: meshd starts with bench/cascade.yaml: embedded broker with one partition,
# two acting agents reading the same topic in their own consumer groups, identical but
# for their backends: "single" sends every step to the large model (reason.backends:
# [large]), "cascade" to the small one first (backends: [small, large], escalate_below
# 0.7).  Both backends are scripted: bench/cascade-large.jsonl (about 90 % of its
# proposals pass the demo's gates) and bench/cascade-small.jsonl (about 50 %, some of
# them with a confidence below 0.7); their headers say what each line is.  mesh-gen
# produces the demo's stream (tools/demo.sh: --points 720 --malformed 6, the default 4
# hosts x 3 metrics) at most CASCADE_RATE (10,000) messages a second; once both agents
# have handled every message (counted, lag 0, nothing in flight), `meshctl summary` is
# asked for its estimate, meshd is stopped and the log verified.  CASCADE_LIMIT_S (240)
# bounds each run.
#
# What it prints, from the decision log: a line per seed (decisions, acceptance, tokens,
# tokens to the large model, the savings and summary's estimate), then for all seeds
# together:
#   per agent           decisions, accepted (verdict accepted; the others took the
#                       fallback), acceptance rate, tokens (the decisions' `tokens`, the
#                       sum of their attempts' `charged`), tokens per (accepted)
#                       decision; per backend: calls (of which the gates accepted; for
#                       the small one including those escalated for low confidence),
#                       tokens, prompt and completion tokens per call
#   cascade             where its accepted decisions were decided (small / large), and
#                       its escalations by cause (`cascade.escalations`)
#   savings             cascade against single: (a) tokens sent to the large model, the
#                       scarce budget; (b) all tokens; (c) cost, with a large model's token
#                       priced k times a small one's (k = 10, an assumption; also k = 3),
#                       and the k from which the cascade costs less.  Negative: a cost.
#   meshctl summary     its *estimated* saving for the cascade agent, on the same log.
#                       summary reads the whole log (it selects no agent), but its
#                       cascade figure counts only decisions with a "cascade" object,
#                       which are the cascade agent's: the figure to set beside (b).
# Both agents' incidents must be the same (series and event time of each decision's
# trigger); a difference is reported, as is an acceptance gap of more than 2 points.
# Exit 1 if a stream was not fully handled, meshctl status did not answer, meshd did not
# exit cleanly or the log does not verify.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-build}
CONFIG=${CASCADE_CONFIG:-bench/cascade.yaml}
DIR=build/cascade
SEEDS=${SEEDS:-42 1234 $(seq -s " " 1 18)}
LIMIT_S=${CASCADE_LIMIT_S:-240}
RATE=${CASCADE_RATE:-10000}
GEN_ARGS=(--points "${CASCADE_POINTS:-720}" --malformed 6)
MESHCTL=("$B/meshctl" --config "$CONFIG")

pid=
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT
fail() { echo "cascade: FAILED: $*" >&2; exit 1; }
status_json() { "${MESHCTL[@]}" --json status 2>/dev/null || true; }
jq_py() { python3 -c "import json,sys; d=json.load(sys.stdin); $1" 2>/dev/null || true; }

"$B/meshd" --check-config "$CONFIG" > /dev/null
echo "stream: mesh-gen ${GEN_ARGS[*]} --rate $RATE --seed S (S in: $SEEDS)"
results=()
for seed in $SEEDS; do
    rm -rf "$DIR"
    mkdir -p "$DIR"
    start=$(date +%s)
    "$B/meshd" --config "$CONFIG" 2> "$DIR/meshd.log" &
    pid=$!
    for _ in $(seq 100); do
        [ "$(status_json | jq_py 'print(d["daemon"]["ready"])')" = "True" ] && break
        kill -0 "$pid" 2>/dev/null || { tail -20 "$DIR/meshd.log" >&2; fail "meshd exited during start"; }
        sleep 0.2
    done
    [ "$(status_json | jq_py 'print(d["daemon"]["ready"])')" = "True" ] || fail "meshd not ready in 20 s"
    "$B/mesh-gen" --brokers "$(cat "$DIR/run/brokers")" --topic metrics "${GEN_ARGS[@]}" \
        --rate "$RATE" --seed "$seed" --labels "$DIR/labels.json" 2> "$DIR/gen.log" \
        || { cat "$DIR/gen.log" >&2; fail "mesh-gen failed"; }
    expected=$(python3 -c "import json; d=json.load(open('$DIR/labels.json')); print(d['events']+d.get('malformed',0))")
    # Handled: every agent counted every message, lag 0, nothing in flight.  Short of the
    # stream with nothing moving for 10 s means the broker dropped messages before they
    # were read (its log per partition is bounded): not handled.
    handled=no; seen=-1; still=$(date +%s)
    while :; do
        now=$(status_json | jq_py "
ags = d['agents']
n = [a['counters'].get('events', 0) + a['counters'].get('malformed', 0) for a in ags]
idle = len(ags) == 2 and all(a['state'] == 'running' and a['counters'].get('lag', -1) == 0
                             and a['counters'].get('inflight', 1) == 0 for a in ags)
print('yes' if idle and min(n) >= $expected else 'no', sum(n), 'idle' if idle else 'busy')")
        set -- $now
        handled=${1:-no}
        [ "$handled" = yes ] && break
        if [ "${2:-0}" != "$seen" ] || [ "${3:-}" != idle ]; then seen=${2:-0}; still=$(date +%s); fi
        [ $(( $(date +%s) - still )) -lt 10 ] || break
        [ $(( $(date +%s) - start )) -lt "$LIMIT_S" ] || break
        sleep 0.5
    done
    # The final figures; meshd's control socket may be slow to answer on a busy host.
    for _ in $(seq 20); do
        status_json > "$DIR/status.json"
        [ "$(jq_py 'print(len(d["agents"]))' < "$DIR/status.json")" = 2 ] && break
        sleep 0.5
    done
    for _ in $(seq 20); do
        "${MESHCTL[@]}" --json summary > "$DIR/summary.json" 2> /dev/null \
            && [ "$(jq_py 'print("cascade" in d)' < "$DIR/summary.json")" = True ] && break
        sleep 0.5
    done
    [ "$(jq_py 'print(len(d["agents"]))' < "$DIR/status.json")" = 2 ] \
        || fail "meshctl status did not answer after the stream (seed $seed)"
    [ "$(jq_py 'print("cascade" in d)' < "$DIR/summary.json")" = True ] || echo '{}' > "$DIR/summary.json"
    kill -TERM "$pid"
    wait "$pid" && rc=0 || rc=$?
    pid=
    [ "$rc" = 0 ] || { tail -20 "$DIR/meshd.log" >&2; fail "meshd exited with $rc"; }
    "${MESHCTL[@]}" audit verify > /dev/null || fail "the decision log does not verify"
    out=$(python3 - "$DIR" "$seed" "$handled" "$(( $(date +%s) - start ))" <<'PY'
import json, sys
d, seed, handled, wall = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "yes", int(sys.argv[4])
labels = json.load(open(f"{d}/labels.json"))
status = json.load(open(f"{d}/status.json"))
summary = json.load(open(f"{d}/summary.json"))
expected = labels["events"] + labels.get("malformed", 0)
agents = {}
for a in status.get("agents", []):
    c = a["counters"]
    agents[a["name"]] = dict(events=c.get("events", 0) + c.get("malformed", 0),
                             status_tokens=c.get("tokens", 0), decisions=0, accepted=0,
                             verdicts={}, tokens=0, backends={}, escalations={},
                             accepted_at={}, incidents=[])
for line in open(f"{d}/state/decisions.jsonl"):
    r = json.loads(line)
    if r.get("type") != "decision" or r.get("agent") not in agents:
        continue
    a = agents[r["agent"]]
    a["decisions"] += 1
    a["verdicts"][r["verdict"]] = a["verdicts"].get(r["verdict"], 0) + 1
    a["tokens"] += r.get("tokens") or 0
    inc = r.get("incident") or {}
    a["incidents"].append([inc.get("series"), inc.get("ts_ms")])
    attempts = r.get("attempts") or []
    for t in attempts:
        b = a["backends"].setdefault(t.get("backend") or "?",
                                     dict(calls=0, tokens=0, prompt=0, completion=0, passed=0))
        b["calls"] += 1
        b["tokens"] += t.get("charged") or 0
        b["prompt"] += t.get("prompt_tokens") or 0
        b["completion"] += t.get("completion_tokens") or 0
        # Passed the gates: accepted, or accepted by them and escalated for low confidence.
        b["passed"] += bool(t.get("accepted")) or t.get("escalated") == "low_confidence"
    if r["verdict"] == "accepted":
        a["accepted"] += 1
        last = attempts[-1].get("backend") if attempts else "?"
        a["accepted_at"][last] = a["accepted_at"].get(last, 0) + 1
    for e in (r.get("cascade") or {}).get("escalations") or []:
        a["escalations"][e.get("cause")] = a["escalations"].get(e.get("cause"), 0) + 1
est = summary.get("cascade") if isinstance(summary.get("cascade"), dict) else {}
res = dict(seed=seed, handled=handled, wall=wall, expected=expected, agents=agents,
           estimate=dict(saving=est.get("estimated_saving"), tokens=est.get("counted_tokens"),
                         all_last=est.get("estimate_all_last_tokens"),
                         decisions=est.get("decisions")))
s, c = agents.get("single", {}), agents.get("cascade", {})
print(f"seed {seed}: {s.get('decisions')} / {c.get('decisions')} decisions (single / cascade), "
      f"{s.get('tokens')} / {c.get('tokens')} tokens, {wall} s", file=sys.stderr)
print(json.dumps(res))
PY
)
    results+=("$out")
done

python3 - "${results[@]}" <<'PY'
import json, sys
rs = [json.loads(a) for a in sys.argv[1:]]
NAMES = ("single", "cascade")
BACKENDS = ("small", "large")

def add(dst, src):
    for k, v in src.items():
        if isinstance(v, dict):
            add(dst.setdefault(k, {}), v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            dst[k] = dst.get(k, 0) + v
total = dict(seed="all", agents={}, estimate=dict(tokens=0, all_last=0, decisions=0))
for r in rs:
    for n in NAMES:
        a = r["agents"].get(n, {})
        add(total["agents"].setdefault(n, {}), {k: v for k, v in a.items() if k != "incidents"})
    e = r["estimate"]
    if e["saving"] is not None:
        for k in ("tokens", "all_last", "decisions"):
            total["estimate"][k] += e[k] or 0
e = total["estimate"]
e["saving"] = 1 - e["tokens"] / e["all_last"] if e["all_last"] else None

def ag(r, n):
    return r["agents"].get(n, {})
def be(r, n, b):
    return ag(r, n).get("backends", {}).get(b, {})
def rate(r, n):
    a = ag(r, n)
    return a.get("accepted", 0) / a["decisions"] if a.get("decisions") else 0.0
def tok(r, n, b=None):
    return be(r, n, b).get("tokens", 0) if b else ag(r, n).get("tokens", 0)
def saving(x, y):
    return 1 - y / x if x else float("nan")
def cost(r, n, k):
    return tok(r, n, "small") + k * tok(r, n, "large")
def pct(x):
    return f"{100 * x:+.1f} %" if x is not None else "n/a"
def breakeven(r):
    fewer = tok(r, "single", "large") - tok(r, "cascade", "large")
    return f"k >= {tok(r, 'cascade', 'small') / fewer:.2f}" if fewer > 0 else "never"

# Per seed, one line each; then everything for all seeds together.
print()
print("per seed (s = single, c = cascade; savings of c against s, negative: a cost; "
      "a large token = 10 small ones in (c))")
head = ("seed", "decisions s/c", "accepted % s/c", "tokens s", "tokens c", "large s",
        "large c", "(a) large", "(b) all", "(c) k=10", "summary est.")
print("".join(f"{h:>15}" for h in head))
for r in rs + ([total] if len(rs) > 1 else []):
    print("".join(f"{v:>15}" for v in (
        r["seed"], f"{ag(r, 'single').get('decisions', 0)}/{ag(r, 'cascade').get('decisions', 0)}",
        f"{100 * rate(r, 'single'):.1f}/{100 * rate(r, 'cascade'):.1f}",
        f"{tok(r, 'single'):,}", f"{tok(r, 'cascade'):,}",
        f"{tok(r, 'single', 'large'):,}", f"{tok(r, 'cascade', 'large'):,}",
        pct(saving(tok(r, "single", "large"), tok(r, "cascade", "large"))),
        pct(saving(tok(r, "single"), tok(r, "cascade"))),
        pct(saving(cost(r, "single", 10), cost(r, "cascade", 10))),
        pct(r["estimate"]["saving"]))))

r = total if len(rs) > 1 else rs[0]
def row(name, value):
    print(f"{name:<48}{value:>20}")
print()
print("all seeds together" if len(rs) > 1 else f"seed {r['seed']}")
for n in NAMES:
    print(f"agent {n}" + (": every step to large" if n == "single"
                          else ": small first, escalate_below 0.7"))
    a = ag(r, n)
    row("  decisions", a.get("decisions", 0))
    row("  accepted (the others took the fallback)", a.get("accepted", 0))
    row("  acceptance rate", f"{100 * rate(r, n):.1f} %")
    row("  tokens", f"{tok(r, n):,}")
    row("  tokens per decision", f"{tok(r, n) / a['decisions']:,.0f}" if a.get("decisions") else "-")
    row("  tokens per accepted decision",
        f"{tok(r, n) / a['accepted']:,.0f}" if a.get("accepted") else "-")
    for b in BACKENDS:
        u = be(r, n, b)
        if not u.get("calls"):
            continue
        row(f"  {b}: calls (of which passed the gates)", f"{u['calls']} ({u['passed']})")
        row(f"  {b}: tokens", f"{u['tokens']:,}")
        row(f"  {b}: prompt / completion tokens per call",
            f"{u['prompt'] / u['calls']:,.0f} / {u['completion'] / u['calls']:,.0f}")
c = ag(r, "cascade")
print("cascade: where its decisions were accepted, and why it escalated")
for b in BACKENDS:
    row(f"  accepted at {b}", c.get("accepted_at", {}).get(b, 0))
for k in sorted(c.get("escalations", {})):
    row(f"  escalations: {k}", c["escalations"][k])
print("saving, cascade against single (negative: a cost)")
row("  (a) tokens to the large model", pct(saving(tok(r, "single", "large"),
                                                   tok(r, "cascade", "large"))))
row("  (b) all tokens", pct(saving(tok(r, "single"), tok(r, "cascade"))))
for k in (10, 3):
    row(f"  (c) cost, a large token = {k} small ones",
        pct(saving(cost(r, "single", k), cost(r, "cascade", k))))
row("  the cascade costs less when", breakeven(r))
row("  acceptance, single / cascade",
    f"{100 * rate(r, 'single'):.1f} / {100 * rate(r, 'cascade'):.1f} %")
row("meshctl summary: estimated saving", pct(r["estimate"]["saving"]))
row("  its tokens / estimated all at large", "{:,} / {:,}".format(
    r["estimate"]["tokens"] or 0, r["estimate"]["all_last"] or 0))
row("  measured: (b), single's tokens", "{} , {:,}".format(
    pct(saving(tok(r, "single"), tok(r, "cascade"))), tok(r, "single")))
print("(c) assumes a large model's token costs k times a small one's (k = 10, and 3); "
      "(a) and (b) assume nothing")

bad = False
for r in rs:
    s, c = ag(r, "single"), ag(r, "cascade")
    if not r["handled"] or min(s.get("events", 0), c.get("events", 0)) < r["expected"]:
        print(f"seed {r['seed']}: the stream was not fully handled "
              f"({s.get('events', 0)} / {c.get('events', 0)} of {r['expected']})")
        bad = True
    if sorted(map(tuple, s.get("incidents", []))) != sorted(map(tuple, c.get("incidents", []))):
        print(f"seed {r['seed']}: note: the two agents decided on different incidents "
              f"({s.get('decisions')} / {c.get('decisions')}): not a paired comparison")
    for n, a in (("single", s), ("cascade", c)):
        if a.get("tokens") != a.get("status_tokens"):
            print(f"seed {r['seed']}: note: agent {n}: status counts {a.get('status_tokens')} "
                  f"tokens, the log {a.get('tokens')}")
for r in rs + ([total] if len(rs) > 1 else []):
    gap = 100 * (rate(r, "cascade") - rate(r, "single"))
    if abs(gap) > 2:
        print(f"seed {r['seed']}: acceptance differs by {gap:+.1f} points (cascade - single: "
              f"{ag(r, 'cascade').get('accepted', 0)} - {ag(r, 'single').get('accepted', 0)} "
              f"of {ag(r, 'single').get('decisions', 0)} decisions): not at equal acceptance")
sys.exit(1 if bad else 0)
PY
