#!/usr/bin/env bash
# Structured logs in the journal (docs/logging.md): meshd --log journal, a demo-like
# pipeline, and `journalctl MESH_DECISION_ID=<id>` finds the agent's lines about that
# decision with MESH_AGENT, MESH_SERIES, CODE_FILE/CODE_LINE/CODE_FUNC and PRIORITY; the
# supervisor's lines carry MESH_TAG=supervisor; nothing of it is on stderr.
# No systemd as PID 1 is needed: the test runs its own systemd-journald in a private
# mount namespace (a tmpfs on /run, and on /var/log/journal if there is one, so the host's
# journal is neither read nor written) and reads it with journalctl -D.  Without root,
# unshare or systemd-journald it prints "SKIP: ..." and exits 0.
# meshd-test: no-asan
set -euo pipefail
if [ -z "${MESHD_JOURNALD_NS:-}" ]; then
    skip() { echo "SKIP: $*"; exit 0; }
    [ "$(id -u)" = 0 ] || skip "needs root for a private mount namespace"
    command -v unshare > /dev/null || skip "no unshare (util-linux)"
    [ -x /lib/systemd/systemd-journald ] || skip "no /lib/systemd/systemd-journald (package systemd)"
    command -v journalctl > /dev/null || skip "no journalctl"
    unshare -m --propagation private true 2> /dev/null || skip "cannot make a mount namespace here"
    exec unshare -m --propagation private env MESHD_JOURNALD_NS=1 bash "$0" "$@"
fi
source "$(dirname "$0")/lib.sh"

# Our own journald: the native socket sd_journal_sendv writes to is
# /run/systemd/journal/socket, whichever journald listens there.
mount -t tmpfs -o mode=0755 meshd-test-run /run
[ -d /var/log/journal ] && mount -t tmpfs meshd-test-journal /var/log/journal
mkdir -p /run/systemd/journal /run/log/journal
/lib/systemd/systemd-journald > "$T/journald.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -S /run/systemd/journal/socket ] && break; sleep 0.05; done
[ -S /run/systemd/journal/socket ] || { cat "$T/journald.log"; fail "journald did not start"; }
J() { journalctl -D /run/log/journal --no-pager "$@"; }

write_config "  - name: watcher
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    incident: { cooldown_s: 60 }
    reason: { backend: scripted }
    actions: [scale_out, escalate]
    fallback: escalate"
"$BIN/meshd" --config "$T/meshd.yaml" --log journal 2> "$T/meshd.log" &
MESHD=$!
PIDS+=("$MESHD")
for _ in $(seq 150); do
    [ "$(status_json | jq_py 'print(d["daemon"]["ready"])' 2>/dev/null)" = True ] && break
    kill -0 "$MESHD" 2>/dev/null || fail "meshd exited during start"
    sleep 0.2
done
BROKERS=$(cat "$T/run/brokers")
"$BIN/mesh-gen" --brokers "$BROKERS" --topic metrics --hosts 3 --metrics 2 --points 300 \
    --labels "$T/labels.json" 2> "$T/gen.log" || fail "mesh-gen failed"
wait_handled "$(jq_py 'print(d["events"] + d.get("malformed", 0))' < "$T/labels.json")" 90
stop_meshd

# A decision of the agent, from the decision log (what meshctl audit list shows).
MESHCTL --json audit list --agent watcher > "$T/decisions.json"
# One that fell back if there is one: reason.c logs "decision <id>: ..." only for those.
id=$(jq_py 'f=[x for x in d if x.get("verdict") != "accepted"]; print((f or d)[0]["id"])' \
     < "$T/decisions.json") || fail "no decision was made"
note "decision $id"
J -o json "MESH_DECISION_ID=$id" > "$T/entries.json"
J -o verbose "MESH_DECISION_ID=$id" | head -40
python3 - "$T/entries.json" "$id" "$T/decisions.json" <<'PY'
import json, sys
entries = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
want = sys.argv[2]
decision = next(d for d in json.load(open(sys.argv[3])) if d["id"] == want)
assert entries, "journalctl MESH_DECISION_ID=%s found nothing" % want
for e in entries:
    assert e["MESH_DECISION_ID"] == want, e
    assert e["MESH_AGENT"] == "watcher", e
    assert e["SYSLOG_IDENTIFIER"] == "meshd", e
    assert e["PRIORITY"] in "34567", e
    assert e["CODE_FILE"].startswith("agents/"), e
    assert int(e["CODE_LINE"]) > 0 and e["CODE_FUNC"], e
    assert "\n" not in e["MESSAGE"], e
if decision.get("verdict") != "accepted":
    assert any(e["MESSAGE"].startswith("decision %s" % want[:12]) for e in entries), \
        [e["MESSAGE"] for e in entries]
assert any("MESH_SERIES" in e for e in entries), entries
print("%d journal entries for decision %s, from %s" % (
    len(entries), want[:12], sorted({e["CODE_FILE"] + ":" + e["CODE_FUNC"] for e in entries})))
PY
# Lines logged outside any decision carry none of its fields; the supervisor's are there.
J -o json MESH_TAG=supervisor | python3 -c '
import json, sys
es = [json.loads(l) for l in sys.stdin if l.strip()]
assert es, "no supervisor lines in the journal"
assert not any("MESH_DECISION_ID" in e for e in es), "a supervisor line with a decision id"
assert any("started" in e["MESSAGE"] for e in es), [e["MESSAGE"] for e in es][:5]
print(len(es), "supervisor lines")'
# The journal had them: stderr has none of the pipeline's lines.
grep -q "decision ${id:0:12}" "$T/meshd.log" && fail "decision lines went to stderr as well"
grep -q "meshd\[supervisor\]: meshd .* started" "$T/meshd.log" && fail "supervisor lines went to stderr"
echo ok
