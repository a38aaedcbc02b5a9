#!/usr/bin/env bash
# sandbox.user: meshd (root) runs its agents under another uid.  The agent really runs as
# that uid, decisions and outcomes are recorded, and that uid can neither read the
# ledger's MAC key nor open the decision log for writing.  meshd prepares what the agent
# needs (state_dir/incidents its own 0700, agents.ipc its own 0600) and refuses, with a
# message naming the path and a fix: to run as non-root with sandbox.user, an agent user
# that cannot search a directory or read a rule file, an incidents directory owned by a
# third uid or replaced by a symbolic link.
# Needs root and useradd (a throwaway system user and group are created and removed).
source "$(dirname "$0")/lib.sh"

if ! command -v useradd > /dev/null || ! command -v groupadd > /dev/null \
   || ! command -v setpriv > /dev/null; then
    echo "SKIP: useradd, groupadd or setpriv not available; cannot make an agent user"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "SKIP: needs root (to create a user and to run meshd as root)"
    exit 0
fi

U=meshd-sbtest
MADE_USER= MADE_GROUP=
remove_account() {
    [ -n "$MADE_USER" ] && userdel "$U" 2>/dev/null || true
    [ -n "$MADE_GROUP" ] && getent group "$U" > /dev/null && groupdel "$U" 2>/dev/null || true
}
trap 'cleanup; remove_account' EXIT
if ! getent group "$U" > /dev/null; then
    groupadd --system "$U" && MADE_GROUP=1
fi
if ! getent passwd "$U" > /dev/null; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
        --gid "$U" "$U" && MADE_USER=1
fi
UID_A=$(id -u "$U"); GID_A=$(getent group "$U" | cut -d: -f3)
note "agent user $U: uid $UID_A gid $GID_A"
AS_AGENT=(setpriv --reuid "$UID_A" --regid "$GID_A" --clear-groups)

write_config "  - name: ops
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    detector: { kind: ewma, alpha: 0.05, warmup: 30, threshold: 0.99 }
    incident: { cooldown_s: 1800 }
    reason: { backend: scripted, workers: 1 }
    actions: [scale_out, escalate]
    fallback: escalate"
# The global rule from a copy we can take away from the agent user.
mkdir "$T/rules"
cp "$ROOT/rules/action_allowlist.lua" "$T/rules/"
sed -i "s|$ROOT/rules/action_allowlist.lua|$T/rules/action_allowlist.lua|" "$T/meshd.yaml"
cat >> "$T/meshd.yaml" <<YAML
sandbox:
  user: $U
  seccomp: kill
YAML

# refused WHAT RC MESSAGE [runner...]: meshd exits RC and says MESSAGE.
refused() {
    local what=$1 want=$2 message=$3 rc=0
    shift 3
    timeout 30 "$@" "$BIN/meshd" --config "$T/meshd.yaml" > "$T/refused.log" 2>&1 || rc=$?
    [ "$rc" = "$want" ] || { cat "$T/refused.log" >&2; fail "$what: meshd exited $rc, want $want"; }
    grep -qF -- "$message" "$T/refused.log" \
        || { cat "$T/refused.log" >&2; fail "$what: no '$message' in its output"; }
    note "$what: $(grep -F -- "$message" "$T/refused.log" | head -1 | cut -c1-240)"
}

# 1. meshd not root, sandbox.user set: refused at --check-config and at start.
chmod 0711 "$T"
rc=0; "${AS_AGENT[@]}" "$BIN/meshd" --check-config "$T/meshd.yaml" > "$T/check.log" 2>&1 || rc=$?
[ "$rc" = 1 ] || { cat "$T/check.log"; fail "--check-config as non-root: exit $rc, want 1"; }
grep -qF "sandbox.user: switching the agents to user '$U' needs meshd to run as root" \
    "$T/check.log" || { cat "$T/check.log"; fail "--check-config as non-root: no clear error"; }
refused "meshd as uid $UID_A" 1 "needs meshd to run as root, and it runs as uid $UID_A" \
    "${AS_AGENT[@]}"
[ ! -e "$T/run" ] || fail "a refused meshd created the runtime directory"

# 2. the agent user cannot search a directory on the way: named, with a fix.
chmod 0700 "$T"
refused "scratch dir 0700" 1 "cannot search $T (mode 0700, owner uid 0 gid 0), on the way to"
grep -qF "chgrp $GID_A $T && chmod g+x $T" "$T/refused.log" || fail "no fix suggested"
rc=0; "$BIN/meshd" --check-config "$T/meshd.yaml" > "$T/check.log" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "--check-config: exit $rc with an unreachable config, want 1"
chmod 0711 "$T"

