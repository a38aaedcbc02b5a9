#!/usr/bin/env bash
# README's "Real servers" block, as written, run by meshd: one agent per backend of the
# block, each backend pointed at fake_llm speaking that server's wire format (--flavor,
# the model name the block gives it served, streaming as the backend asks), the demo's
# stream through all four.  Every agent must reason, accept proposals, and record the
# flavour it spoke, a streamed answer with its time to first token and the structured-
# output form of that server; each fake must have seen that server's request shape.
# What this does not show: that the real servers answer as the fakes do (the fakes'
# header comment says what they do not cover).
source "$(dirname "$0")/lib.sh"

# The block: from the marker line to the end of its yaml fence.
python3 - README.md > "$T/servers.yaml" <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines()
start = next(i for i, l in enumerate(lines) if l.startswith("<!-- real-servers:"))
assert lines[start + 1] == "```yaml", lines[start + 1]
end = lines.index("```", start + 2)
print("\n".join(lines[start + 2:end]))
PY
grep -q '^backends:' "$T/servers.yaml" || fail "no backends block after the README marker"

# name flavor model, per backend of the block
python3 - "$T/servers.yaml" > "$T/servers.txt" <<'PY'
import re, sys
name = None
out = {}
for line in open(sys.argv[1]):
    m = re.match(r"^  ([a-z][a-z0-9_.-]*):", line)
    if m:
        name = m.group(1)
        out[name] = {}
        continue
    m = re.match(r"^    (flavor|model|url): *([^ #]+)", line.rstrip())
    if m and name:
        out[name][m.group(1)] = m.group(2)
for name, b in out.items():
    print(name, b["flavor"], b["model"])
PY
[ "$(wc -l < "$T/servers.txt")" = 4 ] || { cat "$T/servers.txt"; fail "expected four backends"; }

# A fake per backend, serving the model the block names; proposals the gates accept.
cat > "$T/good.jsonl" <<'EOF'
{"content": "{\"action\": \"scale_out\", \"params\": {\"service\": \"web\", \"replicas\": 2}, \"confidence\": 0.9, \"rationale\": \"load\"}"}
{"content": "{\"action\": \"escalate\", \"params\": {\"summary\": \"look\"}, \"confidence\": 0.8, \"rationale\": \"unclear\"}"}
EOF
agents=
cp "$T/servers.yaml" "$T/backends.yaml"
while read -r name flavor model; do
    "$BIN/tests/fake_llm" --port-file "$T/$name.port" --flavor "$flavor" --model "$model" \
        --responses "$T/good.jsonl" --requests "$T/$name.requests" --probes "$T/$name.probes" \
        2> "$T/$name.log" &
    PIDS+=("$!")
    for _ in $(seq 100); do [ -s "$T/$name.port" ] && break; sleep 0.05; done
    [ -s "$T/$name.port" ] || fail "fake_llm as $flavor did not start"
    port=$(cat "$T/$name.port")
    # this backend's url: the fake's address
    python3 - "$T/backends.yaml" "$name" "$port" <<'PY'
import re, sys
path, name, port = sys.argv[1], sys.argv[2], sys.argv[3]
lines, current = open(path).read().splitlines(), None
for i, l in enumerate(lines):
    m = re.match(r"^  ([a-z][a-z0-9_.-]*):", l)
    if m:
        current = m.group(1)
    elif current == name and re.match(r"^    url:", l):
        lines[i] = "    url: http://127.0.0.1:%s" % port
open(path, "w").write("\n".join(lines) + "\n")
PY
    agents="$agents
  - name: via-$name
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    incident: { cooldown_s: 3600 }
    reason: { backend: $name, max_steps: 2 }
    actions: [scale_out, escalate]
    fallback: escalate"
done < "$T/servers.txt"
write_config "$agents"
# The README's backends beside the test's own.
python3 - "$T/meshd.yaml" "$T/backends.yaml" <<'PY'
import sys
cfg, block = sys.argv[1], open(sys.argv[2]).read().splitlines()[1:]
lines = open(cfg).read().splitlines()
at = lines.index("backends:") + 1
open(cfg, "w").write("\n".join(lines[:at] + block + lines[at:]) + "\n")
PY
"$BIN/meshd" --check-config "$T/meshd.yaml" > /dev/null || fail "the README's block does not load"

start_meshd
"$BIN/mesh-gen" --brokers "$BROKERS" --topic metrics --hosts 2 --metrics 2 --points 400 \
    --labels "$T/labels.json" 2> "$T/gen.log" || fail "mesh-gen failed"
total=$(jq_py 'print(d["events"] + d.get("malformed", 0))' < "$T/labels.json")
wait_handled "$total" 120
status_json > "$T/status.json"
stop_meshd
python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
servers = [l.split() for l in open(t + "/servers.txt")]
decisions = [json.loads(l) for l in open(t + "/state/decisions.jsonl")]
decisions = [r for r in decisions if r.get("type") == "decision"]
status = {a["agent"]: a for a in json.load(open(t + "/status.json"))["agents"]}
form = {"llamacpp": "json_schema", "vllm": "json_schema", "ollama": "json_schema",
        "ollama-native": "format", "tgi": "tgi_json"}
for name, flavor, model in servers:
    mine = [r for r in decisions if r["agent"] == "via-" + name]
    assert mine, "agent via-%s decided nothing" % name
    accepted = [r for r in mine if r["verdict"] == "accepted"]
    assert accepted, "via-%s: nothing accepted: %s" % (name, [r["reason"] for r in mine])
    for r in accepted:
        a = r["attempts"][-1]
        assert a["flavor"] == flavor, (name, a["flavor"])
        assert a["streamed"] is True and a["ttft_ms"] is not None, (name, a)
        assert a["structured"] == form[flavor], (name, a["structured"])
        assert a["estimated"] is False, (name, "usage not read from the stream")
        assert a["http_requests"] == 1 and len(a["requests"]) == 1, a["requests"]
    health = status["via-" + name]["backends"][name]
    assert health["state"] == "ready" and health["flavor"] == flavor, health
    # the server saw its own request shape
    reqs = [json.loads(l)["body"] for l in open("%s/%s.requests" % (t, name))]
    assert reqs and all(b.get("stream") is True for b in reqs), name
    if flavor == "ollama-native":
        assert all("format" in b and "num_predict" in b.get("options", {}) for b in reqs)
        assert all(b.get("keep_alive") for b in reqs), "keep_alive not sent"
    else:
        assert all(b["stream_options"]["include_usage"] is True for b in reqs), name
    if flavor == "tgi":
        assert all(b["response_format"]["type"] == "json" for b in reqs)
    print("%-9s %-14s %d decisions, %d accepted, ttft p50 %s ms" % (
        name, flavor, len(mine), len(accepted), (health.get("ttft_ms") or {}).get("p50")))
PY
MESHCTL --log "$T/state/decisions.jsonl" audit verify > /dev/null || fail "the log does not verify"
echo ok
