#!/usr/bin/env bash
# make demo: the embedded default, end to end, in under two minutes.
#
#  1. meshd starts with the config written from config/demo.yaml into $B/demo/meshd.yaml:
#     embedded broker, two agents, scripted backend (or the server at $MESH_LLM_URL with
#     model $MESH_LLM_MODEL, flavor $MESH_LLM_FLAVOR);
#  2. mesh-gen feeds it a labelled synthetic metric stream (plus a few malformed messages;
#     MESH_SEED, default 42, and DEMO_POINTS, default 720 per series, choose the stream);
#  3. one agent is killed with SIGKILL mid-stream, to show it coming back;
#  4. when every event is handled, the summary is printed; then one restart_service held
#     for approval is approved with meshctl, meshd runs it (actions/demo-note, an exec
#     action that only appends to $B/demo/state/notes.log) and its outcome is shown;
#  5. meshd is stopped (SIGTERM) and signs a checkpoint of the decision log; the log is
#     verified (chain, Merkle tree, checkpoints), one accepted decision is proven with
#     `meshctl audit prove` and the proof verified offline with the public key alone.
# Exit 0 only if all of that worked.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
B=${B:-build}
DEMO=$B/demo
CONFIG=$DEMO/meshd.yaml
POINTS=${DEMO_POINTS:-720}
LIMIT_S=${DEMO_LIMIT_S:-110}

say() { printf '\033[1m== %s\033[0m\n' "$*"; }
fail() { printf 'demo: FAILED: %s\n' "$*" >&2; exit 1; }

