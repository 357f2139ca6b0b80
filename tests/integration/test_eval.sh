#!/bin/sh
# tests/integration/test_eval.sh — `baton eval` scores a job's archives with
# the evaluation training ran: the default (best archive) and --latest print
# exactly the metrics recorded in metrics.jsonl for that step; --archive picks
# one; -s data.eval=FILE scores other data (the changed fingerprint is
# reported, not refused); --json is one object; nothing is written to the
# output dir; a job without archives (66) or without eval data (78) is a
# clear error. CPU, the tiny demo model.
. "$(dirname "$0")/run_lib.sh"

write_job "$T/j.ini" train.eval_every=20 train.lr=3e-3 runtime.checkpoint_every=20 runtime.keep_last=10 job.output_dir=out
brun "$T/run.log" run "$T/j.ini"
expect_rc 0 "$T/run.log" "training run"
# eval_record STEP — "loss accuracy" of the eval record of STEP in metrics.jsonl
eval_record() {
    grep '"split":"eval"' "$T/out/metrics.jsonl" | grep "\"step\":$1," |
        sed -n 's/.*"loss":\([^,]*\),"accuracy":\([^,]*\),.*/\1 \2/p'
}
scores() { awk '$1 == "loss" { l = $2 } $1 == "accuracy" { a = $2 } END { print l, a }' "$1"; }
same() { # A B WHAT — two "loss accuracy" pairs equal to 6 decimals
    awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ");
        exit !(x[1] != "" && y[1] != "" && sprintf("%.6f %.6f", x[1], x[2]) == sprintf("%.6f %.6f", y[1], y[2])) }' ||
        fail "$3: $1 vs $2"
}
# every path under the output dir with its size and mtime (ns): eval must write nothing,
# not even a token cache for other eval data
tree_state() { find "$T/out" -exec stat -c '%n %s %.9Y' {} + | LC_ALL=C sort | md5sum; }
before=$(tree_state)

# default: the best archive
best_step=$(tar -xOf "$(newest_archive "$T/out")" trainer.json | sed -n 's/.*"best":{[^}]*"step":\([0-9]*\).*/\1/p')
[ -n "$best_step" ] || fail "no best step in trainer.json"
brun "$T/e1.log" eval "$T/j.ini"
expect_rc 0 "$T/e1.log" "eval (best)"
grep -q "^archive .*ckpt-0*$best_step.tar (step $best_step)" "$T/e1.log" || fail "eval did not pick the best archive (step $best_step): $(cat "$T/e1.log")"
same "$(scores "$T/e1.log")" "$(eval_record "$best_step")" "best archive: eval vs the training-time record"

# --latest: the newest archive, its step's record
last=$(newest_archive "$T/out"); last_step=$(archive_step "$last")
brun "$T/e2.log" eval "$T/j.ini" --latest
expect_rc 0 "$T/e2.log" "eval --latest"
same "$(scores "$T/e2.log")" "$(eval_record "$last_step")" "latest archive"

# --archive: an older one, as JSON
old=$(ls "$T/out"/ckpt-*.tar | sort | head -n 1); old_step=$(archive_step "$old")
brun "$T/e3.log" eval "$T/j.ini" --archive "$old" --json
expect_rc 0 "$T/e3.log" "eval --archive --json"
line=$(grep '^{' "$T/e3.log")
echo "$line" | grep -q "\"step\":$old_step," || fail "--json: not step $old_step: $line"
echo "$line" | grep -q '"confusion":{"labels":\["negative","positive"\]' || fail "--json: no confusion matrix: $line"
same "$(echo "$line" | sed -n 's/.*"loss":\([^,]*\),"accuracy":\([^,]*\),.*/\1 \2/p')" "$(eval_record "$old_step")" "--archive $old_step"

# other data: 100 training rows as the eval set
head -n 101 "$T/d/data/train.tsv" >"$T/other.tsv"
brun "$T/e4.log" eval "$T/j.ini" -s data.eval="$T/other.tsv"
expect_rc 0 "$T/e4.log" "eval on other data"
grep -q "other.tsv (100 examples" "$T/e4.log" || fail "eval on other data: $(cat "$T/e4.log")"
grep -q "data.eval" "$T/e4.log" || fail "the changed eval file is not reported: $(cat "$T/e4.log")"
[ "$(tree_state)" = "$before" ] || fail "eval changed the output directory: $(find "$T/out" -newer "$T/run.log")"

# errors
write_job "$T/none.ini" job.output_dir=none-out
brun "$T/e5.log" eval "$T/none.ini"
expect_rc 66 "$T/e5.log" "eval without archives"
grep -q "no valid archive" "$T/e5.log" || fail "no-archive message: $(cat "$T/e5.log")"
brun "$T/e6.log" eval "$T/j.ini" -s data.eval=
expect_rc 78 "$T/e6.log" "eval without eval data"
grep -q "\[data\] eval" "$T/e6.log" || fail "no-eval message: $(cat "$T/e6.log")"
note "eval: best (step $best_step), latest (step $last_step), --archive/--json (step $old_step) match the training-time records; other data; errors 66/78"
echo "PASS test_eval"
