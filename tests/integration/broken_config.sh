#!/usr/bin/env bash
# A broken config is refused with its line and column, by --check-config and at start.
source "$(dirname "$0")/lib.sh"

write_config "  - name: a
    topics: [metrics]
    fields: { key: [host], value: value }
    detector: { kind: ewma, alpha: 1.5 }
    reason: { backend: nowhere }
    actions: [escalate]
    fallback: escalate
    colour: blue"

out=$("$BIN/meshd" --check-config "$T/meshd.yaml" 2>&1) && fail "--check-config accepted a broken config"
echo "$out"
echo "$out" | grep -Eq "meshd.yaml:[0-9]+:[0-9]+: .*alpha" || fail "no FILE:LINE:COL for alpha"
echo "$out" | grep -Eq "meshd.yaml:[0-9]+:[0-9]+: .*colour" || fail "no FILE:LINE:COL for the unknown key"
echo "$out" | grep -Eq "meshd.yaml:[0-9]+:[0-9]+: .*nowhere" || fail "no FILE:LINE:COL for the unknown backend"

# The exact position of the unknown key: line of "colour", column 5.
line=$(grep -n 'colour: blue' "$T/meshd.yaml" | cut -d: -f1)
echo "$out" | grep -q "meshd.yaml:$line:5: " || fail "unknown key not reported at $line:5"

# YAML syntax error.
printf 'daemon:\n  runtime_dir: [unclosed\n' > "$T/syntax.yaml"
out=$("$BIN/meshd" --check-config "$T/syntax.yaml" 2>&1) && fail "syntax error accepted"
echo "$out" | grep -Eq "syntax.yaml:[0-9]+:[0-9]+: " || fail "syntax error without position"

# A rule file that does not compile, and one that does not exist.
write_config "  - name: a
    topics: [metrics]
    fields: { key: [host] }
    reason: { backend: scripted }
    actions: [escalate]
    fallback: escalate
    rules: [$T/bad.lua, $T/missing.lua]"
printf 'return { name = "bad", check = function(p, c) return true end\n' > "$T/bad.lua"
out=$("$BIN/meshd" --check-config "$T/meshd.yaml" 2>&1) && fail "a non-compiling rule was accepted"
echo "$out"
echo "$out" | grep -Eq "meshd.yaml:[0-9]+:[0-9]+: rule .*bad.lua" || fail "bad rule not reported with position"
echo "$out" | grep -Eq "meshd.yaml:[0-9]+:[0-9]+: rule .*missing.lua" || fail "missing rule not reported"

# meshd itself refuses to start, and says why.
"$BIN/meshd" --config "$T/meshd.yaml" 2> "$T/start.err" && fail "meshd started with a broken config"
grep -q "bad.lua" "$T/start.err" || fail "meshd did not say why it refused"
[ ! -e "$T/run/agents.ipc" ] || fail "meshd got as far as binding its sockets"

# The shipped configs are valid.
"$BIN/meshd" --check-config config/demo.yaml
"$BIN/meshd" --check-config config/meshd.yaml
echo "ok"
