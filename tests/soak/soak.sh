#!/bin/sh
# tests/soak/soak.sh — `make soak` (not part of `make test`): the kill/resume
# and fault-injection tests at scale, with the counts that must be 0.
#
# 1. Kill/resume chains: the demo job (CPU, one thread, a commit every step)
#    run again and again until complete, each run stopped 1-3 steps after it
#    resumed plus 0-15 ms by SIGKILL (anywhere in a step), SIGKILL in the
#    middle of a commit (a .partial exists), SIGTERM, or an injected write
#    failure (BATON_TEST_FAIL_WRITE_AFTER at a random byte: ENOSPC, or EIO).
#    After every run: `baton verify` of the output directory (checksums and
#    contents), the newest step never goes back, a resumed run started at
#    exactly the newest committed step. At the end of each chain the final
#    model.safetensors is compared with an uninterrupted run's. Chains
#    continue until SOAK_KILLS (default 1000) SIGKILLs have been sent.
# 2. tests/soak/soak_faults.c: SOAK_FAULTS (default 10000) bit flips,
#    truncations, ENOSPC and EIO at random write offsets against the last two
#    archives of the uninterrupted run (a tmpfs scratch directory when there
#    is one).
# Prints the totals and "damaged loads: N" and "non-identical final weights:
# N"; exits 1 unless both are 0. BATON_TEST_SEED replays the random choices.
. "$(dirname "$0")/../integration/run_lib.sh"

KILLS_WANT=${SOAK_KILLS:-1000}
FAULTS=${SOAK_FAULTS:-10000}
SOAK_FAULTS_BIN="$BUILD/soak/soak_faults"
[ -x "$SOAK_FAULTS_BIN" ] || fail "$SOAK_FAULTS_BIN is not built (make soak builds it)"
start=$(now)
# commits every step: on a tmpfs where there is one (fsync is not what is
# soaked here: kills are; the commit protocol's fsyncs are the same code)
SHM="$T/shm"
if [ -d /dev/shm ] && [ -w /dev/shm ]; then SHM=$(mktemp -d /dev/shm/baton-soak-XXXXXX); fi
mkdir -p "$SHM"
trap 'rm -rf "$SHM"; rl_cleanup' EXIT
echo "soak: seed $RL_SEED (BATON_TEST_SEED=$RL_SEED replays it); $KILLS_WANT SIGKILLs, $FAULTS injected faults"

keys="runtime.threads=1 data.limit_train=800 train.epochs=3 runtime.checkpoint_every=1"
# shellcheck disable=SC2086
write_job "$T/ref.ini" $keys job.output_dir=ref-out
brun "$T/ref.log" run "$T/ref.ini"
expect_rc 0 "$T/ref.log" "uninterrupted run"
REF=$(member_sha "$(newest_archive "$T/ref-out")")
TOTAL=$(archive_step "$(newest_archive "$T/ref-out")")
echo "soak: uninterrupted run: $TOTAL steps, final model.safetensors $REF"

KILLS=0; COMMIT_KILLS=0; TERMS=0; WRITE_FAULTS=0; RUNS=0; CHAINS=0
DAMAGED=0; WRONG_RESUME=0; WENT_BACK=0; UNEXPECTED=0; NONIDENT=0
report() { echo "soak: PROBLEM: $*"; }

