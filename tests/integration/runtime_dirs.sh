#!/usr/bin/env bash
# The runtime and state directories: created 0750 whatever the umask, with the sockets
# 0600 (agents.ipc) and 0660 (control.ipc); a pre-existing one that is not a directory,
# not owned by meshd's user, or writable by group or others is refused with a message
# naming it and the fix, before anything starts.
source "$(dirname "$0")/lib.sh"

write_config "  - name: ops
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    detector: { kind: ewma, alpha: 0.05, warmup: 30, threshold: 0.99 }
    reason: { backend: scripted, workers: 1 }
    actions: [scale_out, escalate]
    fallback: escalate"

# refused: run meshd, expect exit 1 and MESSAGE in its log
refused() {
    local what=$1 message=$2 rc=0
    timeout 20 "$BIN/meshd" --config "$T/meshd.yaml" 2> "$T/refused.log" || rc=$?
    [ "$rc" = 1 ] || { cat "$T/refused.log" >&2; fail "$what: meshd exited $rc, want 1"; }
    grep -qF -- "$message" "$T/refused.log" || { cat "$T/refused.log" >&2; fail "$what: no '$message' in the log"; }
    note "$what: $(grep -F -- "$message" "$T/refused.log" | head -1)"
}

touch "$T/run"
refused "runtime_dir is a file" "daemon.runtime_dir: $T/run exists and is not a directory"
rm "$T/run"

mkdir -m 0777 "$T/run"; chmod 0777 "$T/run"
refused "runtime_dir mode 0777" "daemon.runtime_dir: $T/run is writable by group or others (mode 0777)"
chmod 0770 "$T/run"
refused "runtime_dir mode 0770" "chmod go-w $T/run"
chmod 0700 "$T/run"; chown nobody "$T/run"
refused "runtime_dir owned by nobody" "daemon.runtime_dir: $T/run is owned by uid $(id -u nobody)"
rm -rf "$T/run"

mkdir -m 0757 "$T/state"; chmod 0757 "$T/state"
refused "state_dir writable by others" "daemon.state_dir: $T/state is writable by group or others"
rm -rf "$T/state"

# created fresh under a umask that would make everything world-writable
umask 000
start_meshd
umask 022
for f in run:750 state:750 run/agents.ipc:600 run/control.ipc:660; do
    mode=$(stat -c %a "$T/${f%%:*}")
    note "$T/${f%%:*}: $mode"
    [ "$mode" = "${f##*:}" ] || fail "${f%%:*} has mode $mode, want ${f##*:}"
done
stop_meshd
echo ok
