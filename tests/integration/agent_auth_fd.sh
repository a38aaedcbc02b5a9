#!/usr/bin/env bash
# mesh-agent's --auth-fd: missing, not a number, a descriptor with too few or too many
# bytes are refused with exit 64 and a message that says so, before the config is read.
# (A full token that is wrong is refused by the supervisor: socket_identity.sh.)
source "$(dirname "$0")/lib.sh"
ARGS=(--config "$T/none.yaml" --agent ops --endpoint "ipc://$T/agents.ipc" --brokers 127.0.0.1:9)

expect64() {   # what, message, command...
    local what=$1 message=$2 rc=0; shift 2
    "$@" 2> "$T/err.log" || rc=$?
    [ "$rc" = 64 ] || { cat "$T/err.log" >&2; fail "$what: exit $rc, want 64"; }
    grep -qF -- "$message" "$T/err.log" || { cat "$T/err.log" >&2; fail "$what: no '$message'"; }
    note "$what: $(head -1 "$T/err.log")"
}
expect64 "no --auth-fd" "--auth-fd N" "$BIN/mesh-agent" "${ARGS[@]}"
expect64 "not a number" "is not a descriptor number" "$BIN/mesh-agent" "${ARGS[@]}" --auth-fd x7
expect64 "stdin" "is not a descriptor number" "$BIN/mesh-agent" "${ARGS[@]}" --auth-fd 0
expect64 "closed descriptor" "held less than a 32-byte token: Bad file descriptor" \
    "$BIN/mesh-agent" "${ARGS[@]}" --auth-fd 9
exec 7< <(printf '0123456789')
expect64 "short token" "held less than a 32-byte token" "$BIN/mesh-agent" "${ARGS[@]}" --auth-fd 7
exec 7<&-
exec 7< <(head -c 40 /dev/zero)
expect64 "long token" "held more than a 32-byte token" "$BIN/mesh-agent" "${ARGS[@]}" --auth-fd 7
exec 7<&-
# a good token gets past the check: the next failure is the missing config (exit 78)
exec 7< <(head -c 32 /dev/zero)
rc=0; "$BIN/mesh-agent" "${ARGS[@]}" --auth-fd 7 2> "$T/err.log" || rc=$?
exec 7<&-
[ "$rc" = 78 ] || { cat "$T/err.log" >&2; fail "a 32-byte token: exit $rc, want 78 (config)"; }
echo ok