# 3. a rule file the agent user cannot read.
chmod 0600 "$T/rules/action_allowlist.lua"
refused "rule file 0600" 1 "cannot read the rule file $T/rules/action_allowlist.lua (mode 0600"
chmod 0644 "$T/rules/action_allowlist.lua"
"$BIN/meshd" --check-config "$T/meshd.yaml" > "$T/check.log" 2>&1 \
    || { cat "$T/check.log"; fail "--check-config refuses a config the agent user can read"; }

# 4. state_dir/incidents owned by a third uid, or a symbolic link: refused, not followed.
mkdir -m 0755 "$T/state"
mkdir -m 0700 "$T/state/incidents"; chown nobody "$T/state/incidents"
refused "incidents owned by nobody" 1 \
    "is owned by uid $(id -u nobody), neither root nor the agents' user"
rm -rf "$T/state/incidents"
mkdir -m 0700 "$T/elsewhere"
ln -s "$T/elsewhere" "$T/state/incidents"
refused "incidents is a symlink" 1 \
    "$T/state/incidents exists and is not a directory (a symbolic link"
[ "$(stat -c %u "$T/elsewhere")" = 0 ] || fail "meshd followed the symlink and chowned its target"
rm -f "$T/state/incidents"; rm -rf "$T/state" "$T/run"

# 5. the real thing.  A root-owned incidents directory left by a meshd without sandbox.user
#    is taken over with its state files; a file with a second link (not one of them) is not.
#    state_dir exists, root's, 0750: the operator gave it the agents' group (the fix the
#    check asks for); runtime_dir is created by meshd, with that group.
mkdir -m 0750 "$T/state" "$T/state/incidents"
chgrp "$GID_A" "$T/state"
echo '{}' > "$T/state/incidents/old.json"
echo secret > "$T/hardlinked"; chmod 0600 "$T/hardlinked"
ln "$T/hardlinked" "$T/state/incidents/linked.json"
start_meshd
grep -q "sandbox.user: 1 state file(s) in $T/state/incidents given to user '$U'" "$T/meshd.log" \
    || fail "the root-owned state file was not given to the agent user"
[ "$(stat -c %u "$T/state/incidents/old.json")" = "$UID_A" ] || fail "old.json not the agent's"
[ "$(stat -c %u "$T/hardlinked")" = 0 ] || fail "a file with two links was given away"

pid=$(status_json | jq_py 'print(d["agents"][0]["pid"])')
uid_line=$(grep '^Uid:' "/proc/$pid/status")
gid_line=$(grep '^Gid:' "/proc/$pid/status")
note "agent pid $pid: $uid_line / $gid_line"
read -r _ r e s f <<< "$uid_line"
[ "$r $e $s $f" = "$UID_A $UID_A $UID_A $UID_A" ] || fail "agent runs as '$uid_line', want $UID_A"
read -r _ r e s f <<< "$gid_line"
[ "$r $e $s $f" = "$GID_A $GID_A $GID_A $GID_A" ] || fail "agent group '$gid_line', want $GID_A"
[ -z "$(grep '^Groups:' "/proc/$pid/status" | cut -d: -f2 | tr -d ' \t')" ] \
    || fail "agent kept supplementary groups: $(grep '^Groups:' "/proc/$pid/status")"
grep -qE "confined: .*uid $UID_A gid $GID_A as $U" "$T/meshd.log" || fail "no confinement line"

for f in "run:0:$GID_A:750" "state:0:$GID_A:750" \
         "state/incidents:$UID_A:$GID_A:700" "run/agents.ipc:$UID_A::600" \
         "run/control.ipc:0:0:660" "state/ledger.key:0:0:600" "state/decisions.jsonl:0:0:640"; do
    IFS=: read -r path want_u want_g want_m _ <<< "$f"
    got=$(stat -c '%u %g %a' "$T/$path")
    note "$path: uid gid mode = $got"
    read -r gu gg gm <<< "$got"
    [ "$gu" = "$want_u" ] || fail "$path owned by uid $gu, want $want_u"
    [ -z "$want_g" ] || [ "$gg" = "$want_g" ] || fail "$path group $gg, want $want_g"
    [ "$gm" = "$want_m" ] || fail "$path mode $gm, want $want_m"
done

"$BIN/mesh-gen" --brokers "$BROKERS" --topic metrics --hosts 2 --metrics 2 --points 600 \
    --labels "$T/labels.json" 2> "$T/gen.log" || fail "mesh-gen failed"
total=$(jq_py 'print(d["events"] + d["malformed"])' < "$T/labels.json")
wait_handled "$total" 120

# What the agents' uid can and cannot do while meshd runs.
"${AS_AGENT[@]}" cat "$T/state/ledger.key" > /dev/null 2>&1 \
    && fail "the agent user can read ledger.key"
