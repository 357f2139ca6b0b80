#!/bin/sh
# tests/integration/test_run_eval_interrupt.sh — a stop request during an
# evaluation is honoured within one evaluation batch (issue 15, finding 4: a
# SIGTERM waited for a whole 36k-row evaluation, longer than a spot
# instance's notice). `baton run`: the partial evaluation is discarded, the
# step committed, exit 75; the next segment evaluates that step first, and
# the job ends with the weights and evaluations of an uninterrupted run.
# `baton eval` and `baton predict` stop the same way (exit 75, nothing
# half-written). The time to stop is compared with the evaluation's own
# duration, measured here, not with a fixed number.
. "$(dirname "$0")/run_lib.sh"

# a big evaluation set: the demo's training rows, twice over
{ cat "$T/d/data/train.tsv"; tail -n +2 "$T/d/data/train.tsv"; } >"$T/big.tsv"
rows=$(($(wc -l <"$T/big.tsv") - 1))
keys="runtime.threads=1 data.limit_train=64 train.epochs=2 train.eval_every=2 data.eval=big.tsv data.limit_eval=0
      train.eval_batch_size=16 runtime.checkpoint_every=1"
# shellcheck disable=SC2086
write_job "$T/ref.ini" $keys job.output_dir=ref-out
# shellcheck disable=SC2086
write_job "$T/job.ini" $keys
OUT="$T/out"
brun "$T/ref.log" run "$T/ref.ini"
expect_rc 0 "$T/ref.log" "uninterrupted run"
REF=$(member_sha "$(newest_archive "$T/ref-out")")
# how long one evaluation takes here (trainer.json keeps the last one's)
EVAL_S=$(trainer_field "$(newest_archive "$T/ref-out")" eval_seconds)
note "one evaluation of $rows rows takes ${EVAL_S}s"
awk -v e="$EVAL_S" 'BEGIN { exit !(e >= 1.0) }' || fail "the evaluation takes only ${EVAL_S}s: too short to interrupt in it; use more rows"
LIMIT=$(awk -v e="$EVAL_S" 'BEGIN { printf "%.2f", e / 3 }')

# wait_file FILE PID — until FILE exists (the run is past that point)
wait_file() {
    wf_i=0
    until [ -e "$1" ]; do
        wf_i=$((wf_i + 1)); [ $wf_i -le 3000 ] || fail "waited 30 s for $1"
        kill -0 "$2" 2>/dev/null || fail "the run ended before $1 appeared"
        sleep 0.01
    done
}

# ---- baton run: SIGTERM in the evaluation of step 2
"$BATON" run "$T/job.ini" >"$T/run1.log" 2>&1 &
PID=$!; RL_PIDS=$PID
wait_file "$OUT/ckpt-000000001.tar" $PID # step 1 committed; step 2 and its evaluation follow
sleep 0.3
t0=$(now)
kill -TERM $PID
set +e; wait $PID; RC=$?; set -e; RL_PIDS=""
took=$(elapsed "$t0")
expect_rc 75 "$T/run1.log" "SIGTERM during an evaluation"
grep -q "evaluation at step 2 interrupted by SIGTERM after .*discarded; the next segment evaluates step 2 first" "$T/run1.log" \
    || fail "no message about the interrupted evaluation: $(tail -n 4 "$T/run1.log")"
grep -q "segment stopped (SIGTERM) at step 2 " "$T/run1.log" || fail "not stopped at step 2: $(tail -n 3 "$T/run1.log")"
awk -v t="$took" -v l="$LIMIT" 'BEGIN { exit !(t <= l) }' \
    || fail "SIGTERM took ${took}s to end the run, over a third of one evaluation (${EVAL_S}s): it waited for the evaluation"
[ "$(trainer_field "$(newest_archive "$OUT")" last_eval_step)" = -1 ] || fail "the interrupted evaluation was recorded"
note "run: SIGTERM in the evaluation: exit 75 after ${took}s (one evaluation: ${EVAL_S}s), step 2 committed unevaluated"
brun "$T/run2.log" run "$T/job.ini"
expect_rc 0 "$T/run2.log" "the next segment"
grep -q "evaluating at step 2 first" "$T/run2.log" || fail "the next segment did not evaluate step 2 first: $(head -n 4 "$T/run2.log")"
[ "$(member_sha "$(newest_archive "$OUT")")" = "$REF" ] || fail "final weights differ from the uninterrupted run's"
grep '"split":"eval"' "$OUT/metrics.jsonl" | sed 's/"time":[^,}]*//' >"$T/ev"
grep '"split":"eval"' "$T/ref-out/metrics.jsonl" | sed 's/"time":[^,}]*//' >"$T/ev-ref"
cmp -s "$T/ev" "$T/ev-ref" || fail "evaluations differ from the uninterrupted run's: $(diff "$T/ev-ref" "$T/ev" | head -n 4)"
note "run: the next segment evaluated step 2 first; weights and evaluations = uninterrupted"

# ---- baton eval: SIGTERM stops it within a batch, nothing printed
"$BATON" eval "$T/ref.ini" --json >"$T/eval.out" 2>"$T/eval.err" &
PID=$!; RL_PIDS=$PID
sleep 0.5
t0=$(now)
kill -TERM $PID
set +e; wait $PID; RC=$?; set -e; RL_PIDS=""
took=$(elapsed "$t0")
expect_rc 75 "$T/eval.err" "baton eval interrupted"
grep -q "evaluation interrupted by SIGTERM" "$T/eval.err" || fail "baton eval: no message: $(cat "$T/eval.err")"
[ ! -s "$T/eval.out" ] || fail "baton eval printed scores of a partial evaluation: $(cat "$T/eval.out")"
awk -v t="$took" -v l="$LIMIT" 'BEGIN { exit !(t <= l) }' || fail "baton eval took ${took}s to stop"
note "eval: SIGTERM: exit 75 after ${took}s, no scores"

# ---- baton predict: SIGTERM stops it within a batch, no output file
cut -f1 "$T/big.tsv" | tail -n +2 >"$T/lines.txt"
"$BATON" predict "$T/ref.ini" --input "$T/lines.txt" --output "$T/pred.tsv" --batch-size 16 >"$T/pred.log" 2>&1 &
PID=$!; RL_PIDS=$PID
sleep 0.5
t0=$(now)
kill -TERM $PID
set +e; wait $PID; RC=$?; set -e; RL_PIDS=""
took=$(elapsed "$t0")
expect_rc 75 "$T/pred.log" "baton predict interrupted"
grep -q "predict interrupted by SIGTERM after [0-9]* input lines" "$T/pred.log" || fail "predict: no message: $(cat "$T/pred.log")"
[ ! -e "$T/pred.tsv" ] && [ ! -e "$T/pred.tsv.partial" ] || fail "predict left an output file"
awk -v t="$took" -v l="$LIMIT" 'BEGIN { exit !(t <= l) }' || fail "baton predict took ${took}s to stop"
note "predict: SIGTERM: exit 75 after ${took}s, no output file"
echo "run eval interrupt: all checks passed"
