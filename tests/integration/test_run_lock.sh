#!/bin/sh
# tests/integration/test_run_lock.sh — two `baton run` of one job at once:
# one trains, the other exits at once with 69 and a message naming the
# holder's pid, touching nothing. Also two started at the same instant, a
# second job file sharing the output directory, and a SIGKILLed holder (the
# kernel releases the lock; the next run proceeds).
. "$(dirname "$0")/run_lib.sh"

write_job "$T/long.ini" train.epochs=30 runtime.checkpoint_every=5 runtime.threads=1
OUT="$T/out"

# wait_training PID — until PID has committed an archive (it holds the lock and trains)
wait_training() {
    wt_i=0
    while [ -z "$(newest_archive "$OUT")" ] || ! grep -q '"state": "running"' "$OUT/status.json" 2>/dev/null; do
        kill -0 "$1" 2>/dev/null || fail "the holder exited early: $(tail -n 10 "$T/a.log")"
        wt_i=$((wt_i + 1)); [ $wt_i -lt 300 ] || fail "the holder did not start training in 30 s"
        sleep 0.1
    done
}

# ---- 1. A trains; B is refused at once with 69 naming A's pid
"$BATON" run "$T/long.ini" >"$T/a.log" 2>&1 &
A=$!
RL_PIDS=$A
wait_training $A
[ "$(cat "$OUT/.baton.lock")" = "$A" ] || fail ".baton.lock holds '$(cat "$OUT/.baton.lock")', not the holder's pid $A"
for variant in plain fresh; do
    extra=""; [ $variant = plain ] || extra=--fresh
    t0=$(now)
    # shellcheck disable=SC2086
    brun "$T/b.log" run "$T/long.ini" $extra
    secs=$(elapsed "$t0")
    expect_rc 69 "$T/b.log" "second run ($variant) while pid $A holds the job"
    grep -q "in use by another baton run (pid $A," "$T/b.log" || fail "second run ($variant): message does not name pid $A: $(cat "$T/b.log")"
    grep -q "$OUT" "$T/b.log" || fail "second run ($variant): message does not name the output directory: $(cat "$T/b.log")"
    awk -v s="$secs" 'BEGIN { exit !(s < 3.0) }' || fail "second run ($variant) took ${secs}s to give up"
    kill -0 $A 2>/dev/null || fail "the holder died while the second run was refused"
    [ "$(cat "$OUT/.baton.lock")" = "$A" ] || fail "the refused run rewrote .baton.lock"
    note "second run ($variant): exit 69 in ${secs}s: $(grep -m1 'in use' "$T/b.log")"
done

# a different job file with the same output directory is refused too
write_job "$T/other.ini" train.epochs=1 runtime.threads=1 job.output_dir=out job.name=other
brun "$T/c.log" run "$T/other.ini"
expect_rc 69 "$T/c.log" "another job on the same output directory"
grep -q "pid $A" "$T/c.log" || fail "other job: message does not name pid $A: $(cat "$T/c.log")"

# the holder is unharmed: SIGTERM commits and exits 75
kill -TERM $A
set +e; wait $A; rc=$?; set -e
RL_PIDS=""
[ $rc = 75 ] || fail "the holder exited $rc after SIGTERM: $(tail -n 10 "$T/a.log")"
brun "$T/verify.log" verify "$OUT"
expect_rc 0 "$T/verify.log" "verify after the holder's SIGTERM"

# ---- 2. two runs started at the same instant: exactly one trains
"$BATON" run "$T/long.ini" >"$T/r1.log" 2>&1 &
P1=$!
"$BATON" run "$T/long.ini" >"$T/r2.log" 2>&1 &
P2=$!
RL_PIDS="$P1 $P2"
i=0 # until one of them exits
while kill -0 $P1 2>/dev/null && kill -0 $P2 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 100 ] || fail "simultaneous runs: both still running after 5 s"
    sleep 0.05
done
if kill -0 $P1 2>/dev/null; then W=$P1; L=$P2; llog="$T/r2.log"; else W=$P2; L=$P1; llog="$T/r1.log"; fi
set +e; wait $L; lrc=$?; set -e
[ $lrc = 69 ] || fail "simultaneous runs: the loser exited $lrc"
kill -0 $W 2>/dev/null || fail "simultaneous runs: the winner is not running"
# KNOWN BUG (runner/lock.c, reported): the loser reads .baton.lock in the
# window between the winner's flock and its pid write, and then names the
# previous (dead) holder's pid or "pid unknown ... kill -TERM 0". Set
# LOCK_RACE_STRICT=1 once lock.c names the holder reliably.
LOCK_RACE_STRICT=${LOCK_RACE_STRICT:-0}
if ! grep -q "(pid $W," "$llog"; then
    [ "$LOCK_RACE_STRICT" = 1 ] && fail "simultaneous runs: the loser does not name the winner $W: $(cat "$llog")"
    note "KNOWN BUG (runner/lock.c race): the loser named '$(grep -o '(pid [a-z0-9]*' "$llog")', the winner is $W"
fi
kill -TERM $W
set +e; wait $W; rc=$?; set -e
RL_PIDS=""
[ $rc = 75 ] || fail "simultaneous runs: the winner exited $rc after SIGTERM"
note "simultaneous runs: pid $W trained, pid $L exited 69"

# ---- 3. a SIGKILLed holder: the lock goes with it, the next run resumes
"$BATON" run "$T/long.ini" >"$T/a.log" 2>&1 &
A=$!
RL_PIDS=$A
i=0 # until it holds the lock (a fixed sleep is too short on a loaded machine)
while [ "$(cat "$OUT/.baton.lock" 2>/dev/null)" != "$A" ] && kill -0 $A 2>/dev/null && [ $i -lt 3000 ]; do
    i=$((i + 1)); sleep 0.01
done
kill -KILL $A
set +e; wait $A 2>/dev/null; set -e
RL_PIDS=""
[ "$(cat "$OUT/.baton.lock")" = "$A" ] || fail "the killed holder's pid is not in .baton.lock"
brun "$T/d.log" run "$T/long.ini" -s runtime.budget=2s -s runtime.margin=0.5s
expect_rc 75 "$T/d.log" "run after the holder was SIGKILLed (stale pid in .baton.lock)"
grep -q "resumed from" "$T/d.log" || fail "run after SIGKILL did not resume: $(head -n 5 "$T/d.log")"
echo "run lock: all checks passed"