"${AS_AGENT[@]}" sh -c "exec 3>>'$T/state/decisions.jsonl'" 2>/dev/null \
    && fail "the agent user can open the decision log for writing"
"${AS_AGENT[@]}" sh -c "exec 3<'$T/state/decisions.jsonl'" 2>/dev/null \
    && fail "the agent user can read the decision log (want: root:root 0640)"
"${AS_AGENT[@]}" sh -c "echo x > '$T/state/planted'" 2>/dev/null \
    && fail "the agent user can create files in state_dir"
nobody_can=$(setpriv --reuid "$(id -u nobody)" --regid "$(id -g nobody)" --clear-groups \
    python3 -c "import socket,sys
s=socket.socket(socket.AF_UNIX)
try: s.connect(sys.argv[1]); print('yes')
except OSError: print('no')" "$T/run/agents.ipc" 2>/dev/null || echo no)
[ "$nobody_can" = no ] || fail "another unprivileged user can connect to agents.ipc"
note "agent uid: ledger.key unreadable, decision log not writable, state_dir not writable"
note "another user cannot connect to agents.ipc"

# Before every restart of an agent, incidents/ is checked and made the agents' again: a
# third uid's stops the start (logged, retried with backoff); once fixed (here: the agents'
# user's again, but 0755), the agent starts and the directory is 0700 again.
pid=$(status_json | jq_py 'print(d["agents"][0]["pid"])')
chown nobody "$T/state/incidents"
kill -KILL "$pid"
for _ in $(seq 100); do
    grep -q "cannot start agent ops: its state directory is not ready" "$T/meshd.log" && break
    sleep 0.1
done
grep -q "cannot start agent ops: its state directory is not ready" "$T/meshd.log" \
    || fail "an agent was started with incidents/ owned by a third uid"
chown "$UID_A" "$T/state/incidents"; chmod 0755 "$T/state/incidents"
for _ in $(seq 100); do
    read -r npid state < <(status_json | jq_py 'a=d["agents"][0]; print(a["pid"], a["state"])' \
                          2>/dev/null || echo "0 x")
    [ "$npid" != 0 ] && [ "$npid" != "$pid" ] && [ "$state" = running ] && break
    sleep 0.1
done
[ "$state" = running ] || fail "the agent did not come back once incidents/ was fixed"
[ "$(stat -c %a "$T/state/incidents")" = 700 ] || fail "incidents/ not 0700 again after restart"
note "restart: refused while incidents/ was nobody's, back as pid $npid once fixed, 0700 again"

# A reload that names a file the agents' user cannot read, or changes the user: refused,
# the running config stays; a valid one is accepted.
chmod 0600 "$T/rules/action_allowlist.lua"
if out=$(MESHCTL reload 2>&1); then fail "reload accepted a rule file the agents cannot read"; fi
echo "$out" | grep -qF "cannot read the rule file $T/rules/action_allowlist.lua" \
    || { echo "$out"; fail "the reload error does not name the unreadable rule file"; }
chmod 0644 "$T/rules/action_allowlist.lua"
sed -i "s/^  user: $U\$/  user: nobody/" "$T/meshd.yaml"
if out=$(MESHCTL reload 2>&1); then fail "reload changed sandbox.user"; fi
echo "$out" | grep -qF "sandbox.user or sandbox.group changed: restart meshd" \
    || { echo "$out"; fail "the reload error does not say sandbox.user changed"; }
sed -i "s/^  user: nobody\$/  user: $U/" "$T/meshd.yaml"
MESHCTL reload > /dev/null || fail "a valid reload was refused"
note "reload: unreadable rule and changed user refused, valid reload accepted"

stop_meshd
ls -la "$T/state/incidents" | sed 's/^/    /'
[ "$(stat -c %u "$T/state/incidents/ops.json")" = "$UID_A" ] \
    || fail "the agent did not write its state as $U"
MESHCTL --log "$T/state/decisions.jsonl" audit verify --key "$T/state/ledger.key" > /dev/null \
    || fail "the decision log does not verify"
python3 - "$T/state/decisions.jsonl" <<'PY'
import json, sys, collections
dec, out = collections.Counter(), collections.Counter()
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("type") == "decision": dec[r["id"]] += 1
    if r.get("type") == "outcome": out[r["id"]] += 1
missing = [i for i in dec if i not in out]
print(f"{len(dec)} decisions, {len(out)} outcomes, {len(missing)} without outcome")
assert dec, "no decisions recorded"
assert not missing, f"decisions without outcome: {missing[:3]}"
assert all(n == 1 for n in list(dec.values()) + list(out.values())), "recorded twice"
PY
echo ok
