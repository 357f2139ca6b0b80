#!/bin/sh
# tests/integration/test_run_signals.sh — the stop signals of `baton run`:
# SIGINT, SIGUSR1 and SIGXCPU (like SIGTERM, covered by test_run_resume.sh)
# each finish the current step, commit it and exit 75 naming the signal; a
# second SIGINT exits at once with 130, and whatever it interrupted, the next
# run finds only valid archives and resumes from the newest committed step.
. "$(dirname "$0")/run_lib.sh"

write_job "$T/job.ini" runtime.threads=1 train.epochs=20 runtime.checkpoint_every=100000
OUT="$T/out"

# start_training LOG — starts the job in the background (PID in $PID) and
# waits until it has trained at least one step (a train record in metrics.jsonl)
start_training() {
    "$BATON" run "$T/job.ini" >"$1" 2>&1 &
    PID=$!
    RL_PIDS=$PID
    st_i=0
    until [ -f "$OUT/metrics.jsonl" ] && grep -q '"split":"train"' "$OUT/metrics.jsonl" 2>/dev/null &&
          [ "$(grep -c '"split":"train"' "$OUT/metrics.jsonl")" -gt "${TRAIN_LINES:-0}" ]; do
        st_i=$((st_i + 1))
        [ $st_i -le 600 ] || fail "no training step within 60 s: $(tail -n 5 "$1")"
        kill -0 "$PID" 2>/dev/null || fail "the run ended before it trained: $(tail -n 5 "$1")"
        sleep 0.1
    done
}
finish() { # wait for $PID; exit code in $RC
    set +e; wait "$PID"; RC=$?; set -e
    RL_PIDS=""
}

for sig in INT USR1 XCPU; do
    TRAIN_LINES=$(grep -c '"split":"train"' "$OUT/metrics.jsonl" 2>/dev/null || echo 0)
    start_training "$T/$sig.log"
    kill -s "$sig" "$PID"
    finish
    expect_rc 75 "$T/$sig.log" "SIG$sig"
    stop=$(sed -n "s/.*segment stopped (SIG$sig) at step \([0-9]*\) .*/\1/p" "$T/$sig.log")
    [ -n "$stop" ] || fail "SIG$sig: no 'segment stopped (SIG$sig) at step N': $(tail -n 5 "$T/$sig.log")"
    new=$(newest_archive "$OUT")
    [ "$(archive_step "$new")" = "$stop" ] || fail "SIG$sig: stopped at step $stop but the newest archive is $new"
    note "SIG$sig: exit 75, committed step $stop"
done

# double SIGINT: exit 130 at once; then every archive is valid and the next
# run resumes. Long steps (big batches), so that the second SIGINT, 50 ms
# after the first, lands while the first one's step is still running
# (signals sent back to back would merge into one).
# (budgets of 6 s: they count from the process start, and this job's start-up,
# zeroing a 914 MB arena for batch 1024, takes ~0.8 s here, 2-3 s under ASan;
# under ThreadSanitizer, `make test-tsan`, ~20 s, and steps are ~10 times
# slower: batch 128 there gives steps as long, and a 10 s budget)
BIG_BATCH=1024 BIG_BUDGET=6s
[ "${TSAN:-0}" = 1 ] && BIG_BATCH=128 BIG_BUDGET=10s
write_job "$T/big.ini" runtime.threads=1 train.epochs=20 train.batch_size=$BIG_BATCH data.max_seq_len=64 \
    runtime.checkpoint_every=1 job.output_dir=big-out
OUT="$T/big-out"
brun "$T/big1.log" run "$T/big.ini" -s runtime.budget=$BIG_BUDGET -s runtime.margin=0.5s
[ "$RC" = 75 ] || fail "big job, first segment: exit $RC: $(tail -n 5 "$T/big1.log")"
before=$(newest_archive "$OUT")
TRAIN_LINES=$(grep -c '"split":"train"' "$OUT/metrics.jsonl" 2>/dev/null || echo 0)
"$BATON" run "$T/big.ini" >"$T/int2.log" 2>&1 &
PID=$!
RL_PIDS=$PID
until grep -q "resumed from" "$T/int2.log" 2>/dev/null; do
    kill -0 "$PID" 2>/dev/null || fail "the run ended before it resumed: $(tail -n 5 "$T/int2.log")"
    sleep 0.05
done
sleep 0.3
kill -s INT "$PID"
sleep 0.05
kill -s INT "$PID"
t0=$(now)
finish
expect_rc 130 "$T/int2.log" "a second SIGINT"
grep -q "second interrupt: exiting now" "$T/int2.log" || fail "no message for the second SIGINT: $(tail -n 3 "$T/int2.log")"
note "second SIGINT: exit 130 after $(elapsed "$t0")s"
brun "$T/v.log" verify "$OUT"
expect_rc 0 "$T/v.log" "verify after a second SIGINT"
newest=$(newest_archive "$OUT")
brun "$T/next.log" run "$T/big.ini" -s runtime.budget=$BIG_BUDGET -s runtime.margin=0.5s
[ "$RC" = 75 ] || [ "$RC" = 0 ] || fail "the run after a second SIGINT exited $RC: $(tail -n 5 "$T/next.log")"
grep -q "resumed from $newest at step $(archive_step "$newest") " "$T/next.log" ||
    fail "the run after a second SIGINT did not resume from $newest: $(grep -m2 'resumed\|segment' "$T/next.log")"
has_partial "$OUT" && fail "a .partial is left after the next run"
note "after it: all archives valid, resumed from $(basename "$newest") (before the double SIGINT: $(basename "$before"))"
echo "run signals: all checks passed"
