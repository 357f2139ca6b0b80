#!/bin/sh
# tests/integration/test_run_precision.sh — `[train] precision` through the
# runner (issue 17), on the CPU backend with the tiny demo model:
#   1. the precision changes what happens: fp32 and bf16 end with different
#      weights; trainer.json and `baton status --json` say which ran;
#   2. fp16 with a huge initial loss scale (train.loss_scale_init = 2^40):
#      steps are skipped for overflow (grad_norm null, "skipped" counted in
#      metrics.jsonl), the scale halves per skip, and training recovers;
#   3. kill/resume (SIGTERM, SIGKILL, SIGKILL mid-commit) in fp16 (through
#      that overflow phase: the scaler state must survive) and in bf16 ends
#      byte-identical to an uninterrupted run of the same precision;
#   4. a resume in another precision is accepted with one line saying it is
#      valid but not byte-identical;
#   5. tf32 on the CPU is refused (exit 78) naming the key and its line;
#      train.loss_scale_init out of range is refused, and outside fp16 it
#      is said to have no effect (and has none: section 3's bf16 job).
# BATON_TEST_SEED=N replays the random interrupt moments of a failed run.
. "$(dirname "$0")/run_lib.sh"
note "random seed $RL_SEED (BATON_TEST_SEED=$RL_SEED replays it)"

# 640 examples, batch 32: 20 steps an epoch, 40 in all; commits every step
common="data.limit_train=640 data.limit_eval=64 runtime.checkpoint_every=1 runtime.threads=1"
SCALE=1099511627776 # 2^40

# final_of OUTDIR WHAT — the final archive, which must be complete
final_of() {
    fo_a=$(newest_archive "$1")
    is_complete "$fo_a" || fail "$2: final archive $fo_a is not marked complete"
    echo "$fo_a"
}

# scaler_field ARCHIVE KEY — a top-level value of trainer.json that history
# records may also hold (loss_scale): the top-level one follows "history"
scaler_field() {
    tar -xOf "$1" trainer.json | tr ',{}' '\n\n\n' | sed -n "s/^\"$2\":\(.*\)$/\1/p" | tail -n 1
}

# status_field JOB KEY — a value of `baton status JOB --json`
status_field() {
    brun "$T/st.log" status "$1" --json
    expect_rc 0 "$T/st.log" "status $1"
    sed -n "s/^  \"$2\": \(.*\),\{0,1\}$/\1/p" "$T/st.log" | sed 's/,$//'
}

# ---- 1. fp32 and bf16: different weights, recorded and reported
start=$(now)
# shellcheck disable=SC2086
write_job "$T/fp32.ini" $common train.precision=fp32 job.output_dir=fp32-out
# shellcheck disable=SC2086
write_job "$T/bf16-ref.ini" $common train.precision=bf16 train.loss_scale_init=1024 job.output_dir=bf16-ref-out
brun "$T/fp32.log" run "$T/fp32.ini"
expect_rc 0 "$T/fp32.log" "fp32 run"
brun "$T/bf16.log" run "$T/bf16-ref.ini"
expect_rc 0 "$T/bf16.log" "bf16 run"
grep -q "cpu backend, precision bf16 (requested; on the CPU" "$T/bf16.log" \
    || fail "bf16: the start line does not name the precision: $(head -n 3 "$T/bf16.log")"
# loss_scale_init is fp16's: said to do nothing here (section 3's bf16 job lacks it and ends the same)
grep -q "bf16-ref.ini:[0-9]*: \[train\] loss_scale_init applies to fp16 only" "$T/bf16.log" \
    || fail "bf16: no warning that loss_scale_init has no effect: $(head -n 3 "$T/bf16.log")"
