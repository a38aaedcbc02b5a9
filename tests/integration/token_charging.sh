#!/usr/bin/env bash
# Every failure class is charged by its rule (agents/backend/charge.h), against the test
# server's real wire behaviour, and every HTTP request the server received is counted.
# One agent per server mode, each with its own fake_llm:
#   max-usage     usage reported (completion = max_tokens)   -> "usage", exactly that
#   no-usage      an answer without usage                    -> "estimate"
#   loading       503 "Loading model"                        -> "refused", 0
#   rate-limited  429                                        -> "refused", 0
#   cut           200, body cut mid-transfer                 -> "reservation", all of it
#   drop          request read, connection closed, no reply  -> "reservation"
#   timeout       no answer within timeout_ms                -> "reservation"
#   length        finish_reason "length"                     -> "reservation" (or more)
#   resend-probe  the server closes every keep-alive         -> "usage", one request per call
# The ledger's scope for each agent holds exactly what its attempts were charged, with
# nothing left reserved.
source "$(dirname "$0")/lib.sh"

MODES="max-usage no-usage loading rate-limited cut drop timeout length resend-probe"
agents=""
backends=""
for mode in $MODES; do
    name=${mode//-/_}
    extra=""
    [ "$mode" = timeout ] && extra="--hang-ms 4000"
    "$BIN/tests/fake_llm" --port-file "$T/$name.port" --mode "$mode" $extra \
        --responses "$ROOT/config/demo-responses.jsonl" --requests "$T/$name.requests" \
        2> "$T/$name.log" &
    PIDS+=("$!")
    for _ in $(seq 100); do [ -s "$T/$name.port" ] && break; sleep 0.1; done
    [ -s "$T/$name.port" ] || fail "fake_llm --mode $mode did not start"
    backends+="  b_$name: { kind: openai, url: \"http://127.0.0.1:$(cat "$T/$name.port")\", model: fake, timeout_ms: 1500, connect_timeout_ms: 500, json_schema: false }
"
    agents+="  - name: a_$name
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    incident: { cooldown_s: 3600 }
    reason: { backend: b_$name, max_steps: 1, max_tokens: 64, budget_tokens: 10000000, incident_token_cap: 100000 }
    actions: [scale_out, escalate]
    fallback: escalate
"
done
write_config "$agents"
python3 - "$T/meshd.yaml" "$backends" <<'PY'
import sys
path, extra = sys.argv[1], sys.argv[2]
text = open(path).read().replace("backends:\n", "backends:\n" + extra, 1)
open(path, "w").write(text)
PY
start_meshd
"$BIN/mesh-gen" --brokers "$BROKERS" --topic metrics --hosts 2 --metrics 2 --points 300 \
    --labels "$T/labels.json" 2> "$T/gen.log" || fail "mesh-gen failed"
total=$(jq_py 'print(d["events"])' < "$T/labels.json")
wait_handled "$total" 180
MESHCTL --json budget > "$T/budget.json" || fail "meshctl budget failed"
MESHCTL budget
stop_meshd

python3 - "$T" "$MODES" <<'PY'
import collections, json, os, sys
t, modes = sys.argv[1], sys.argv[2].split()
budget = json.load(open(os.path.join(t, "budget.json")))
scopes = {s["scope"]: s for s in budget["scopes"]}
assert budget["reserved"] == 0 and budget["outstanding"] == 0, budget
decs = [json.loads(l) for l in open(os.path.join(t, "state/decisions.jsonl"))]
decs = [d for d in decs if d.get("type") == "decision"]
expect = {"max-usage": "usage", "no-usage": "estimate", "loading": "refused",
          "rate-limited": "refused", "cut": "reservation", "drop": "reservation",
          "timeout": "reservation", "length": "reservation", "resend-probe": "usage"}
for mode in modes:
    name = mode.replace("-", "_")
    mine = [d for d in decs if d["agent"] == "a_" + name]
    assert mine, "no decision for " + mode
    attempts = [a for d in mine for a in d["attempts"]]
    charged = 0
    for a in attempts:
        rule = expect[mode]
        assert a["charge_rule"] == rule, (mode, a["charge_rule"], a["error"], a["detail"])
        if rule == "refused":
            assert a["charged"] == 0, (mode, a)
        if rule == "reservation":
            assert a["charged"] >= a["reserved"], (mode, a)
        if mode == "max-usage":
            assert a["completion_tokens"] == 64 and not a["estimated"], a
            assert a["charged"] == a["prompt_tokens"] + 64, a
        if mode == "no-usage":
            assert a["estimated"], a
        charged += a["charged"]
    assert sum(d["tokens"] for d in mine) == charged, mode
    used = scopes["agent:a_" + name]["used"]
    assert used == charged, (mode, "ledger says", used, "attempts say", charged)
    # Every request the server received is one an attempt counted.
    received = sum(1 for _ in open(os.path.join(t, name + ".requests")))
    sent = sum(a["http_requests"] for a in attempts)
    assert received == sent, (mode, "server received", received, "attempts counted", sent)
    print("%-13s %2d attempts, rule %-11s charged %6d, %d requests" %
          (mode, len(attempts), expect[mode], charged, received))
total = sum(scopes["agent:a_" + m.replace("-", "_")]["used"] for m in modes)
assert scopes["daemon"]["used"] == total, (scopes["daemon"], total)
PY
echo ok
