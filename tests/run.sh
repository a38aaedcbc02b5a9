#!/usr/bin/env bash
# The test runner behind `make test` and `make asan`: every unit test binary, every
# shipped rule's tests, every integration test.  Prints one line per test and ends
# with "N passed, M failed"; exits non-zero if anything failed.
# B=build (or build-asan) selects the binaries; ONLY=pattern runs a subset.
# An integration test whose header holds the line "# meshd-test: no-asan" runs only in
# the plain build (it exercises packaging, documents or an outside program rather than
# meshd's memory; under ASan it would only cost CI time); with B=build-asan it is listed
# as skipped.
cd "$(dirname "$0")/.."
B=${B:-build}
export B
passed=0; failed=0; failures=()
mkdir -p "$B/test-logs"

run() {   # name, command...
    local name=$1; shift
    if [ -n "${ONLY:-}" ] && [[ "$name" != *$ONLY* ]]; then return; fi
    local log="$B/test-logs/${name//\//_}.log" t0=$(date +%s)
    if "$@" > "$log" 2>&1; then
        passed=$((passed+1)); printf 'PASS %-44s %3ss\n' "$name" "$(( $(date +%s) - t0 ))"
    else
        failed=$((failed+1)); failures+=("$name"); printf 'FAIL %-44s (log: %s)\n' "$name" "$log"
        tail -25 "$log" | sed 's/^/    /'
    fi
}

for t in "$B"/tests/test_*; do
    [ -x "$t" ] && run "unit/$(basename "$t")" timeout 300 "$t"
done
run "rules/shipped" "$B/meshctl" rules test rules/
run "helpers/fake_llm_check" timeout 300 bash tests/helpers/fake_llm_check.sh
for t in tests/integration/*.sh; do
    [ "$(basename "$t")" = lib.sh ] && continue
    [ -f "$t" ] || continue
    if [[ "$B" == *asan* ]] && head -20 "$t" | grep -q '^# meshd-test: no-asan'; then
        if [ -z "${ONLY:-}" ] || [[ "integration/$(basename "$t" .sh)" == *$ONLY* ]]; then
            printf 'SKIP %-44s (no-asan)\n' "integration/$(basename "$t" .sh)"
        fi
        continue
    fi
    run "integration/$(basename "$t" .sh)" timeout 600 bash "$t"
done

echo
if [ "$failed" -gt 0 ]; then echo "failed: ${failures[*]}"; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
