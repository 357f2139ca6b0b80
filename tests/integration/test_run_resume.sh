#!/bin/sh
# tests/integration/test_run_resume.sh — the promise of `baton run`: a job
# interrupted again and again (SIGTERM and SIGKILL at random moments, SIGKILL
# in the middle of commits) and resumed each time ends with weights
# byte-identical to a run that was never interrupted. Four ways: plain,
# grad_accum = 2, stopped by its time budget, and with early stopping. Also: a
# complete job run again exits 0 at once. CPU backend, the tiny demo model.
# BATON_TEST_SEED=N replays the random interrupt moments of a failed run.
. "$(dirname "$0")/run_lib.sh"
note "random seed $RL_SEED (BATON_TEST_SEED=$RL_SEED replays it)"

# reference JOB — runs JOB uninterrupted; prints the final model sha256
reference() {
    brun "$T/ref.log" run "$1"
    expect_rc 0 "$T/ref.log" "uninterrupted run of $1"
    ref_a=$(newest_archive "$T/$(basename "$1" .ini)-out")
    is_complete "$ref_a" || fail "$1: final archive $ref_a is not marked complete"
    member_sha "$ref_a"
}

# same_as REF_SHA OUTDIR WHAT — the final archive of OUTDIR holds the same weights
same_as() {
    sa_a=$(newest_archive "$2")
    is_complete "$sa_a" || fail "$3: final archive $sa_a is not marked complete"
    sa_sha=$(member_sha "$sa_a")
    [ "$sa_sha" = "$1" ] || fail "$3: model.safetensors of $sa_a is $sa_sha, the uninterrupted run's is $1"
    has_partial "$2" && fail "$3: a .partial is left in $2"
    note "$3: final $(basename "$sa_a") model.safetensors $sa_sha = uninterrupted"
}

# ---- 1. plain job, commits every step: 7 interrupts
start=$(now)
common="train.epochs=3 runtime.checkpoint_every=1 runtime.threads=1"
# shellcheck disable=SC2086
write_job "$T/plain-ref.ini" $common job.output_dir=plain-ref-out
# shellcheck disable=SC2086
write_job "$T/plain.ini" $common job.output_dir=plain-out
ref_plain=$(reference "$T/plain-ref.ini")
total=$(trainer_field "$(newest_archive "$T/plain-ref-out")" total_steps)
note "plain: uninterrupted run: $total steps in $(elapsed "$start")s"
interrupt_runs "$T/plain.ini" "$T/plain-out" 7 "$T/plain.log"
note "plain: $INTS interrupts ($TERMS SIGTERM, $KILLS SIGKILL, $COMMIT_KILLS of them mid-commit)"
[ $INTS -ge 5 ] || fail "plain: only $INTS interrupts"
[ $TERMS -ge 1 ] && [ $KILLS -ge 1 ] || fail "plain: want SIGTERM and SIGKILL interrupts (TERM $TERMS, KILL $KILLS)"
run_to_end "$T/plain.ini" "$T/plain.log"
same_as "$ref_plain" "$T/plain-out" "plain"

# ---- 2. a complete job run again: exit 0 at once, nothing written
snap_out() { (cd "$T/plain-out" && find . -type f ! -name status.json ! -name .baton.lock | LC_ALL=C sort | xargs sha256sum); }
snap_out >"$T/ls1"
t0=$(now)
brun "$T/again.log" run "$T/plain.ini"
expect_rc 0 "$T/again.log" "complete job run again"
grep -q "already complete" "$T/again.log" || fail "complete job run again: no 'already complete': $(cat "$T/again.log")"
snap_out >"$T/ls2"
cmp -s "$T/ls1" "$T/ls2" || fail "complete job run again changed the output directory: $(diff "$T/ls1" "$T/ls2")"
note "complete job run again: exit 0 in $(elapsed "$t0")s"

