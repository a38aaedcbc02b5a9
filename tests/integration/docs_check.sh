#!/usr/bin/env bash
# The docs name only what exists and their marked examples run: every meshctl command
# and subcommand named in README.md, docs/*.md and docs/man/* is one meshctl has, every
# config key named in a code span is one `meshd --list-config-keys` prints, meshd.yaml(5)
# documents every key that prints, and every line of a ```sh doc-test block exits 0.
# tests/helpers/docs_check.py does the checking; each problem names the file, the line
# and the command or key.
# meshd-test: no-asan
source "$(dirname "$0")/lib.sh"

python3 tests/helpers/docs_check.py "$BIN" > "$T/docs_check.txt" 2>&1 || {
    cat "$T/docs_check.txt" >&2
    fail "the docs name what does not exist, or an example failed (above)"
}
cat "$T/docs_check.txt"
# Not vacuous: the docs hold marked examples, and the man page's keys were all seen.
grep -qE '; [1-9][0-9]* examples run: ok$' "$T/docs_check.txt" || fail "no doc-test example ran"
grep -qE '[1-9][0-9]* mentions of meshctl commands and [1-9][0-9]* of config keys' \
    "$T/docs_check.txt" || fail "no meshctl command or config key was checked"
echo ok
