#!/bin/sh
# tests/integration/test_run_micro_auto.sh — train.micro_batch = auto with
# runtime.memory_limit (runner/plan_auto.c), CPU backend, the demo model:
#  - with a limit that fits micro-batches of 8 (from `baton plan --json`) a
#    job of batch_size 32 trains as 8 x grad_accum 4, records that in
#    trainer.json, and ends byte-identical to the explicit 8 x 4 job;
#  - killed at random moments and resumed (later segments with no limit,
#    which would pick 32), it reuses the archive's 8 x 4 and ends
#    byte-identical to the uninterrupted run;
#  - an archive trained at 32 refuses to resume where only 8 fit; a limit
#    below a micro-batch of 1 stops before training with the plan; with
#    micro_batch = off a batch above memory_limit is refused.
. "$(dirname "$0")/run_lib.sh"
note "random seed $RL_SEED (BATON_TEST_SEED=$RL_SEED replays it)"

# 6 epochs of 47 steps: long enough for several interrupts on a fast machine
common="train.epochs=6 train.batch_size=32 runtime.checkpoint_every=1 runtime.threads=1"
# shellcheck disable=SC2086
write_job "$T/plan.ini" $common
peak_at() { # peak_at MICRO — the planned peak of the job at that micro-batch (bytes), accumulating
    # 32 / MICRO of them (from 2 on, one more gradient buffer is held: engine/train.h)
    "$BATON" plan "$T/plan.ini" --device cpu --json -s train.batch_size="$1" -s train.grad_accum=$((32 / $1)) \
        | sed -n 's/.*"peak_bytes":\([0-9]*\).*/\1/p'
}
p8=$(peak_at 8); p16=$(peak_at 16); p1=$(peak_at 1)
[ -n "$p8" ] && [ -n "$p16" ] && [ "$p16" -gt "$p8" ] && [ "$p8" -gt "$p1" ] \
    || fail "baton plan --json: peak_bytes at 1, 8, 16 micro-batches: '$p1' '$p8' '$p16'"
note "planned peaks (cpu): micro-batch 1 $p1, 8 $p8, 16 $p16 bytes"

# ---- 1. the choice, recorded, equal to the explicit job
# shellcheck disable=SC2086
write_job "$T/auto-ref.ini" $common train.micro_batch=auto runtime.memory_limit="$p8" job.output_dir=auto-ref-out
# shellcheck disable=SC2086
write_job "$T/explicit.ini" $common train.batch_size=8 train.grad_accum=4 job.output_dir=explicit-out
brun "$T/auto-ref.log" run "$T/auto-ref.ini"
expect_rc 0 "$T/auto-ref.log" "micro_batch = auto, limit at 8"
grep -q "micro_batch = auto: 8 x grad_accum 4 = 32 examples per step" "$T/auto-ref.log" \
    || fail "no 'micro_batch = auto: 8 x grad_accum 4' line: $(head -n 5 "$T/auto-ref.log")"
ra=$(newest_archive "$T/auto-ref-out")
tar -xOf "$ra" trainer.json | grep -q '"micro_batch":{"mode":"auto","size":8,"grad_accum":4}' \
    || fail "trainer.json of $ra does not record the choice: $(tar -xOf "$ra" trainer.json | head -c 400)"
tar -xOf "$ra" job.ini | grep -q "micro_batch = auto" || fail "the archive's job.ini is not the job as written"
ref=$(member_sha "$ra")
brun "$T/explicit.log" run "$T/explicit.ini"
expect_rc 0 "$T/explicit.log" "explicit 8 x 4"
[ "$(member_sha "$(newest_archive "$T/explicit-out")")" = "$ref" ] \
    || fail "micro_batch = auto (8 x 4) and the explicit batch_size 8, grad_accum 4 job train different weights"
note "auto at the 8-limit = explicit 8 x 4: $ref"

# ---- 2. killed and resumed; later segments without the limit reuse 8 x 4
# shellcheck disable=SC2086
write_job "$T/auto.ini" $common train.micro_batch=auto runtime.memory_limit="$p8" job.output_dir=auto-out
interrupt_runs "$T/auto.ini" "$T/auto-out" 3 "$T/auto.log"
note "auto: $INTS interrupts ($TERMS SIGTERM, $KILLS SIGKILL, $COMMIT_KILLS of them mid-commit)"
[ $INTS -ge 3 ] || fail "auto: only $INTS interrupts"
[ -n "$(newest_archive "$T/auto-out")" ] || fail "auto: no archive after the interrupts"
run_to_end "$T/auto.ini" "$T/auto.log" -s runtime.memory_limit=0
grep -q "resuming with the archive's 8 x grad_accum 4" "$T/auto.log" || [ "$DONE" = 1 ] \
    || fail "the resumed segment did not take the archive's choice: $(head -n 5 "$T/auto.log")"
fa=$(newest_archive "$T/auto-out")
is_complete "$fa" || fail "auto: final archive $fa is not complete"
[ "$(member_sha "$fa")" = "$ref" ] || fail "auto: interrupted and resumed job ends with other weights than the uninterrupted one"
note "auto: killed and resumed (the last segments without a limit) = uninterrupted"

# ---- 3. trained at 32, resumed where only 8 fit: refused
# shellcheck disable=SC2086
write_job "$T/big.ini" $common train.micro_batch=auto train.epochs=1 job.output_dir=big-out
brun "$T/big.log" run "$T/big.ini" -s train.max_steps=2
expect_rc 0 "$T/big.log" "micro_batch = auto without a limit"
grep -q "micro_batch = auto: 32 x grad_accum 1" "$T/big.log" || fail "no limit: not 32 x 1: $(head -n 3 "$T/big.log")"
brun "$T/big2.log" run "$T/big.ini" -s train.max_steps=4 -s runtime.memory_limit="$p8" --force
expect_rc 78 "$T/big2.log" "resume of a 32 x 1 archive where 8 fit"
grep -q "trained with micro-batches of 32" "$T/big2.log" || fail "refusal does not say why: $(cat "$T/big2.log")"

# ---- 4. not even 1 fits: the plan, then exit 78 before training
brun "$T/none.log" run "$T/auto.ini" --fresh -s runtime.memory_limit=$((p1 - 1))
expect_rc 78 "$T/none.log" "a limit below a micro-batch of 1"
grep -q "not even a micro-batch of 1 fits" "$T/none.log" && grep -q "DOES NOT FIT" "$T/none.log" \
    || fail "no plan / reason: $(cat "$T/none.log")"
grep -q "segment 1" "$T/none.log" && fail "it started training anyway"

# ---- 5. micro_batch = off with a limit its batch exceeds
brun "$T/off.log" run "$T/explicit.ini" --fresh -s train.batch_size=16 -s train.grad_accum=2 -s runtime.memory_limit="$p8"
expect_rc 78 "$T/off.log" "micro_batch = off, batch 16 over an 8-limit"
grep -q "memory_limit" "$T/off.log" || fail "refusal does not name memory_limit: $(tail -n 3 "$T/off.log")"

echo "micro_batch auto: all checks passed"