# one_run JOB OUT — one interrupted (or faulted) run of JOB; sets RC, DONE
one_run() {
    or_job=$1; or_out=$2; DONE=0
    or_before=$(newest_archive "$or_out"); or_bstep=-1
    [ -z "$or_before" ] || or_bstep=$(archive_step "$or_before")
    rand 100; or_kind=$RAND
    rand 3; or_target=$(( (or_bstep < 0 ? 0 : or_bstep) + 1 + RAND ))
    rand 16; or_sleep=$(awk -v r="$RAND" 'BEGIN { printf "%.3f", r / 1000 }')
    or_env=""
    if [ "$or_kind" -ge 90 ]; then # a write failure in the first commit of the run
        rand 1400000; or_env="BATON_TEST_FAIL_WRITE_AFTER=$RAND"
        rand 2; [ "$RAND" = 0 ] && or_env="$or_env BATON_TEST_FAIL_WRITE_ERRNO=EIO"
    fi
    # shellcheck disable=SC2086
    env $or_env "$BATON" run "$or_job" >"$T/run.log" 2>&1 &
    or_pid=$!; RL_PIDS=$or_pid
    if [ "$or_kind" -lt 90 ]; then
        or_t=0
        while kill -0 "$or_pid" 2>/dev/null && ! newest_step_at_least "$or_out" "$or_target"; do
            or_t=$((or_t + 1)); [ $or_t -lt 20000 ] || break
            sleep 0.005
        done
        sleep "$or_sleep"
        if [ "$or_kind" -lt 45 ]; then kill -KILL "$or_pid" 2>/dev/null && KILLS=$((KILLS + 1))
        elif [ "$or_kind" -lt 80 ]; then
            or_t=0
            while kill -0 "$or_pid" 2>/dev/null && ! has_partial "$or_out"; do
                or_t=$((or_t + 1)); [ $or_t -lt 200000 ] || break
            done
            if kill -KILL "$or_pid" 2>/dev/null; then KILLS=$((KILLS + 1)); COMMIT_KILLS=$((COMMIT_KILLS + 1)); fi
        else kill -TERM "$or_pid" 2>/dev/null && TERMS=$((TERMS + 1))
        fi
    else
        WRITE_FAULTS=$((WRITE_FAULTS + 1))
    fi
    set +e; wait "$or_pid"; RC=$?; set -e; RL_PIDS=""
    RUNS=$((RUNS + 1)); [ -z "${SOAK_TRACE:-}" ] || echo "soak: run $RUNS kind $or_kind rc $RC at $(elapsed "$start")s"
    case "$RC/$or_kind" in
    0/*) DONE=1 ;;
    143/8[0-9]) # a SIGTERM that arrived after the last commit, while the run exited: complete
        is_complete "$(newest_archive "$or_out")" && DONE=1 \
            || { UNEXPECTED=$((UNEXPECTED + 1)); report "run $RUNS: 143 but not complete: $(tail -n 3 "$T/run.log")"; } ;;
    137/*|75/*) ;;
    74/9[0-9]) grep -q "the previous checkpoint ckpt-[0-9]*\.tar is kept\|no checkpoint was saved" "$T/run.log" \
                   || { UNEXPECTED=$((UNEXPECTED + 1)); report "write failure without its message: $(tail -n 2 "$T/run.log")"; } ;;
    *) UNEXPECTED=$((UNEXPECTED + 1)); report "run $RUNS (kind $or_kind) exited $RC: $(tail -n 3 "$T/run.log")" ;;
    esac
    # a resumed run starts exactly at the newest archive of before
    if [ -n "$or_before" ] && grep -q "resumed from" "$T/run.log" &&
       ! grep -q "resumed from .*ckpt-[0-9]*\.tar at step $or_bstep " "$T/run.log"; then
        WRONG_RESUME=$((WRONG_RESUME + 1)); report "run $RUNS did not resume from step $or_bstep: $(grep 'resumed' "$T/run.log")"
    fi
    or_new=$(newest_archive "$or_out")
    if [ -n "$or_new" ]; then
        if ! "$BATON" verify "$or_out" >"$T/verify.log" 2>&1; then
            DAMAGED=$((DAMAGED + 1)); report "after run $RUNS (kind $or_kind): $(grep BAD "$T/verify.log" | head -n 2)"
        fi
        [ "$(archive_step "$or_new")" -ge "$or_bstep" ] || { WENT_BACK=$((WENT_BACK + 1)); report "run $RUNS: newest step went back"; }
    fi
}

while [ $KILLS -lt "$KILLS_WANT" ]; do
    CHAINS=$((CHAINS + 1))
    # shellcheck disable=SC2086
    write_job "$T/c.ini" $keys "job.output_dir=$SHM/chain"
    rm -rf "$SHM/chain"
    n=0
    while :; do
        n=$((n + 1))
        [ $n -le 400 ] || fail "chain $CHAINS not complete after 400 runs"
        one_run "$T/c.ini" "$SHM/chain"
        [ $DONE = 1 ] && break
    done
    F=$(newest_archive "$SHM/chain")
    if ! is_complete "$F" || [ "$(member_sha "$F")" != "$REF" ]; then
        NONIDENT=$((NONIDENT + 1)); report "chain $CHAINS: final $F differs from the uninterrupted run"
    fi
    echo "soak: chain $CHAINS complete after $n runs; $KILLS SIGKILLs so far ($(elapsed "$start")s)"
done

SCRATCH="$SHM/faults"
mkdir -p "$SCRATCH"
A=$(ls "$T/ref-out"/ckpt-*.tar | sort | tail -n 2 | head -n 1); B=$(newest_archive "$T/ref-out")
set +e
"$SOAK_FAULTS_BIN" "$SCRATCH" "$A" "$B" "$FAULTS" "$RL_SEED" >"$T/faults.log" 2>&1
FRC=$?
set -e
rm -rf "$SCRATCH"
cat "$T/faults.log"
[ $FRC -le 1 ] || fail "soak_faults failed to run: $(tail -n 3 "$T/faults.log")"
FDAMAGED=$(sed -n 's/.*damaged loads \([0-9]*\),.*/\1/p' "$T/faults.log")
FLOST=$(sed -n 's/.*lost fallbacks \([0-9]*\),.*/\1/p' "$T/faults.log")
FBAD=$(sed -n 's/.*bad commits \([0-9]*\).*/\1/p' "$T/faults.log")
FINJ=$(sed -n 's/^soak faults: \([0-9]*\) injected.*/\1/p' "$T/faults.log")

echo "soak: kill/resume: $CHAINS chains, $RUNS runs: $KILLS SIGKILLs ($COMMIT_KILLS mid-commit), $TERMS SIGTERMs," \
     "$WRITE_FAULTS injected write failures; wrong resumes $WRONG_RESUME, newest step went back $WENT_BACK," \
     "unexpected exits $UNEXPECTED"
echo "soak: fault injection: $FINJ injected; lost fallbacks $FLOST, bad commits $FBAD"
TOTAL_DAMAGED=$((DAMAGED + FDAMAGED + WRONG_RESUME + WENT_BACK))
echo "soak: injected faults: $((FINJ + WRITE_FAULTS)) ($FINJ in soak_faults + $WRITE_FAULTS in runs)"
echo "soak: damaged loads: $TOTAL_DAMAGED"
echo "soak: non-identical final weights: $NONIDENT (of $CHAINS chains)"
echo "soak: $(elapsed "$start")s"
[ "$TOTAL_DAMAGED" = 0 ] && [ "$NONIDENT" = 0 ] && [ "$FLOST" = 0 ] && [ "$FBAD" = 0 ] && [ "$UNEXPECTED" = 0 ] \
    || { echo "soak: FAILED"; exit 1; }
echo "soak: passed"
