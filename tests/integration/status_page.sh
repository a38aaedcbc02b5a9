#!/usr/bin/env bash
# The status page in a real browser: meshd with the demo's kind of stream (mesh-gen, the
# scripted backend), http on; headless Chromium loads GET / and runs its JavaScript; the
# DOM it ends with shows the agents meshctl shows, decisions with verdicts, and a chart
# with samples.  The detail view of one decision (#decision=ID) shows what
# `meshctl --json audit show ID` says (id, verdict, action, outcome).  The page's own
# requests are GETs; a POST is refused.  A decision whose action carries markup and script
# (from the scripted model) shows them as text, and nothing of them runs.  Screenshots go to $B/status-page.png and
# $B/status-page-decision.png (the detail view).
# meshd-test: no-asan
source "$(dirname "$0")/lib.sh"

CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROMIUM" ] || fail "chromium is not installed: the status page's browser test needs it \
(make test installs it with TEST_DEBS; or apt-get install chromium)"
command -v curl > /dev/null || fail "curl is not installed (TEST_DEBS)"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
write_config "  - name: ops
    topics: [metrics]
    mode: act
    fields: { key: [host, metric], value: value, time: ts }
    detector: { kind: ewma, alpha: 0.1, warmup: 30, threshold: 0.999 }
    incident: { cooldown_s: 3600 }
    reason: { backend: scripted, max_steps: 3, workers: 2 }
    actions: [scale_out, escalate]
    fallback: escalate
  - name: shadow
    topics: [metrics]
    mode: observe
    fields: { key: [host, metric], value: value, time: ts }
    detector: { kind: ewma, alpha: 0.1, warmup: 30, threshold: 0.999 }
    reason: { backend: scripted, workers: 1 }
    actions: [escalate]
    fallback: escalate"
# The scripted model's outputs: the demo's, and as many again whose summary and rationale
# are markup and script, to see them shown as text.
python3 - "$ROOT/config/demo-responses.jsonl" "$T/responses.jsonl" <<'PY'
import json, sys
lines = [l for l in open(sys.argv[1]) if l.strip() and not l.startswith("#")]
evil = "<img src=x onerror=\"document.title='pwned'\"></td><script>document.title='pwned'</script>"
with open(sys.argv[2], "w") as out:
    out.writelines(lines)
    for i in range(len(lines)):
        proposal = {"action": "escalate", "params": {"summary": "%d %s" % (i, evil)},
                    "confidence": 0.9, "rationale": "<b>bold</b> " + evil}
        out.write(json.dumps({"content": json.dumps(proposal)}) + "\n")
PY
sed -i "s#file: $ROOT/config/demo-responses.jsonl#file: $T/responses.jsonl#" "$T/meshd.yaml"
grep -q "file: $T/responses.jsonl" "$T/meshd.yaml" || fail "the responses file was not replaced"
cat >> "$T/meshd.yaml" <<YAML
http:
  listen: true
  address: 127.0.0.1
  port: $PORT
YAML
start_meshd
# At 200 messages a second: the stream lasts about 24 s, so the charts get several samples.
"$BIN/mesh-gen" --brokers "$BROKERS" --topic metrics --hosts 4 --metrics 3 --points 400 \
    --rate 200 --labels "$T/labels.json" 2> "$T/gen.log" || fail "mesh-gen failed"
total=$(jq_py 'print(d["events"] + d.get("malformed", 0))' < "$T/labels.json")
wait_handled "$total" 120
ndec=$(MESHCTL --json audit list | jq_py 'print(len(d))')
[ "$ndec" -gt 0 ] || fail "no decision recorded: nothing for the page to show"
# The charts: a sample every 10 s after the start's baseline; some with events in them.
for _ in $(seq 60); do
    n=$(curl -sf "$URL/api/series" | jq_py 'print(sum(s["events_per_s"] > 0 for s in d["samples"]))' 2>/dev/null || echo 0)
    [ "${n:-0}" -ge 2 ] && break
    sleep 0.5
done
[ "${n:-0}" -ge 2 ] || fail "/api/series has not two samples with events after 30 s"

# What the listener serves: the page with its CSP, no inline script, nothing from elsewhere;
# a POST changes nothing (refused).
curl -sfD "$T/headers" "$URL/" -o "$T/index.html" || fail "GET / failed"
grep -qi "^content-security-policy:.*script-src 'self'" "$T/headers" || { cat "$T/headers"; fail "no CSP on /"; }
grep -Eqi '(src|href)="(https?:)?//' "$T/index.html" && fail "the page loads something from elsewhere"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/api/status")
[ "$code" = 405 ] || fail "POST /api/status answered $code, not 405"
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/api/decision?id=nothex")
[ "$code" = 400 ] || fail "a bad id answered $code, not 400"

