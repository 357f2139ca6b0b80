#!/bin/sh
# tests/integration/test_run_stall.sh — the stall detector of `baton run`
# end to end: a run whose loop blocks for good (its commit of step 10 opens
# ckpt-000000010.tar.partial, a FIFO no one reads) exits 71 within
# stall_timeout plus a few seconds, says "stalled" on stderr, and the stall
# thread's status.json reads "stalled" (written from the watchdog's thread
# under the status writer's lock: `make test-tsan` runs this test under
# ThreadSanitizer); the archive of step 5 stays valid and the next run
# resumes from it.
. "$(dirname "$0")/run_lib.sh"

write_job "$T/job.ini" runtime.threads=1 train.epochs=20 runtime.checkpoint_every=5 \
    runtime.stall_timeout=2s runtime.status_every=0.2s
OUT="$T/out"
mkdir -p "$OUT"
mkfifo "$OUT/ckpt-000000010.tar.partial"

t0=$(date +%s)
"$BATON" run "$T/job.ini" >"$T/run.log" 2>&1 &
PID=$!; RL_PIDS=$PID
i=0
while kill -0 "$PID" 2>/dev/null; do
    i=$((i + 1)); [ $i -le 1200 ] || fail "no exit within 120 s of a stalled loop: $(tail -n 5 "$T/run.log")"
    sleep 0.1
done
set +e; wait "$PID"; RC=$?; set -e
RL_PIDS=""
took=$(( $(date +%s) - t0 ))
expect_rc 71 "$T/run.log" "a stalled run"
grep -q "stalled: no training step finished for" "$T/run.log" || fail "no stall message: $(tail -n 5 "$T/run.log")"
state=$(sed -n 's/^ *"state": "\([a-z]*\)".*/\1/p' "$OUT/status.json")
[ "$state" = stalled ] || fail "status.json state '$state', expected stalled: $(cat "$OUT/status.json")"
grep -q '"step": 10,\|"step": 9,' "$OUT/status.json" || fail "status.json should name the last step (9 or 10): $(cat "$OUT/status.json")"
note "stalled run: exit 71 after ${took}s, status.json state stalled"

rm -f "$OUT/ckpt-000000010.tar.partial"
brun "$T/verify.log" verify "$OUT/ckpt-000000005.tar"
expect_rc 0 "$T/verify.log" "verify the archive before the stall"
term_when "$T/next.log" 'grep -q "resumed" "$T/next.log"' run "$T/job.ini"
[ "$RC" = 75 ] || fail "the run after a stall exited $RC, expected 75 (SIGTERM): $(tail -n 5 "$T/next.log")"
grep "resumed" "$T/next.log" | grep -q "ckpt-000000005.tar" ||
    fail "the run after a stall did not resume from step 5: $(grep -m1 resumed "$T/next.log")"
note "the next run resumed from step 5"
