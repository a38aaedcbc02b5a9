#!/usr/bin/env bash
# The runner behind `make fuzz` and `make fuzz-smoke`: each libFuzzer target named on
# the command line, one after the other, for FUZZ_SECONDS each (default 600), under
# the ASan + UBSan build in $B (default build-fuzz).  The seed corpus
# tests/fuzz/corpus/<target>/ is read, never written: new inputs go to
# $B/fuzz-corpus/<target>/, crashes to $B/fuzz-artifacts/<target>/, the log to
# $B/fuzz-logs/<target>.log.  Prints one line per target (executions, exec/s, final
# cov and ft) and exits non-zero if any target found something.
cd "$(dirname "$0")/../.."
B=${B:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-600}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
for t in "$@"; do
    work="$B/fuzz-corpus/$t" art="$B/fuzz-artifacts/$t/" log="$B/fuzz-logs/$t.log"
    mkdir -p "$work" "$art" "$(dirname "$log")"
    t0=$(date +%s)
    "$B/fuzz/fuzz_$t" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 -artifact_prefix="$art" \
        "$work" "tests/fuzz/corpus/$t" > "$log" 2>&1
    rc=$?
    secs=$(( $(date +%s) - t0 ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<< "$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<< "$last")
    if [ "$rc" -eq 0 ]; then
        printf 'PASS fuzz/%-10s %5ss %10s execs %6s/s cov %5s ft %6s\n' "$t" "$secs" \
            "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}"
    else
        failed+=("$t")
        printf 'FAIL fuzz/%-10s after %ss (log: %s, inputs: %s)\n' "$t" "$secs" "$log" "$art"
        grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -10 | sed 's/^/    /'
    fi
done
echo
if [ ${#failed[@]} -gt 0 ]; then echo "findings: ${failed[*]}"; exit 1; fi
echo "$# targets, no findings"
