#!/usr/bin/env bash
# mesh-nab cv: honest (cross-validated) NAB scores on a synthetic NAB-layout corpus
# made here: 3 categories x 4 files of 600 points, spikes and level shifts inside
# labelled windows, one file per category without anomalies.
#   - the folds partition the files (k-fold stratified by category, a group of files
#     in one fold; LOCO = category)
#   - every file is held out exactly once per protocol (the CV score is the held-out
#     raw scores summed over the folds, normalised once)
#   - selection never sees the held-out file: moving one file's windows changes the
#     whole-set result and the folds that train on it, but not its own folds' choices
#   - deterministic for a seed, different folds for another seed
#   - make nab's table: a row for every family of bench/nab_cv.yaml, and the
#     combination; bad grids are refused with a clear error
source "$(dirname "$0")/lib.sh"
NABBIN=$BIN/mesh-nab
[ -x "$NABBIN" ] || fail "$NABBIN not built"

# make_corpus DIR SHIFT: the corpus; SHIFT moves the windows of catB/b1.csv by that
# many rows (0: the true places).
make_corpus() {
    local dir=$1 shift_rows=$2
    mkdir -p "$dir/labels"
    local first=1
    printf '{' > "$dir/labels/combined_windows.json"
    for cat in catA catB catC; do
        mkdir -p "$dir/data/$cat"
        for i in 0 1 2 3; do
            local name="$cat/${cat,,}$i.csv" seed=$(( ${#cat} * 100 + $(printf '%d' "'${cat:3:1}") * 10 + i ))
            # file 0 of each category has no anomaly; 1 and 3 a spike, 2 a level shift
            awk -v seed="$seed" -v kind="$i" -v cat="$cat" 'BEGIN {
                srand (seed); print "timestamp,value"
                at = 300 + (seed % 7) * 30
                for (r = 0; r < 600; r++) {
                    m = r * 5; d = 1 + int (m / 1440); h = int ((m % 1440) / 60); mi = m % 60
                    v = 10 + 2 * sin (2 * 3.14159265 * r / 100) + (rand () + rand () + rand () - 1.5)
                    if ((kind == 1 || kind == 3) && r == at) v += 12
                    if (kind == 2 && r >= at) v += 6
                    printf "2020-01-%02d %02d:%02d:00,%.4f\n", d, h, mi, v
                }
                # the window: 60 rows centred on the anomaly, to the labels file
                printf "%d\n", at > "/dev/stderr"
            }' > "$dir/data/$name" 2> "$T/at"
            local at; at=$(cat "$T/at")
            [ "$first" = 1 ] || printf ',' >> "$dir/labels/combined_windows.json"
            first=0
            if [ "$i" = 0 ]; then
                printf '"%s": []' "$name" >> "$dir/labels/combined_windows.json"
                continue
            fi
            [ "$name" = catB/catb1.csv ] && at=$(( at + shift_rows ))
            local s=$(( at - 30 )) e=$(( at + 29 ))
            local ts ts2
            ts=$(sed -n "$(( s + 2 ))p" "$dir/data/$name" | cut -d, -f1)
            ts2=$(sed -n "$(( e + 2 ))p" "$dir/data/$name" | cut -d, -f1)
            printf '"%s": [["%s.000000", "%s.000000"]]' "$name" "$ts" "$ts2" \
                >> "$dir/labels/combined_windows.json"
        done
    done
    printf '}\n' >> "$dir/labels/combined_windows.json"
}

cat > "$T/grid.yaml" <<'YAML'
# two families, two settings each, and their combination
ewma:
  - {kind: ewma, holdoff: 50}
  - {kind: ewma, holdoff: 50, alpha: 0.3}
cusum:
  - {kind: cusum, holdoff: 50}
  - {kind: cusum, holdoff: 50, cusum: {k: 1}}
combine: [ewma, cusum]
groups:
  - [catC/catc1.csv, catC/catc2.csv]
YAML

make_corpus "$T/nab" 0
python3 -c "import json; json.load(open('$T/nab/labels/combined_windows.json'))" \
    || fail "the synthetic labels are not JSON"

note "cv over the synthetic corpus, seed 7"
"$NABBIN" cv --seed 7 --folds 5 "$T/grid.yaml" "$T/nab" "$T/out1" > "$T/table1" \
    || fail "mesh-nab cv failed"
cat "$T/table1"
[ "$(wc -l < "$T/table1")" = 3 ] || fail "expected 3 rows (ewma, cusum, combination)"
awk '{ if (NF != 10) exit 1; for (i = 2; i <= 10; i++) if (i != 8 && $i !~ /^-?([0-9]+\.?[0-9]*|inf)$/) exit 1 }' \
    "$T/table1" || fail "table rows are not NAME and 9 numbers"
awk '$3 != $9 || $3 != $10 { exit 1 }' "$T/table1" || fail "one split: CV range is not the CV score"
[ "$(cut -d' ' -f1 "$T/table1" | tr '\n' ' ')" = "ewma cusum combination " ] \
    || fail "rows are not the grid's families in order, then the combination"
[ "$(awk '$1 == "combination" { print $8 }' "$T/table1")" = nan ] \
    || fail "the combination has no configured threshold"

note "the folds partition the files"
grep '^file ' "$T/out1/cv.txt" > "$T/files1"
[ "$(wc -l < "$T/files1")" = 12 ] || fail "expected 12 files in cv.txt"
[ "$(cut -d' ' -f2 "$T/files1" | sort -u | wc -l)" = 12 ] || fail "a file is listed twice"
[ "$(awk '{ print NF }' "$T/files1" | sort -u)" = 6 ] || fail "file lines are not 'file NAME loco L kfold K'"
awk '{ if ($6 < 0 || $6 > 4) exit 1 }' "$T/files1" || fail "a k-fold index outside 0..4"
[ "$(cut -d' ' -f6 "$T/files1" | sort -u | wc -l)" = 5 ] || fail "an empty k-fold fold"
# stratified: a category's 4 files lie in 4 different folds (catC: 3, two of its files
# are a group and share a fold); LOCO: one fold per category
[ "$(awk '$2 == "catC/catc1.csv" || $2 == "catC/catc2.csv" { print $6 }' "$T/files1" | sort -u | wc -l)" = 1 ] \
    || fail "the group catc1 + catc2 is split over folds"
for cat in catA catB catC; do
    want=4; [ $cat = catC ] && want=3
    [ "$(grep "^file $cat/" "$T/files1" | cut -d' ' -f6 | sort -u | wc -l)" = $want ] \
        || fail "$cat's files are not spread over the folds"
    [ "$(grep "^file $cat/" "$T/files1" | cut -d' ' -f4 | sort -u | wc -l)" = 1 ] \
        || fail "$cat is split over LOCO folds"
done
[ "$(cut -d' ' -f4 "$T/files1" | sort -u | wc -l)" = 3 ] || fail "LOCO folds != categories"

note "every file held out exactly once per protocol"
windows=$(awk '$1 == "seed" { print $10 }' "$T/out1/cv.txt")
for fam in ewma cusum combination; do
    for proto in kfold0 loco; do
        n=$([ $proto = kfold0 ] && echo 5 || echo 3)
        [ "$(grep -c "^choice $proto [0-9]* $fam " "$T/out1/cv.txt")" = "$n" ] \
            || fail "$fam $proto: not one choice per fold"
        [ "$(grep "^choice $proto [0-9]* $fam " "$T/out1/cv.txt" | cut -d' ' -f3 | sort -n | uniq | tr '\n' ' ')" \
          = "$(seq 0 $(( n - 1 )) | tr '\n' ' ')" ] || fail "$fam $proto: folds not each once"
        col=$([ $proto = kfold0 ] && echo 3 || echo 4)
        # the reported score is the folds' held-out raw scores summed, normalised once
        got=$(awk -v f="$fam" -v c="$col" '$1 == f { print $c }' "$T/table1")
        want=$(grep "^choice $proto [0-9]* $fam " "$T/out1/cv.txt" \
               | awk -v w="$windows" '{ s += $10 } END { printf "%.2f", 100 * (s + w) / (2 * w) }')
        awk -v a="$got" -v b="$want" 'BEGIN { d = a - b; exit !(d < 0.011 && d > -0.011) }' \
            || fail "$fam $proto: reported $got, the held-out folds sum to $want"
    done
done

note "repeated k-fold: the CV score is the mean over the splits"
"$NABBIN" cv --seed 7 --repeats 3 "$T/grid.yaml" "$T/nab" "$T/outr" > "$T/tabler" \
    || fail "cv --repeats 3 failed"
[ "$(grep -c '^file .* kfold [0-4] [0-4] [0-4]$' "$T/outr/cv.txt")" = 12 ] \
    || fail "file lines do not give 3 k-fold splits"
grep '^file ' "$T/outr/cv.txt" | cut -d' ' -f1-6 | cmp -s - "$T/files1" \
    || fail "split 0 of --seed 7 --repeats 3 is not the split of --seed 7"
for fam in ewma cusum combination; do
    want=$(for r in 0 1 2; do
               grep "^choice kfold$r [0-9]* $fam " "$T/outr/cv.txt" \
               | awk -v w="$windows" '{ s += $10 } END { printf "%.6f\n", 100 * (s + w) / (2 * w) }'
           done | awk '{ s += $1; if (NR == 1 || $1 < lo) lo = $1; if (NR == 1 || $1 > hi) hi = $1 }
                       END { printf "%.2f %.2f %.2f", s / 3, lo, hi }')
    got=$(awk -v f="$fam" '$1 == f { print $3, $9, $10 }' "$T/tabler")
    [ "$got" = "$want" ] || fail "$fam: reported mean/min/max $got, the splits give $want"
done

note "deterministic for the seed"
"$NABBIN" cv --seed 7 "$T/grid.yaml" "$T/nab" "$T/out2" > "$T/table2" || fail "second run failed"
cmp -s "$T/table1" "$T/table2" || fail "the same seed gave another table"
cmp -s "$T/out1/cv.txt" "$T/out2/cv.txt" || fail "the same seed gave other folds or choices"
"$NABBIN" cv --seed 8 "$T/grid.yaml" "$T/nab" "$T/out3" > /dev/null || fail "seed 8 failed"
grep '^file ' "$T/out3/cv.txt" | cmp -s - "$T/files1" && fail "seed 8 gave the same folds"

note "selection never sees the held-out file"
make_corpus "$T/nab_moved" -200                 # catB/catb1's window 200 rows early
"$NABBIN" cv --seed 7 "$T/grid.yaml" "$T/nab_moved" "$T/out4" > "$T/table4" \
    || fail "cv over the moved corpus failed"
k=$(awk '$2 == "catB/catb1.csv" { print $6 }' "$T/files1")
l=$(awk '$2 == "catB/catb1.csv" { print $4 }' "$T/files1")
# fields 1-8 and 11-: protocol, fold, family, threshold, training score, setting
# (not 9-10, the held-out score, which must change)
own() { grep -E "^choice (kfold0 $k|loco $l) " "$1" | cut -d' ' -f1-8,11-; }
others() { grep -E "^choice (kfold0|loco) " "$1" | grep -vE "^choice (kfold0 $k|loco $l) " \
           | cut -d' ' -f1-8; }
[ -n "$(own "$T/out1/cv.txt")" ] || fail "no choices for the moved file's folds"
diff <(own "$T/out1/cv.txt") <(own "$T/out4/cv.txt") \
    || fail "moving catb1's window changed the choice of the folds that hold it out"
cmp -s <(others "$T/out1/cv.txt") <(others "$T/out4/cv.txt") \
    && fail "moving catb1's window changed nothing where it is trained on (check has no power)"
cmp -s <(grep '^whole ' "$T/out1/cv.txt") <(grep '^whole ' "$T/out4/cv.txt") \
    && fail "moving catb1's window did not change the whole-set result"

note "bad grids are refused"
printf 'ewma:\n  - {kind: ewma}\ncombine: [nosuch]\n' > "$T/bad1.yaml"
"$NABBIN" cv "$T/bad1.yaml" "$T/nab" "$T/outb" 2> "$T/err" && fail "unknown combine member accepted"
grep -q "no family named 'nosuch'" "$T/err" || fail "unclear error: $(cat "$T/err")"
printf 'ewma:\n  - {kind: ewma, nosuch: 1}\n' > "$T/bad2.yaml"
"$NABBIN" cv "$T/bad2.yaml" "$T/nab" "$T/outb" 2> "$T/err" && fail "unknown detector key accepted"
grep -q "setting 0" "$T/err" || fail "unclear error: $(cat "$T/err")"
"$NABBIN" cv --folds 13 "$T/grid.yaml" "$T/nab" "$T/outb" 2> "$T/err" && fail "13 folds of 12 files"
grep -q "folds" "$T/err" || fail "unclear error: $(cat "$T/err")"

printf 'ewma:\n  - {kind: ewma}\ngroups:\n  - [catA/cata1.csv, catB/catb1.csv]\n' > "$T/bad3.yaml"
"$NABBIN" cv "$T/bad3.yaml" "$T/nab" "$T/outb" 2> "$T/err" && fail "a group across categories accepted"
grep -q "different categories" "$T/err" || fail "unclear error: $(cat "$T/err")"
printf 'ewma:\n  - {kind: ewma}\ngroups:\n  - [catA/cata1.csv, catA/cata1.csv]\n' > "$T/bad4.yaml"
"$NABBIN" cv "$T/bad4.yaml" "$T/nab" "$T/outb" 2> "$T/err" && fail "a file named twice in groups accepted"
grep -q "named twice" "$T/err" || fail "unclear error: $(cat "$T/err")"
# names not in this corpus are skipped (one grid serves several corpora)
printf 'ewma:\n  - {kind: ewma}\ngroups:\n  - [catA/nosuch.csv, catA/cata1.csv]\n' > "$T/ok.yaml"
"$NABBIN" cv "$T/ok.yaml" "$T/nab" "$T/outb" > /dev/null 2> "$T/err" || fail "an absent grouped file refused"
grep -qx "group catA/cata1.csv" "$T/outb/cv.txt" || fail "cv.txt does not list the group as applied"

note "make nab's table (bench/nab.sh over the synthetic corpus)"
B=$B NAB=$T/nab NAB_OUT=$T/out5 bash bench/nab.sh > "$T/nab.txt" 2>&1 \
    || { cat "$T/nab.txt"; fail "bench/nab.sh failed"; }
grep -qE '^family +whole +5-fold-CV +CV range +LOCO +gap +fixed-threshold +configured$' "$T/nab.txt" \
    || fail "no table header"
for fam in $(grep -E '^[a-z0-9_]+:' bench/nab_cv.yaml | cut -d: -f1 | grep -vE '^(combine|groups)$') combination; do
    n='-?[0-9]+\.[0-9]{2}'
    grep -qE "^$fam +$n +$n +$n\.\.$n +$n +$n +$n +($n|-) +\(fixed at " \
        "$T/nab.txt" || { grep -A12 '^family' "$T/nab.txt"; fail "no table row for $fam"; }
done
note "ok"