rm -rf "$DEMO"
mkdir -p "$DEMO"
DEMO_ABS=$(cd "$DEMO" && pwd)
case $ROOT$DEMO_ABS in
    *[\#\&\\]*) fail "the paths $ROOT and $DEMO_ABS may not hold '#', '&' or '\\' (written into the config with sed)" ;;
esac
# config/demo.yaml with this checkout's paths: its relative ones are resolved against
# config/, the demo's state goes to $DEMO, and the exec actions get what the loader
# needs as written (an absolute program; env values are not paths to resolve).
SED=(-e "s#\.\./build/demo/#$DEMO_ABS/#"
     -e "s#\.\./rules/#$ROOT/rules/#g"
     -e "s#file: demo-responses\.jsonl#file: $ROOT/config/demo-responses.jsonl#"
     -e "s#^\( *program:\) /bin/false .*#\1 $ROOT/actions/demo-note#"
     -e "s#\"DEMO_NOTES=/dev/null\"\]#\"DEMO_NOTES=$DEMO_ABS/state/notes.log\"]#")
if [ -n "${MESH_LLM_URL:-}" ]; then
    # The agents pointed at an OpenAI-compatible server instead.
    SED+=(-e "s#^backends:#backends:\n  llm:\n    kind: openai\n    flavor: ${MESH_LLM_FLAVOR:-auto}\n    url: ${MESH_LLM_URL}\n    model: ${MESH_LLM_MODEL:-default}\n    timeout_ms: 60000\n    first_token_timeout_ms: 60000#"
          -e "s#backend: scripted#backend: llm#")
    say "backend: $MESH_LLM_URL (model ${MESH_LLM_MODEL:-default}, flavor ${MESH_LLM_FLAVOR:-auto})"
else
    say "backend: scripted (config/demo-responses.jsonl)"
fi
sed "${SED[@]}" config/demo.yaml > "$CONFIG"
if grep -nE '^[^#]*(\.\./|/bin/false|/dev/null)' "$CONFIG" >&2; then
    fail "$CONFIG: the lines above were not rewritten (tools/demo.sh, SED)"
fi

MESHCTL=("$B/meshctl" --config "$CONFIG")
"$B/meshd" --check-config "$CONFIG"

pid=
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT
start=$(date +%s)
"$B/meshd" --config "$CONFIG" 2> "$DEMO/meshd.log" &
pid=$!

status_json() { "${MESHCTL[@]}" --json status 2>/dev/null || true; }
jq_py() { python3 -c "import json,sys; d=json.load(sys.stdin); $1" 2>/dev/null; }

for _ in $(seq 100); do
    [ "$(status_json | jq_py 'print(d["daemon"]["ready"])')" = "True" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$DEMO/meshd.log" >&2; fail "meshd exited during start"; }
    sleep 0.2
done
[ "$(status_json | jq_py 'print(d["daemon"]["ready"])')" = "True" ] || fail "meshd not ready in 20 s"
BROKERS=$(cat "$DEMO/run/brokers")
say "meshd ready (pid $pid), embedded broker at $BROKERS"

say "producing the synthetic stream"
"$B/mesh-gen" --brokers "$BROKERS" --topic metrics --points "$POINTS" --malformed 6 --seed "${MESH_SEED:-42}" \
    --labels "$DEMO/labels.json" &
gen=$!

# Kill the acting agent mid-stream and time its return.
sleep 1
victim=$(status_json | jq_py 'print([a["pid"] for a in d["agents"] if a["name"]=="ops"][0])')
kill -KILL "$victim"
t0=$(date +%s%N)
back=
for _ in $(seq 100); do
    now=$(status_json | jq_py 'a=[a for a in d["agents"] if a["name"]=="ops"][0]; print(a["pid"], a["state"], a["restarts"])')
    set -- $now
    if [ "${1:-0}" != "0" ] && [ "$1" != "$victim" ] && [ "${2:-}" = running ]; then
        back=$(( ($(date +%s%N) - t0) / 1000000 )); break
    fi
    sleep 0.05
done
[ -n "$back" ] || fail "agent ops did not come back after SIGKILL"
say "agent ops (pid $victim) killed with SIGKILL: back as pid $1 in ${back} ms, restarts=$3"
wait "$gen" || fail "mesh-gen failed"

expected=$(python3 -c "import json; d=json.load(open('$DEMO/labels.json')); print(d['events']+d.get('malformed',0))")
say "waiting until every agent has handled all $expected messages"
while :; do
    done_=$(status_json | jq_py "
ok = all(a['state']=='running' and a['counters'].get('lag',-1)==0 and a['counters'].get('inflight',1)==0
         and a['counters'].get('events',0)+a['counters'].get('malformed',0) >= $expected
         for a in d['agents'])
print('yes' if ok else 'no')")
    [ "$done_" = yes ] && break
    [ $(( $(date +%s) - start )) -lt "$LIMIT_S" ] || { "${MESHCTL[@]}" status; fail "not done within ${LIMIT_S} s"; }
    sleep 0.3
done

"${MESHCTL[@]}" status
"${MESHCTL[@]}" budget
echo
"${MESHCTL[@]}" summary --labels "$DEMO/labels.json"

# A wrong model URL must not pass for a demo: when every model call failed, say so
# (with the backend's last error), still stop meshd and verify the log, and exit 1.
model_down=$("${MESHCTL[@]}" --json summary | jq_py '
e = d["economics"]; m = d["model_failed"]
print("%d of %d model calls failed, %d decisions took the fallback" % (m["calls"], e["calls"], m["decisions"])
      if e["calls"] > 0 and m["calls"] == e["calls"] else "")') || model_down=
if [ -n "$model_down" ]; then
    why=$(status_json | jq_py '
seen = []
for a in d["agents"]:
    for name, b in (a.get("backends") or {}).items():
        line = "backend %s: %s" % (name, b.get("detail") or b.get("state"))
        if line not in seen: seen.append(line)
print("; ".join(seen))') || why=
    say "stopping meshd (SIGTERM)"
    kill -TERM "$pid"
    wait "$pid" || true
    pid=
    "${MESHCTL[@]}" audit verify || fail "the decision log does not verify"
    printf 'demo FAILED: every model call failed (%s; %s; check MESH_LLM_URL and that the server runs)\n' \
        "$model_down" "${why:-no backend detail}" >&2
    exit 1
fi

# restart_service needs a human: meshd holds each one the gates accepted, and runs it
# only when an operator approves it (the agent has moved on).  Approve the oldest; meshd
# runs it and records the outcome with who approved it and why.
say "meshctl approvals"
"${MESHCTL[@]}" approvals
held=$("${MESHCTL[@]}" --json approvals | jq_py '
print(next((a["id"] for a in d if a["action"] == "restart_service"), ""))') || held=
if [ -z "$held" ]; then
    # The scripted model draws each decision's proposal at random (by decision id): with
    # the default 720 points ops makes about 11 decisions, and about one run in thirty
    # has no restart_service among those the gates accepted.
    say "no restart_service was proposed this run: nothing to approve"
else
    say "meshctl approve ${held:0:16} --comment \"demo: approved by the operator\""
    "${MESHCTL[@]}" approve "$held" --comment "demo: approved by the operator" \
        || fail "meshctl approve failed"
    outcome=
    for _ in $(seq 100); do
        outcome=$("${MESHCTL[@]}" --json audit show "$held" 2>/dev/null | jq_py '
o = d["outcome"]
print(o["status"] if o and (o.get("approval") or {}).get("how") == "approved" else "")') \
            || outcome=
        [ -n "$outcome" ] && break
        sleep 0.1
    done
    [ -n "$outcome" ] || fail "no outcome recorded for the approved decision $held"
    say "meshctl audit show ${held:0:16}: its outcome, recorded by meshd"
    "${MESHCTL[@]}" --json audit show "$held" | jq_py '
o = d["outcome"]
e = o.get("exec") or {}
out = {"action": o["action"], "status": o["status"], "detail": o.get("detail"),
       "exec": {k: e[k] for k in ("argv", "exit", "duration_ms", "stdout") if k in e},
       "approval": {k: v for k, v in o["approval"].items() if k in ("how", "by", "comment")}}
print(json.dumps(out, indent=2))' || fail "cannot show the outcome of $held"
    [ "$outcome" = "done" ] || fail "the approved restart_service ended $outcome"
fi
say "tail $DEMO/state/notes.log (what actions/demo-note wrote, run by meshd)"
if [ -f "$DEMO/state/notes.log" ]; then
    tail -n 5 "$DEMO/state/notes.log"
else
    echo "(no exec action ran this run)"
fi

say "stopping meshd (SIGTERM)"
kill -TERM "$pid"
wait "$pid" && rc=0 || rc=$?
pid=
[ "$rc" = 0 ] || { tail -20 "$DEMO/meshd.log" >&2; fail "meshd exited with $rc"; }

if grep -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$DEMO/meshd.log"; then
    fail "sanitizer report in $DEMO/meshd.log"
fi

say "meshctl audit verify (chain, tree, every signed checkpoint)"
"${MESHCTL[@]}" audit verify || fail "the decision log does not verify"

# meshd signed a checkpoint of the whole log as it stopped (C2SP signed note, Ed25519).
say "the checkpoint meshd signed at stop: $DEMO/state/decisions.jsonl.checkpoint"
cat "$DEMO/state/decisions.jsonl.checkpoint" || fail "no signed checkpoint at stop"
pubkey=$("${MESHCTL[@]}" audit pubkey) || fail "meshctl audit pubkey failed"
accepted=$("${MESHCTL[@]}" --json audit list --verdict accepted | jq_py '
print(d[0]["id"] if d else "")') || accepted=
[ -n "$accepted" ] || fail "no accepted decision to prove"
say "meshctl audit prove ${accepted:0:16} > $DEMO/proof.json"
"${MESHCTL[@]}" audit prove "$accepted" > "$DEMO/proof.json" || fail "audit prove failed"
jq_py 'print("leaf %d of %d, audit path of %d hashes" % (d["leaf_index"], d["tree_size"],
      len(d["audit_path"])))' < "$DEMO/proof.json"
# Offline: nothing but the proof file and the public key (no config, no log).
say "meshctl audit verify-proof $DEMO/proof.json --pubkey $pubkey"
(MESHCTL_BIN=$(cd "$B" && pwd)/meshctl; cd / && "$MESHCTL_BIN" audit verify-proof "$DEMO_ABS/proof.json" --pubkey "$pubkey") \
    || fail "the proof does not verify"
say "demo done in $(( $(date +%s) - start )) s; diagnostics in $DEMO/meshd.log"
