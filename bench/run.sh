#!/usr/bin/env bash
# make bench: run every benchmark binary in $B/bench/ and every bench/*.sh except
# this one and nab.sh; each prints its own table.  BENCH=pattern runs a subset.
cd "$(dirname "$0")/.."
B=${B:-build}
export B
for b in "$B"/bench/* bench/*.sh; do
    name=$(basename "$b")
    case "$name" in run.sh|nab.sh) continue ;; esac
    [ -x "$b" ] || [ "${b##*.}" = sh ] || continue
    if [ -n "${BENCH:-}" ] && [[ "$name" != *$BENCH* ]]; then continue; fi
    echo "== $name"
    if [ "${b##*.}" = sh ]; then bash "$b"; else "$b"; fi || { echo "bench $name failed"; exit 1; }
    echo
done