a32=$(final_of "$T/fp32-out" fp32); a16=$(final_of "$T/bf16-ref-out" bf16)
sha32=$(member_sha "$a32"); ref_bf16=$(member_sha "$a16")
[ "$sha32" != "$ref_bf16" ] || fail "fp32 and bf16 end with the same weights ($sha32): the precision changed nothing"
[ "$(trainer_field "$a32" precision)" = '"fp32"' ] || fail "fp32: trainer.json precision $(trainer_field "$a32" precision)"
[ "$(trainer_field "$a16" precision)" = '"bf16"' ] || fail "bf16: trainer.json precision $(trainer_field "$a16" precision)"
[ "$(scaler_field "$a16" loss_scale)" = '"none"' ] || fail "bf16: trainer.json loss_scale $(scaler_field "$a16" loss_scale)"
[ "$(status_field "$T/fp32.ini" precision)" = '"fp32"' ] || fail "status --json of fp32: $(cat "$T/st.log")"
[ "$(status_field "$T/bf16-ref.ini" precision)" = '"bf16"' ] || fail "status --json of bf16: $(cat "$T/st.log")"
[ "$(status_field "$T/bf16-ref.ini" loss_scale)" = null ] || fail "status --json of bf16: a loss scale: $(cat "$T/st.log")"
note "fp32 $sha32, bf16 $ref_bf16: different; recorded and reported ($(elapsed "$start")s)"

# ---- 2. fp16, initial scale 2^40: overflow skips, halving, recovery
start=$(now)
# shellcheck disable=SC2086
write_job "$T/fp16-ref.ini" $common train.precision=fp16 train.loss_scale_init=$SCALE job.output_dir=fp16-ref-out
brun "$T/fp16.log" run "$T/fp16-ref.ini"
expect_rc 0 "$T/fp16.log" "fp16 run"
a=$(final_of "$T/fp16-ref-out" fp16)
ref_fp16=$(member_sha "$a")
sk=$(trainer_field "$a" skipped_steps); ls=$(scaler_field "$a" loss_scale); total=$(trainer_field "$a" total_steps)
[ "$(trainer_field "$a" precision)" = '"fp16"' ] || fail "fp16: trainer.json precision $(trainer_field "$a" precision)"
[ "$sk" -ge 1 ] && [ "$sk" -lt $((total - 5)) ] || fail "fp16 at 2^40: $sk of $total steps skipped (want some, not all)"
# no growth within 2000 clean steps: the scale is exactly 2^40 / 2^skipped
awk -v s="$ls" -v k="$sk" -v i="$SCALE" 'BEGIN { exit !(s + 0 == i / 2 ^ k) }' \
    || fail "fp16: loss scale $ls after $sk skips from 2^40 (want 2^(40-$sk))"
M="$T/fp16-ref-out/metrics.jsonl"
grep '"split":"train"' "$M" | grep -q '"grad_norm":null,"loss_scale":[0-9.e+]*,"skipped":[1-9]' \
    || fail "fp16: no train record with a skipped step (grad_norm null): $(grep '"train"' "$M")"
# recovery: the last records' steps all trained (finite norm, nothing skipped)
grep '"split":"train"' "$M" | tail -n 1 | grep -q '"grad_norm":[0-9][^,]*,"loss_scale":[0-9.e+]*,"skipped":0' \
    || fail "fp16: training did not recover: $(grep '"train"' "$M" | tail -n 1)"
[ "$(status_field "$T/fp16-ref.ini" skipped_steps)" = "$sk" ] || fail "status --json skipped_steps: $(cat "$T/st.log")"
brun "$T/st.txt" status "$T/fp16-ref.ini"
grep -q "^precision    fp16 (loss scale [0-9e+.]*, $sk step(s) skipped for overflow)" "$T/st.txt" \
    || fail "status: no fp16 line: $(cat "$T/st.txt")"
# shellcheck disable=SC2086
write_job "$T/fp16-plain.ini" $common train.precision=fp16 job.output_dir=fp16-plain-out
brun "$T/fp16p.log" run "$T/fp16-plain.ini"
expect_rc 0 "$T/fp16p.log" "fp16 run at the default scale"
ap=$(final_of "$T/fp16-plain-out" "fp16 default scale")
[ "$(trainer_field "$ap" skipped_steps)" = 0 ] && [ "$(scaler_field "$ap" loss_scale)" = 65536.0 ] \
    || fail "fp16 at 2^16: skipped $(trainer_field "$ap" skipped_steps), scale $(scaler_field "$ap" loss_scale)"
