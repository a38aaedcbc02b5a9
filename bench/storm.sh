#!/usr/bin/env bash
# The incident-storm bench: tokens spent by the agent against a naive loop, on a stream
# shaped like real outages (docs/performance.md, "Incident storm").
#
#   bench/storm.sh                 (make bench BENCH=storm)
#   SEEDS="42 7" bench/storm.sh    the stream seeds, one meshd run each
#   STORM_CONFIG=FILE bench/storm.sh   another config of the same shape (state in
#                                  build/storm, one agent, detector at its defaults)
#
# Per seed: meshd starts with bench/storm.yaml (embedded broker with one partition, one
# acting agent, scripted backend); mesh-gen produces an incident-storm stream with its
# labels, at most STORM_RATE (10,000) messages a second so that the agent reads it as
# it comes (the embedded broker drops what is older than its bounded log); once every
# event is handled (events counted, lag 0, nothing in flight) the agent's counters
# (`meshctl --json status`) and the decision log are read, meshd is stopped and the
# log verified.  STORM_LIMIT_S (240) bounds each run.
#
# The stream (mesh-gen's storm mode; tools/mesh-gen.c documents every parameter): 20
# hosts x 6 metrics, one point a minute for 24 hours; 3 outages, each hitting 60 % of
# the hosts (12) and 3 of the 6 metrics for 40 minutes, hosts hit one after another
# within the first 5 minutes, flapping (bad and recovered phases of 2-7 minutes each),
# 8 sigma (x 0.8-1.2 per host); each outage happens twice: 6 storms, 216 labelled
# windows.  Overrides: STORM_HOSTS_N and STORM_METRICS_N (the fleet: --hosts,
# --metrics), STORM_POINTS, and STORM_OUTAGES, STORM_REPEATS, STORM_LENGTH, STORM_HOSTS
# (percent), STORM_METRICS, STORM_FLAP, STORM_SPREAD, STORM_SIGMAS (--storm ...).
#
# What it prints, per seed:
#   anomalous points    the detector's anomalous points (counter `anomalies`): the calls
#                       the naive loop makes, one model call per anomalous point
#   model calls         attempts in the decision log (a rejected proposal is re-asked, up
#                       to max_steps, so an incident can cost more than one call)
#   mean tokens / call  tokens in the decision log / model calls
#   naive tokens        anomalous points x mean tokens per call
#   ratio               naive tokens / tokens spent (the goal: at least 10)
#   savings             each suppression reason's count (agents/incident.h) x mean
#                       tokens per call: a suppressed point is a call the naive loop
#                       makes and the agent does not; points still pending at the end
#                       likewise; calls beyond one per decision (re-asks) cost what the
#                       naive loop does not; budget stops are decisions with verdict
#                       budget_exhausted (the incident cap or the agent's window)
#   coverage            which points were anomalous: the agent's detector (ewma at its
#                       defaults) replayed here over the same stream, trusted only when
#                       its count equals the agent's counter.  A decision speaks for a
#                       point when its group's labels match the point's series and the
#                       point lies in the group's span [first_ms, last_ms] at the
#                       decision.  A labelled window (one per hit series per storm) with
#                       anomalous points (up to 3 steps after it, as common/labels.c
#                       credits late detections) is covered when a decision speaks for
#                       one of them; a window the detector never flagged, when a
#                       decision's group span meets it.  Every verdict is a decision:
#                       accepted, rejected and budget_exhausted (both take the fallback).
# Exit 1 if a labelled window is uncovered or a stream was not fully handled.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-build}
CONFIG=${STORM_CONFIG:-bench/storm.yaml}
DIR=build/storm
SEEDS=${SEEDS:-42 7}
LIMIT_S=${STORM_LIMIT_S:-240}
RATE=${STORM_RATE:-10000}
GEN_ARGS=(--hosts "${STORM_HOSTS_N:-20}" --metrics "${STORM_METRICS_N:-6}"
          --points "${STORM_POINTS:-1440}" --step-s 60
          --storm "${STORM_OUTAGES:-3}" --storm-repeats "${STORM_REPEATS:-1}"
          --storm-length "${STORM_LENGTH:-40}" --storm-hosts "${STORM_HOSTS:-60}"
          --storm-metrics "${STORM_METRICS:-3}" --storm-flap "${STORM_FLAP:-10}"
          --storm-spread "${STORM_SPREAD:-5}" --storm-sigmas "${STORM_SIGMAS:-8}")
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
fail() { echo "storm: FAILED: $*" >&2; exit 1; }
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
    # Handled: every message counted, lag 0, nothing in flight.  Counted short of the
    # stream with lag 0 and nothing moving for 10 s means the broker dropped messages
    # before they were read (its log per partition is bounded): not handled.
    handled=no; seen=-1; still=$(date +%s)
    while :; do
        now=$(status_json | jq_py "
a = d['agents'][0]; c = a['counters']
n = c.get('events', 0) + c.get('malformed', 0)
idle = a['state'] == 'running' and c.get('lag', -1) == 0 and c.get('inflight', 1) == 0
print('yes' if idle and n >= $expected else 'no', n, 'idle' if idle else 'busy')")
        set -- $now
        handled=${1:-no}
        [ "$handled" = yes ] && break
        if [ "${2:-0}" != "$seen" ] || [ "${3:-}" != idle ]; then seen=${2:-0}; still=$(date +%s); fi
        [ $(( $(date +%s) - still )) -lt 10 ] || break
        [ $(( $(date +%s) - start )) -lt "$LIMIT_S" ] || break
        sleep 0.5
    done
    status_json > "$DIR/status.json"
    kill -TERM "$pid"
    wait "$pid" && rc=0 || rc=$?
    pid=
    [ "$rc" = 0 ] || { tail -20 "$DIR/meshd.log" >&2; fail "meshd exited with $rc"; }
    "${MESHCTL[@]}" audit verify > /dev/null || fail "the decision log does not verify"
    "$B/mesh-gen" --stdout "${GEN_ARGS[@]}" --seed "$seed" 2> /dev/null > "$DIR/stream.jsonl"
    out=$(python3 - "$DIR" "$seed" "$handled" "$(( $(date +%s) - start ))" <<'PY'
import json, math, sys
d, seed, handled, wall = sys.argv[1], sys.argv[2], sys.argv[3] == "yes", int(sys.argv[4])
labels = json.load(open(f"{d}/labels.json"))
status = json.load(open(f"{d}/status.json"))
agent = status["agents"][0]
c = agent["counters"]
decisions = []
for line in open(f"{d}/state/decisions.jsonl"):
    r = json.loads(line)
    if r.get("type") == "decision" and r.get("agent") == agent["name"]:
        decisions.append(r)
calls = sum(len(r.get("attempts") or []) for r in decisions)
tokens = sum(r.get("tokens") or 0 for r in decisions)
mean = tokens / calls if calls else 0.0
anomalies = c.get("anomalies", 0)
naive = anomalies * mean
verdicts = {}
for r in decisions:
    verdicts[r["verdict"]] = verdicts.get(r["verdict"], 0) + 1
budget = [r for r in decisions if r["verdict"] == "budget_exhausted"]
cap_stops = sum(1 for r in budget if (r.get("reason") or "").startswith("incident token cap"))
steps_cut = sum(3 - len(r.get("attempts") or []) for r in budget)   # reason.max_steps: 3
reasons = ["grouped", "waiting", "repeat", "below_min", "cooldown", "silenced", "evicted"]
supp = {k: c.get("suppressed_" + k, 0) for k in reasons}
pending = c.get("incident_pending", 0)
incidents = c.get("incidents", 0)

# Which points were anomalous: the agent's detector (ewma at its defaults, as in
# bench/storm.yaml) replayed over the same stream.  Trusted only if its count equals the
# agent's `anomalies` counter.
ALPHA, WARMUP, THRESHOLD = 0.05, 30, 0.9995
state, points = {}, {}
for line in open(f"{d}/stream.jsonl"):
    e = json.loads(line)
    key, v = e["host"] + "/" + e["metric"], e["value"]
    s = state.setdefault(key, [0, 0.0, 0.0])
    s[0] += 1
    n, m, var = s
    score = 0.0
    if n > 1:
        sd = max(math.sqrt(var), 1e-9 * max(1.0, abs(m)))
        score = math.erf(abs((v - m) / sd) / math.sqrt(2))
    a, av = max(ALPHA, 1 / n), max(ALPHA * 0.25, 1 / n)
    if n > max(WARMUP, 2) and score >= THRESHOLD:
        a, av = a * 0.5, av * 0.5
    s[1], s[2] = m + a * (v - m), (1 - av) * (var + av * (v - m) ** 2)
    if n > WARMUP and score >= THRESHOLD:
        points.setdefault(key, []).append(e["ts"] * 1000)
replica = sum(len(p) for p in points.values())
exact = replica == anomalies

# Coverage.  A decision speaks for a point of a series when its group's labels match the
# series and the point lies in the group's span at the decision [first_ms, last_ms]: the
# stream is in event-time order and a group's lives do not overlap, so the point was in
# that life of the group before the decision.  A window with an anomalous point needs a
# decision speaking for one of them; a window the detector never flagged (no point for
# anyone to call about) needs a decision whose group span meets it.
tol = labels["step_s"] * 1000 * 3
def spans(w):
    host, metric = w["series"].split("/", 1)
    fields = {"host": host, "metric": metric}
    for r in decisions:
        inc = r.get("incident") or {}
        g = inc.get("group")
        if g:
            if all(fields.get(k) == v for k, v in (g.get("labels") or {}).items()):
                yield g["first_ms"], g["last_ms"]
        elif inc.get("series") == w["series"]:
            yield inc["ts_ms"], inc["ts_ms"]
windows = labels["anomalies"]
uncovered, undetected = [], 0
for w in windows:
    hits = [t for t in points.get(w["series"], []) if w["start_ms"] <= t <= w["end_ms"] + tol]
    if exact and hits:
        ok = any(lo <= t <= hi for lo, hi in spans(w) for t in hits)
    else:
        undetected += exact
        ok = any(lo <= w["end_ms"] + tol and hi >= w["start_ms"] for lo, hi in spans(w))
    if not ok:
        uncovered.append(w)
storms = labels.get("storm", {}).get("storms", [])
def in_storm(r):
    g = (r.get("incident") or {}).get("group") or {}
    lo, hi = g.get("first_ms", 0), g.get("last_ms", 0)
    return any(lo <= s["end_ms"] + tol and hi >= s["start_ms"]
               and all(v in s["metrics"] if k == "metric" else v in s["hosts"]
                       for k, v in (g.get("labels") or {}).items())
               for s in storms)
outside = sum(1 for r in decisions if not in_storm(r))
storm_points = sum(1 for key, ts in points.items() for t in ts
                   if any(w["series"] == key and w["start_ms"] <= t <= w["end_ms"] + tol
                          for w in windows))

res = dict(seed=int(seed), handled=handled, wall=wall, events=c.get("events", 0),
           expected=labels["events"] + labels.get("malformed", 0), anomalies=anomalies,
           replica=replica, exact=exact, storm_points=storm_points,
           incidents=incidents, decisions=len(decisions), calls=calls, tokens=tokens,
           status_tokens=c.get("tokens", 0), mean=mean, naive=naive,
           ratio=naive / tokens if tokens else float("inf"), supp=supp, pending=pending,
           verdicts=verdicts, budget=len(budget), cap_stops=cap_stops, steps_cut=steps_cut,
           windows=len(windows), undetected=undetected, uncovered=len(uncovered),
           storms=len(storms), outside=outside, first_uncovered=uncovered[:3],
           accounted=incidents + sum(supp.values()) + pending)
print(f"seed {seed}: {res['events']} events, {anomalies} anomalous points, {len(decisions)} "
      f"decisions, ratio {res['ratio']:.1f}, {len(uncovered)}/{len(windows)} windows "
      f"uncovered, {wall} s", file=sys.stderr)
print(json.dumps(res))
PY
)
    results+=("$out")
done

python3 - "${results[@]}" <<'PY'
import json, sys
rs = [json.loads(a) for a in sys.argv[1:]]
def row(name, f):
    print(f"{name:<44}" + "".join(f"{f(r):>16}" for r in rs))
print()
row("seed", lambda r: r["seed"])
row("events handled / produced", lambda r: f"{r['events']}/{r['expected']}")
row("storms / labelled windows", lambda r: f"{r['storms']} / {r['windows']}")
row("anomalous points (naive: 1 call each)", lambda r: f"{r['anomalies']:,}")
row("  of which in a labelled window", lambda r: f"{r['storm_points']:,}" if r["exact"] else "?")
row("incidents opened", lambda r: r["incidents"])
row("decisions (reasoning loops)", lambda r: r["decisions"])
row("  accepted / rejected / budget_exhausted", lambda r: "{} / {} / {}".format(
    r["verdicts"].get("accepted", 0), r["verdicts"].get("rejected", 0),
    r["verdicts"].get("budget_exhausted", 0)))
row("model calls", lambda r: r["calls"])
row("mean tokens per call", lambda r: f"{r['mean']:.0f}")
row("tokens spent", lambda r: f"{r['tokens']:,}")
row("naive tokens (anomalous x mean)", lambda r: f"{r['naive']:,.0f}")
row("ratio naive / spent", lambda r: f"{r['ratio']:.1f}x")
print("savings against the naive loop, in tokens (points x mean tokens per call):")
for k in ["grouped", "waiting", "repeat", "below_min", "cooldown", "silenced", "evicted"]:
    if any(r["supp"][k] for r in rs):
        row(f"  {k} (points = tokens)",
            lambda r, k=k: f"{r['supp'][k]:,} = {r['supp'][k] * r['mean']:,.0f}")
row("  pending at the end (no call yet)",
    lambda r: f"{r['pending']} = {r['pending'] * r['mean']:,.0f}")
row("  calls - decisions (re-asks; budget stops)",
    lambda r: f"{r['calls'] - r['decisions']:+,} = {(r['decisions'] - r['calls']) * r['mean']:+,.0f}")
row("budget stops (incident cap / agent window)",
    lambda r: f"{r['cap_stops']} / {r['budget'] - r['cap_stops']}")
row("  calls the budget stops cut (<= max_steps)", lambda r: r["steps_cut"])
row("decisions on no storm (false alarms)", lambda r: r["outside"])
row("labelled windows the detector never flagged", lambda r: r["undetected"] if r["exact"] else "?")
row("labelled windows without a decision", lambda r: r["uncovered"])
bad = False
for r in rs:
    if not r["handled"] or r["events"] < r["expected"]:
        print(f"seed {r['seed']}: the stream was not fully handled")
        bad = True
    if r["uncovered"]:
        print(f"seed {r['seed']}: {r['uncovered']} labelled windows without a decision, "
              f"e.g. {r['first_uncovered']}")
        bad = True
    if not r["exact"]:
        print(f"seed {r['seed']}: the detector replay found {r['replica']} anomalous points, the agent "
              f"{r['anomalies']}: coverage judged by group spans only")
    if r["accounted"] != r["anomalies"]:
        print(f"seed {r['seed']}: note: incidents + suppressed + pending = {r['accounted']}, "
              f"anomalies {r['anomalies']}")
    if r["tokens"] != r["status_tokens"]:
        print(f"seed {r['seed']}: note: status counts {r['status_tokens']} tokens, "
              f"the log {r['tokens']}")
print("goal: at least 10x fewer tokens than the naive loop, no labelled window without a decision:",
      "met" if not bad and all(r["ratio"] >= 10 for r in rs) else "NOT met")
sys.exit(1 if bad else 0)
PY
