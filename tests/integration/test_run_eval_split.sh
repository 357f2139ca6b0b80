#!/bin/sh
# tests/integration/test_run_eval_split.sh — `[data] eval_split` on a job with
# no eval file (a competition's train.csv): the run holds out a stratified
# part of train (10% of each class), evaluates on it, keeps the best archive
# by it; `baton eval` in another process picks the same examples (its score
# equals the training-time record); changing eval_split on resume is a
# fingerprint change (refused, 78); eval_split beside an eval file, and for
# token_classify, is a clear error (78). CPU, the tiny demo model.
. "$(dirname "$0")/run_lib.sh"

# limit_train 1500: 1500 rows before the split; 150 held out
write_job "$T/j.ini" data.eval= data.eval_split=0.1 train.epochs=1 train.eval_every=20 runtime.checkpoint_every=20 \
    runtime.keep_last=10
brun "$T/run.log" run "$T/j.ini"
expect_rc 0 "$T/run.log" "training with eval_split"
grep -q "evaluation: [0-9]* examples held out of .*train.tsv (eval_split = 0.1, stratified)" "$T/run.log" ||
    fail "no held-out line: $(head -n 8 "$T/run.log")"
held=$(sed -n 's/^evaluation: \([0-9]*\) examples held out.*/\1/p' "$T/run.log")
held="$held $(sed -n "s/^segment 1 of job 'j': step 0 of [0-9]*, \([0-9]*\) training examples.*/\1/p" "$T/run.log")"
# per class round(10%): the demo's first 1500 rows, counted here
want=$(head -n 1501 "$T/d/data/train.tsv" | tail -n +2 | cut -f 2 | sort | uniq -c |
       awk '{ h += int($1 * 0.1 + 0.5) } END { print h, 1500 - h }')
[ "$held" = "$want" ] || fail "held out / trained: '$held', expected '$want' (10% of each class)"
grep -q '"split":"eval"' "$T/out/metrics.jsonl" || fail "no eval records in metrics.jsonl"
grep -q '"best_metric_name": "accuracy"' "$T/out/status.json" || fail "no best metric in status.json: $(cat "$T/out/status.json")"

# another process holds out the same examples: eval of the last archive = its record
last=$(newest_archive "$T/out"); step=$(archive_step "$last")
brun "$T/e.log" eval "$T/j.ini" --latest
expect_rc 0 "$T/e.log" "eval with eval_split"
grep -q "held-out 10%" "$T/e.log" || fail "eval does not name the held-out set: $(cat "$T/e.log")"
got=$(awk '$1 == "accuracy" { print $2 }' "$T/e.log")
rec=$(grep '"split":"eval"' "$T/out/metrics.jsonl" | grep "\"step\":$step," | sed -n 's/.*"accuracy":\([^,]*\),.*/\1/p')
awk -v a="$got" -v b="$rec" 'BEGIN { exit !(a != "" && b != "" && sprintf("%.6f", a) == sprintf("%.6f", b)) }' ||
    fail "eval accuracy $got differs from the training-time record $rec at step $step"

# a different eval_split changes which data trains: a fingerprint change
brun "$T/r.log" run "$T/j.ini" -s train.epochs=2 -s data.eval_split=0.2
expect_rc 78 "$T/r.log" "resume with another eval_split"
grep -q "eval_split" "$T/r.log" || fail "the refusal does not name eval_split: $(tail -n 5 "$T/r.log")"

# refusals
write_job "$T/both.ini" data.eval_split=0.1
brun "$T/both.log" run "$T/both.ini"
expect_rc 78 "$T/both.log" "eval_split beside an eval file"
grep -q "both.ini:.*\[data\] eval_split: is set, and so is \[data\] eval" "$T/both.log" || fail "message: $(cat "$T/both.log")"
write_job "$T/tok.ini" data.eval= data.eval_split=0.1 job.task=token_classify
brun "$T/tok.log" run "$T/tok.ini"
expect_rc 78 "$T/tok.log" "eval_split with token_classify"
grep -q "not supported for task = token_classify" "$T/tok.log" || fail "message: $(cat "$T/tok.log")"
echo "eval_split: all checks passed ($held held out / trained)"
