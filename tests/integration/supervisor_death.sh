#!/usr/bin/env bash
# SIGKILL meshd: its agents die with it, killed by the kernel (PR_SET_PDEATHSIG, so by
# SIGKILL) within 1 s, instead of noticing the lost parent themselves and exiting.
# meshd runs under a small reaper (a child subreaper) so that the orphaned agents are
# reaped here and how they ended can be read.
source "$(dirname "$0")/lib.sh"

write_config "  - name: orphan
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    reason: { backend: scripted, workers: 2 }
    actions: [scale_out, escalate]
    fallback: escalate
    replicas: 2"

# The reaper: becomes a subreaper, starts meshd, then reaps every child (meshd and the
# agents it leaves behind) and writes "pid how wall-clock-ns" per child, for 30 s at most.
python3 - "$BIN/meshd" "$T" <<'PY' &
import ctypes, os, signal, subprocess, sys, time
meshd, t = sys.argv[1], sys.argv[2]
PR_SET_CHILD_SUBREAPER = 36
assert ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
with open(f"{t}/meshd.log", "w") as log:
    p = subprocess.Popen([meshd, "--config", f"{t}/meshd.yaml"], stderr=log)
open(f"{t}/meshd.pid", "w").write(str(p.pid))
deadline = time.time() + 30
with open(f"{t}/reaped", "w", buffering=1) as out:
    while time.time() < deadline:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.005)
            continue
        how = (f"signal{os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
               else f"exit{os.WEXITSTATUS(status)}")
        out.write(f"{pid} {how} {time.time_ns()}\n")
PY
REAPER=$!
PIDS+=("$REAPER")
for _ in $(seq 50); do [ -s "$T/meshd.pid" ] && break; sleep 0.1; done
MESHD=$(cat "$T/meshd.pid"); PIDS+=("$MESHD")
for _ in $(seq 150); do
    [ "$(status_json | jq_py 'print(d["daemon"]["ready"])' 2>/dev/null)" = True ] && break
    sleep 0.2
done
[ "$(status_json | jq_py 'print(d["daemon"]["ready"])')" = True ] || fail "meshd not ready"
pids=$(status_json | jq_py 'print(" ".join(str(a["pid"]) for a in d["agents"]))')
note "agents: $pids"

t0=$(date +%s%N)
kill -KILL "$MESHD"
for _ in $(seq 300); do
    n=0; for p in $pids; do grep -q "^$p " "$T/reaped" && n=$((n+1)); done
    [ "$n" = 2 ] && break
    sleep 0.01
done
cat "$T/reaped"
for p in $pids; do
    read -r _ how at < <(grep "^$p " "$T/reaped") || fail "agent $p not reaped within 3 s"
    ms=$(( (at - t0) / 1000000 ))
    note "agent $p: $how, $ms ms after meshd was killed"
    [ "$how" = signal9 ] || fail "agent $p ended by $how, not by SIGKILL from its parent's death"
    [ "$ms" -le 1000 ] || fail "agent $p took $ms ms to die (limit 1000)"
done
echo ok
