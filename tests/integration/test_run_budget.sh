#!/bin/sh
# tests/integration/test_run_budget.sh — `[runtime] budget = 20s` on a job
# that needs longer: the run stops by itself before 20 s of wall time, with a
# committed archive of the step it reached and exit 75; the next run resumes
# from that archive and continues (the step increases, no batch is replayed).
. "$(dirname "$0")/run_lib.sh"

# ~80 s of training here at ~16 ms a step (4x the budget, so a faster machine
# still cannot finish inside it); commits only at the end of a segment
write_job "$T/long.ini" train.epochs=100 runtime.budget=20s runtime.margin=1s runtime.checkpoint_every=0 \
    runtime.threads=1 runtime.keep_best=0
OUT="$T/out"

t0=$(now)
brun "$T/run1.log" run "$T/long.ini"
secs=$(elapsed "$t0")
expect_rc 75 "$T/run1.log" "run with budget = 20s"
note "first run: exit 75 after ${secs}s"
awk -v s="$secs" -v x="$EXIT_SLACK" 'BEGIN { exit !(s <= 20 + x) }' || fail "budget = 20s: the run took ${secs}s (+${EXIT_SLACK} s allowed for the exit)"
# the margin is max(1 s, 2 x commit time + 3 x p95 step): it must not stop far too early
awk -v s="$secs" 'BEGIN { exit !(s > 14.0) }' || fail "budget = 20s: the run stopped already after ${secs}s"
grep -q "segment stopped (deadline) at step" "$T/run1.log" || fail "no 'segment stopped (deadline)': $(tail -n 5 "$T/run1.log")"
stop1=$(sed -n 's/.*segment stopped (deadline) at step \([0-9]*\) of \([0-9]*\).*/\1/p' "$T/run1.log")
total=$(sed -n 's/.*segment stopped (deadline) at step \([0-9]*\) of \([0-9]*\).*/\2/p' "$T/run1.log")
[ -n "$stop1" ] && [ "$stop1" -gt 0 ] && [ "$stop1" -lt "$total" ] || fail "stopped at step '$stop1' of '$total'"

a1=$(newest_archive "$OUT")
[ -n "$a1" ] || fail "no archive after the budget stop"
[ "$(archive_step "$a1")" = "$stop1" ] || fail "newest archive $a1 is not step $stop1"
brun "$T/verify.log" verify "$a1"
expect_rc 0 "$T/verify.log" "verify $a1"
[ "$(trainer_field "$a1" complete)" = false ] || fail "$a1 is marked complete"
[ "$(trainer_field "$a1" stop_reason)" = '"deadline"' ] || fail "$a1: stop_reason $(trainer_field "$a1" stop_reason)"
# the cursor is at the step edge: epoch = step / steps_per_epoch, position = rest x batch
spe=$(trainer_field "$a1" steps_per_epoch)
ep=$(trainer_field "$a1" epoch); pos=$(trainer_field "$a1" position)
[ "$ep" = $((stop1 / spe)) ] && [ "$pos" = $(((stop1 % spe) * 32)) ] \
    || fail "$a1: cursor (epoch $ep, position $pos) does not match step $stop1 ($spe steps per epoch, batch 32)"
grep -q '"state": "stopped"' "$OUT/status.json" || fail "status.json: $(cat "$OUT/status.json")"
grep -q '"stop_reason": "deadline"' "$OUT/status.json" || fail "status.json has no stop_reason deadline"
grep -q '"best_metric_name": "accuracy"' "$OUT/status.json" || fail "status.json has no best_metric_name: $(cat "$OUT/status.json")"
grep -qF "\"latest_archive\": \"$a1\"" "$OUT/status.json" || fail "status.json: latest_archive is not $a1"

# the next run (3 s budget) resumes at that step and goes on
t0=$(now)
brun "$T/run2.log" run "$T/long.ini" -s runtime.budget=3s
secs2=$(elapsed "$t0")
expect_rc 75 "$T/run2.log" "second run"
grep -q "resumed from $a1 at step $stop1 " "$T/run2.log" || fail "second run did not resume from $a1: $(head -n 5 "$T/run2.log")"
grep -q "segment 2 of job 'long': step $stop1 of $total" "$T/run2.log" || fail "second run: no 'segment 2 ... step $stop1': $(head -n 5 "$T/run2.log")"
stop2=$(sed -n 's/.*segment stopped (deadline) at step \([0-9]*\) .*/\1/p' "$T/run2.log")
[ -n "$stop2" ] && [ "$stop2" -gt "$stop1" ] || fail "second run stopped at step '$stop2', not after $stop1"
a2=$(newest_archive "$OUT")
[ "$(archive_step "$a2")" = "$stop2" ] || fail "newest archive $a2 is not step $stop2"
note "second run: resumed at step $stop1, stopped at $stop2 after ${secs2}s (of $total)"

# no replay: metrics.jsonl has segment 2 starting at stop1, and every train
# record's step appears once, increasing
grep -q "\"event\":\"segment_start\",\"step\":$stop1,\"segment\":2" "$OUT/metrics.jsonl" \
    || fail "metrics.jsonl: no segment_start at step $stop1: $(grep segment_start "$OUT/metrics.jsonl")"
grep '"split":"train"' "$OUT/metrics.jsonl" | sed 's/^{"step":\([0-9]*\),.*/\1/' >"$T/steps"
[ -s "$T/steps" ] || fail "metrics.jsonl has no train records"
sort -n -u "$T/steps" | cmp -s - "$T/steps" || fail "metrics.jsonl: train steps repeat or go back: $(tr '\n' ' ' <"$T/steps")"
[ "$(tail -n 1 "$T/steps")" -gt "$stop1" ] || fail "metrics.jsonl: no train record after step $stop1"
echo "run budget: all checks passed"