[ "$(member_sha "$ap")" != "$ref_fp16" ] || fail "fp16: skipping $sk steps changed nothing"
note "fp16 at 2^40: $sk of $total steps skipped, scale $ls, recovered; at 2^16 none ($(elapsed "$start")s)"

# ---- 3. kill/resume, byte-identical to the uninterrupted run, per precision
for p in fp16 bf16; do
    start=$(now)
    if [ $p = fp16 ]; then ref=$ref_fp16; extra="train.loss_scale_init=$SCALE"; else ref=$ref_bf16; extra=""; fi
    # shellcheck disable=SC2086
    write_job "$T/$p.ini" $common train.precision=$p $extra job.output_dir=$p-out
    interrupt_runs "$T/$p.ini" "$T/$p-out" 4 "$T/$p.log"
    [ $INTS -ge 4 ] || fail "$p: only $INTS interrupts"
    run_to_end "$T/$p.ini" "$T/$p.log"
    fa=$(final_of "$T/$p-out" "$p interrupted")
    sha=$(member_sha "$fa")
    [ "$sha" = "$ref" ] || fail "$p: interrupted run ends with $sha, the uninterrupted one with $ref"
    ra=$(newest_archive "$T/$p-ref-out")
    for k in loss_scale loss_scale_clean_steps skipped_steps; do
        [ "$(scaler_field "$fa" $k)" = "$(scaler_field "$ra" $k)" ] \
            || fail "$p: trainer.json $k $(scaler_field "$fa" $k), uninterrupted $(scaler_field "$ra" $k)"
    done
    note "$p: $INTS interrupts ($TERMS SIGTERM, $KILLS SIGKILL, $COMMIT_KILLS mid-commit): final $sha = uninterrupted ($(elapsed "$start")s)"
done

# ---- 4. a resume in another precision: accepted (no --force), said once
# shellcheck disable=SC2086
write_job "$T/switch.ini" $common train.precision=fp32 job.output_dir=switch-out
term_when "$T/sw1.log" 'newest_step_at_least "$T/switch-out" 3' run "$T/switch.ini"
[ "$RC" = 75 ] || [ "$RC" = 0 ] || fail "switch: first segment exited $RC"
brun "$T/sw2.log" run "$T/switch.ini" -s train.precision=bf16
expect_rc 0 "$T/sw2.log" "switch: resumed in bf16"
[ "$(grep -c "precision: the archive trained in fp32, this segment in bf16: a valid continuation" "$T/sw2.log")" = 1 ] \
    || fail "switch: no (or more than one) line about the precision change: $(head -n 4 "$T/sw2.log")"
[ "$(trainer_field "$(final_of "$T/switch-out" switch)" precision)" = '"bf16"' ] || fail "switch: not recorded as bf16"
note "switch: $(grep -m1 'precision: the archive' "$T/sw2.log" | cut -c1-100)..."

# ---- 5. tf32 on the CPU: refused with the key and its line
# shellcheck disable=SC2086
write_job "$T/tf32.ini" $common train.precision=tf32 job.output_dir=tf32-out
brun "$T/tf32.log" run "$T/tf32.ini"
expect_rc 78 "$T/tf32.log" "tf32 on the CPU"
grep -q "tf32.ini:[0-9]*: \[train\] precision = tf32: .*use precision = fp32" "$T/tf32.log" \
    || fail "tf32: the message does not name the key and its line: $(cat "$T/tf32.log")"
ls "$T/tf32-out"/ckpt-*.tar >/dev/null 2>&1 && fail "tf32: an archive was written"
brun "$T/lsi.log" run "$T/fp16-ref.ini" --fresh -s train.loss_scale_init=0
expect_rc 78 "$T/lsi.log" "loss_scale_init = 0"
grep -q "train.loss_scale_init=0: out of range" "$T/lsi.log" || fail "loss_scale_init = 0: $(cat "$T/lsi.log")"
note "tf32: $(head -n 1 "$T/tf32.log" | cut -c1-110)..."

echo "run precision: all checks passed"