# ---- 3. grad_accum = 2: 5 interrupts
start=$(now)
common="train.epochs=3 train.grad_accum=2 runtime.checkpoint_every=1 runtime.threads=1"
# shellcheck disable=SC2086
write_job "$T/accum-ref.ini" $common job.output_dir=accum-ref-out
# shellcheck disable=SC2086
write_job "$T/accum.ini" $common job.output_dir=accum-out
ref_accum=$(reference "$T/accum-ref.ini")
[ "$ref_accum" != "$ref_plain" ] || fail "grad_accum = 2 gives the same weights as grad_accum = 1"
interrupt_runs "$T/accum.ini" "$T/accum-out" 5 "$T/accum.log"
note "accum: $INTS interrupts ($TERMS SIGTERM, $KILLS SIGKILL, $COMMIT_KILLS of them mid-commit)"
[ $INTS -ge 5 ] || fail "accum: only $INTS interrupts"
run_to_end "$T/accum.ini" "$T/accum.log"
same_as "$ref_accum" "$T/accum-out" "grad_accum=2 ($(elapsed "$start")s)"

# ---- 4. budget-driven segments: the plain job, 2 s a run, until exit 0
# (about 5 s of work here: at least 2 segments on a machine twice as fast)
start=$(now)
common="train.epochs=3 runtime.checkpoint_every=1 runtime.threads=1"
# shellcheck disable=SC2086
write_job "$T/budget.ini" $common job.output_dir=budget-out
RUNS=0; deadline_stops=0
while :; do # as run_to_end, checking each budget stop
    RUNS=$((RUNS + 1))
    [ $RUNS -le 50 ] || fail "budget: not complete after 50 segments"
    t0=$(now)
    brun "$T/budget.log" run "$T/budget.ini" -s runtime.budget=2s -s runtime.margin=0.5s
    secs=$(elapsed "$t0")
    [ "$RC" = 0 ] && break
    expect_rc 75 "$T/budget.log" "budget: segment $RUNS"
    grep -q "segment stopped (deadline) at step" "$T/budget.log" \
        || fail "budget: segment $RUNS: exit 75 without 'segment stopped (deadline)': $(tail -n 5 "$T/budget.log")"
    awk -v s="$secs" -v x="$EXIT_SLACK" 'BEGIN { exit !(s <= 2 + x) }' ||
        fail "budget: segment $RUNS took ${secs}s, over its 2 s budget (+${EXIT_SLACK} s for the exit)"
    deadline_stops=$((deadline_stops + 1))
done
[ $deadline_stops -ge 1 ] || fail "budget: the job finished in one 2 s segment; make it longer"
same_as "$ref_plain" "$T/budget-out" "budget 2s: $RUNS segments ($(elapsed "$start")s)"

# ---- 5. early stopping: stops before the last step; 5 interrupts
start=$(now)
common="train.epochs=4 train.eval_every=4 train.early_stopping_patience=7 train.metric=accuracy runtime.checkpoint_every=1 runtime.threads=1"
# shellcheck disable=SC2086
write_job "$T/early-ref.ini" $common job.output_dir=early-ref-out
# shellcheck disable=SC2086
write_job "$T/early.ini" $common job.output_dir=early-out
ref_early=$(reference "$T/early-ref.ini")
ea=$(newest_archive "$T/early-ref-out")
estep=$(trainer_field "$ea" step); etotal=$(trainer_field "$ea" total_steps)
[ "$(trainer_field "$ea" stop_reason)" = '"early stopping"' ] \
    || fail "early stopping: the reference run did not stop early (stop_reason $(trainer_field "$ea" stop_reason), step $estep of $etotal)"
[ "$estep" -lt "$etotal" ] || fail "early stopping: stopped at step $estep of $etotal"
note "early stopping: the uninterrupted run stops at step $estep of $etotal"
interrupt_runs "$T/early.ini" "$T/early-out" 5 "$T/early.log"
note "early: $INTS interrupts ($TERMS SIGTERM, $KILLS SIGKILL, $COMMIT_KILLS of them mid-commit)"
[ $INTS -ge 5 ] || fail "early: only $INTS interrupts"
run_to_end "$T/early.ini" "$T/early.log"
fa=$(newest_archive "$T/early-out")
[ "$(trainer_field "$fa" step)" = "$estep" ] || fail "early stopping: interrupted job ended at step $(trainer_field "$fa" step), not $estep"
same_as "$ref_early" "$T/early-out" "early stopping ($(elapsed "$start")s)"

echo "run resume: all checks passed"
