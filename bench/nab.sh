#!/usr/bin/env bash
# make nab: meshd's detectors on a NAB-layout corpus, scored by our NAB scorer.
#
#   NAB      data root: $NAB/data/<category>/<file>.csv, $NAB/labels/combined_windows.json
#            (default ../shared/nab); published results, if any, in $NAB/results/<detector>/
#   NAB_OUT  where our per-row results go (default $B/nab), NAB's layout
#   B        build directory (default build)
#
# 1. Checks the scorer: scores the published detectors in $NAB/results and compares
#    them with the figures in $NAB/README.md (must agree within 0.05).
# 2. Runs each agent of bench/nab_config.yaml (one per detector family) with
#    mesh-nab run, exactly as mesh-agent would run that detector.
# 3. Prints standard / reward_low_FP / reward_low_FN for ours beside the published
#    ones (the README's table, same files).
# 4. Honest scores: mesh-nab cv with the grid bench/nab_cv.yaml (one detector run per
#    setting; setting and threshold chosen on training files only) prints, per
#    family and for the learned combination: whole-set, 5-fold CV (mean and range over
#    CV_REPEATS differently seeded splits), leave-one-category-out, the gap whole - CV,
#    the score at one fixed threshold, and at the detector's own configured threshold.
#    CV_SEED (default 14) and CV_REPEATS (default 10) fix the folds.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-build}
NAB=${NAB:-../shared/nab}
NAB_OUT=${NAB_OUT:-$B/nab}
NABBIN="$B/mesh-nab"
CONFIG=bench/nab_config.yaml
GRID=bench/nab_cv.yaml
CV_SEED=${CV_SEED:-14}
CV_REPEATS=${CV_REPEATS:-10}
DETECTORS="ewma mad cusum seasonal knn ensemble"

[ -x "$NABBIN" ] || { echo "nab: $NABBIN not built (make)" >&2; exit 1; }
[ -f "$NAB/labels/combined_windows.json" ] || { echo "nab: no corpus at $NAB" >&2; exit 1; }
mkdir -p "$NAB_OUT"

# The published figures on this corpus, from the README's table (if there is one):
# "| name | standard | low FP | low FN |".
declare -A PUB_STD PUB_FP PUB_FN
if [ -f "$NAB/README.md" ]; then
    while IFS='|' read -r _ name std fp fn _; do
        name=$(echo "$name" | sed 's/ *(.*)//; s/^ *//; s/ *$//')
        std=$(echo "$std" | tr -d ' '); fp=$(echo "$fp" | tr -d ' '); fn=$(echo "$fn" | tr -d ' ')
        [[ "$std" =~ ^-?[0-9]+\.[0-9]+$ ]] || continue
        PUB_STD[$name]=$std; PUB_FP[$name]=$fp; PUB_FN[$name]=$fn
    done < <(grep -E '^\| [A-Za-z]' "$NAB/README.md")
fi

status=0
echo "== scorer check: published per-row results rescored (must match within 0.05)"
published=""
if [ -d "$NAB/results" ]; then
    for d in "$NAB"/results/*/; do published="$published $(basename "$d")"; done
fi
if [ -n "$published" ]; then
    # shellcheck disable=SC2086
    "$NABBIN" score "$NAB" "$NAB/results" $published > "$NAB_OUT/published.txt"
    while read -r name std fp fn thr; do
        ref=${PUB_STD[$name]:-}
        if [ -z "$ref" ]; then
            printf '  %-18s %7.2f %7.2f %7.2f   (no published figure to compare)\n' \
                "$name" "$std" "$fp" "$fn"
            continue
        fi
        ok=$(awk -v a="$std" -v b="$ref" -v c="$fp" -v d="${PUB_FP[$name]}" \
                 -v e="$fn" -v f="${PUB_FN[$name]}" \
                 'BEGIN { m = a - b; if (m < 0) m = -m; x = c - d; if (x < 0) x = -x;
                          y = e - f; if (y < 0) y = -y;
                          print (m <= 0.05 && x <= 0.05 && y <= 0.05) ? "ok" : "MISMATCH" }')
        printf '  %-18s ours %6.2f %6.2f %6.2f   published %6.2f %6.2f %6.2f   %s\n' \
            "$name" "$std" "$fp" "$fn" "$ref" "${PUB_FP[$name]}" "${PUB_FN[$name]}" "$ok"
        [ "$ok" = ok ] || status=1
    done < "$NAB_OUT/published.txt"
else
    echo "  (no published results under $NAB/results: nothing to check)"
fi

echo
echo "== running meshd's detectors over $NAB (results in $NAB_OUT)"
start=$(date +%s)
for d in $DETECTORS; do
    "$NABBIN" run "$CONFIG" "$d" "$NAB" "$NAB_OUT"
done
# shellcheck disable=SC2086
"$NABBIN" score "$NAB" "$NAB_OUT" $DETECTORS > "$NAB_OUT/meshd.txt"
echo "  $(( $(date +%s) - start )) s for $(echo $DETECTORS | wc -w) detectors"

echo
echo "== NAB v1.1 scores (threshold optimised per profile; null 0, perfect 100)"
printf '%-24s %9s %14s %14s\n' detector standard reward_low_FP reward_low_FN
while read -r name std fp fn thr; do
    printf '%-24s %9.2f %14.2f %14.2f   (meshd, threshold %s)\n' "$name" "$std" "$fp" "$fn" "$thr"
done < "$NAB_OUT/meshd.txt"
for name in "${!PUB_STD[@]}"; do
    printf '%-24s %9.2f %14.2f %14.2f   (published)\n' "$name" "${PUB_STD[$name]}" \
        "${PUB_FP[$name]}" "${PUB_FN[$name]}"
done | sort -k2 -n -r

echo
echo "== honest scores: setting and threshold chosen on training files only (standard profile)"
start=$(date +%s)
"$NABBIN" cv --seed "$CV_SEED" --folds 5 --repeats "$CV_REPEATS" "$GRID" "$NAB" "$NAB_OUT" \
    > "$NAB_OUT/cv_table.txt"
printf '%-12s %7s %10s %13s %7s %7s %15s %11s\n' family whole 5-fold-CV "CV range" LOCO gap \
    fixed-threshold configured
while read -r name whole cv loco gap fixed thr conf cvmin cvmax; do
    [ "$conf" = nan ] && conf=-
    printf '%-12s %7.2f %10.2f %6.2f..%-6.2f %7.2f %7.2f %15.2f %11s   (fixed at %s)\n' \
        "$name" "$whole" "$cv" "$cvmin" "$cvmax" "$loco" "$gap" "$fixed" "$conf" "$thr"
done < "$NAB_OUT/cv_table.txt"
echo "  $(( $(date +%s) - start )) s; seeds $CV_SEED..$(( CV_SEED + CV_REPEATS - 1 )); per-fold choices in $NAB_OUT/cv.txt"
echo "  whole: the default setting, threshold optimised on all files (NAB's own figure);"
echo "  5-fold CV (mean of $CV_REPEATS splits, range) / LOCO: setting and threshold chosen on"
echo "  the training folds, each file scored once per split, held out; gap = whole - 5-fold CV;"
echo "  fixed-threshold: the default setting at the median of the training-chosen thresholds;"
echo "  configured: at detector.threshold."
echo "  combination: whole and fixed are for the candidate best on all files ($(
    awk '$1 == "whole" && $2 == "combination" { $1 = $2 = $3 = $4 = $5 = ""; sub(/^ +/, ""); print }' \
        "$NAB_OUT/cv.txt"))."
exit $status
