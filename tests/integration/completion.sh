#!/usr/bin/env bash
# meshctl's bash completion (contrib/meshctl.bash-completion), sourced in a plain bash
# as bash-completion would load it: subcommands, audit/rules/silence subcommands,
# options per subcommand, option values; and every subcommand it offers is one that
# meshctl's own usage names, so the two cannot drift apart.
# meshd-test: no-asan
source "$(dirname "$0")/lib.sh"

# Completions for a command line; the last word is the one being completed.
complete_words() {
    bash --norc --noprofile -c '
        . contrib/meshctl.bash-completion
        COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
        _meshctl
        printf "%s\n" "${COMPREPLY[@]}"' meshctl-completion "$@" | sort | tr '\n' ' ' | sed 's/ $//'
}
expect() {     # expected words, then the command line
    local want=$1; shift
    local got
    got=$(complete_words "$@")
    [ "$got" = "$want" ] || fail "'$*': completed to '$got', expected '$want'"
    note "'$*' -> $got"
}

expect "audit"                          meshctl au
expect "approvals approve"              meshctl appr
expect "silence status summary"         meshctl s
expect "verify verify-proof"            meshctl audit ver
expect "verify verify-proof"            meshctl --json --config /etc/meshd/meshd.yaml audit ver
expect "--action"                     meshctl audit list --agent x --v --ac
expect "--action --agent"               meshctl audit list --a
expect "--verdict"                      meshctl audit list --ver
expect "model_failed"                   meshctl audit list --verdict mo
expect "backend"                        meshctl audit stats --by ba
expect "--config --csv"                meshctl audit stats --c
expect "check"                          meshctl rules ch
expect "add"                            meshctl silence a
expect "--match"                        meshctl silence add --m
expect "--all"                          meshctl silence list --a
expect "--comment --config"             meshctl approve 0123abcd --co
expect "--head-advisory --help"         meshctl audit verify --he
# a file argument: --config offers files
mkdir -p "$T/d" && touch "$T/d/meshd.yaml"
expect "$T/d/meshd.yaml"                meshctl --config "$T/d/mes"

# Every top-level and audit subcommand meshctl's usage lists is offered, and no other.
usage=$("$BIN/meshctl" --help 2>&1 || true)
offered=$(complete_words meshctl "")
for c in $offered; do
    echo "$usage" | grep -Eq "^  ($c|[a-z|-]*\b$c\b)" || fail "completion offers '$c', meshctl's usage has no such command"
done
for c in $(echo "$usage" | sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p' | sort -u); do
    case " $offered " in *" $c "*) ;; *) fail "meshctl's usage lists '$c', completion does not offer it";; esac
done
audit_offered=$(complete_words meshctl audit "")
for c in $(echo "$usage" | sed -n 's/^  audit \([a-z][a-z-]*\).*/\1/p' | sort -u); do
    case " $audit_offered " in *" $c "*) ;; *) fail "usage lists 'audit $c', completion does not offer it";; esac
done
echo ok