browse() {  # extra chromium arguments...
    timeout 90 "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run \
        --user-data-dir="$T/chromium" --virtual-time-budget=5000 "$@" 2>> "$T/chromium.log"
}
browse --dump-dom "$URL/" > "$T/dom.html" || { tail -20 "$T/chromium.log"; fail "chromium failed"; }
MESHCTL --json status > "$T/status.json"
python3 - "$T/dom.html" "$T/status.json" <<'PY' || fail "the page does not show what meshd has"
import html.parser, json, sys
class P(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(); self.stack = []; self.agents = []; self.decisions = []
        self.polylines = {}; self.cur = None; self.text = ""; self.badge = ""
        self.in_svg = None; self.in_badge = False
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-agent" in a: self.agents.append(a["data-agent"])
        if tag == "tr" and a.get("class") == "decision": self.cur = {"id": a.get("data-id")}; self.decisions.append(self.cur)
        if tag == "td" and self.cur is not None and "verdict" in (a.get("class") or ""): self.text = ""; self.stack.append("verdict")
        if tag == "svg": self.in_svg = a.get("id")
        if tag == "polyline" and self.in_svg: self.polylines[self.in_svg] = int(a.get("data-points", "0"))
        if tag == "span" and a.get("id") == "freshness": self.in_badge = True
    def handle_endtag(self, tag):
        if tag == "td" and self.stack: self.cur["verdict"] = self.text; self.stack.pop()
        if tag == "tr": self.cur = None
        if tag == "svg": self.in_svg = None
        if tag == "span": self.in_badge = False
    def handle_data(self, data):
        if self.stack: self.text += data
        if self.in_badge: self.badge += data
p = P(); p.feed(open(sys.argv[1]).read())
status = json.load(open(sys.argv[2]))
want = sorted(a["name"] for a in status["agents"])
print("agents shown:", p.agents, "decisions shown:", len(p.decisions), "charts:", p.polylines, "badge:", p.badge)
assert sorted(p.agents) == want, (p.agents, want)
verdicts = {"accepted", "rejected", "budget_exhausted", "model_failed", "shed"}
assert any(d.get("verdict", "").split(" ")[0] in verdicts and d.get("id") for d in p.decisions), p.decisions[:3]
assert p.polylines.get("chart-events", 0) >= 2 and p.polylines.get("chart-tokens", 0) >= 2, p.polylines
assert p.badge.startswith("live"), p.badge
PY

# The detail view of the newest decision, against meshctl audit show.
id=$(MESHCTL --json audit list | jq_py 'print(d[-1]["id"])')
MESHCTL --json audit show "$id" > "$T/show.json" || fail "audit show $id"
browse --dump-dom "$URL/#decision=$id" > "$T/detail.html" || fail "chromium failed on the detail view"
python3 - "$T/detail.html" "$T/show.json" <<'PY' || fail "the detail view does not match meshctl audit show"
import html.parser, json, sys
class P(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(); self.fields = {}; self.key = None; self.steps = []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "dd" and "data-field" in a: self.key = a["data-field"]; self.fields[self.key] = ""
        if tag == "li" and "data-step" in a: self.steps.append(a["data-step"])
    def handle_endtag(self, tag):
        if tag == "dd": self.key = None
    def handle_data(self, data):
        if self.key: self.fields[self.key] += data
p = P(); p.feed(open(sys.argv[1]).read())
show = json.load(open(sys.argv[2]))
d, o = show["decision"], show["outcome"]
print("detail:", {k: p.fields.get(k) for k in ("id", "verdict", "action", "outcome")}, "steps:", p.steps)
assert p.fields.get("id") == d["id"], (p.fields.get("id"), d["id"])
assert p.fields.get("verdict") == d["verdict"], (p.fields.get("verdict"), d["verdict"])
assert p.fields.get("action") == ((d.get("action") or {}).get("name") or "-"), p.fields.get("action")
assert p.fields.get("outcome") == (o["status"] if o else "none recorded"), p.fields.get("outcome")
assert p.steps[:2] == ["event", "incident"] and p.steps[-1] == "outcome", p.steps
assert sum(s.startswith("model call") for s in p.steps) == len(d.get("attempts") or []), p.steps
PY

# A decision whose action carries the markup: the detail view shows it as text, and nothing
# in it ran (no element from it, the title unchanged).
hid=$(python3 - "$T/state/decisions.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("type") == "decision" and "<script>" in json.dumps((r.get("action") or {}).get("params")):
        print(r["id"]); break
PY
)
[ -n "$hid" ] || fail "no decision took a markup proposal (the scripted backend draws at random: run again)"
browse --dump-dom "$URL/#decision=$hid" > "$T/hostile.html" || fail "chromium failed on the hostile decision"
python3 - "$T/hostile.html" <<'PY' || fail "markup from a decision was not shown as text"
import html.parser, sys
class P(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(); self.tags = []; self.text = ""; self.title = ""; self.in_title = False
    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs))); self.in_title = tag == "title"
    def handle_endtag(self, tag): self.in_title = False
    def handle_data(self, data):
        self.text += data
        if self.in_title: self.title += data
p = P(); p.feed(open(sys.argv[1]).read())
imgs = [t for t in p.tags if t[0] in ("img", "b")]
scripts = [a.get("src") for t, a in p.tags if t == "script"]
print("title:", p.title, "scripts:", scripts, "img/b elements:", imgs)
assert p.title == "meshd status", p.title
assert not imgs, imgs
assert scripts == ["app.js"], scripts
assert "<img src=x onerror=" in p.text and "<script>document.title" in p.text, "the markup is not shown"
PY

browse --screenshot="$ROOT/$B/status-page.png" --window-size=1280,1600 "$URL/" > /dev/null \
    || fail "chromium could not take the screenshot"
[ -s "$ROOT/$B/status-page.png" ] || fail "no screenshot"
browse --screenshot="$ROOT/$B/status-page-decision.png" --window-size=1280,1400 \
    "$URL/#decision=$id" > /dev/null || fail "chromium could not take the detail view's screenshot"
note "screenshots: $B/status-page.png ($(stat -c %s "$ROOT/$B/status-page.png") bytes)," \
    "$B/status-page-decision.png ($(stat -c %s "$ROOT/$B/status-page-decision.png") bytes)"
stop_meshd
echo ok
