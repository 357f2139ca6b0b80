#!/bin/sh
# tests/integration/test_run_mlm.sh — `baton run` with task = mlm keeps the
# promise of classification: interrupted again and again (SIGTERM at random
# steps, SIGKILL at random moments and mid-commit) and resumed each time, the
# job ends with model.safetensors byte-identical to an uninterrupted run.
# Also: eval perplexity in metrics.jsonl (finite, = exp(loss), lower at the
# last eval than at the first), the best archive tracked by perplexity (lower
# is better), early stopping on perplexity follows the rule, the MLM keys are
# in the fingerprint, and `baton export` writes a BertForMaskedLM directory
# without a label map (and `baton predict` refuses it). CPU, the tiny demo
# model, one thread.
# BATON_TEST_SEED=N replays the random interrupt moments of a failed run.
. "$(dirname "$0")/run_lib.sh"
note "random seed $RL_SEED (BATON_TEST_SEED=$RL_SEED replays it)"

# mlm job on the demo text: 1500 lines -> 512 blocks of 30 tokens, 32 steps an epoch, 4 epochs
mlm_keys="job.task=mlm train.epochs=4 train.batch_size=16 train.lr=3e-3 train.eval_every=8 runtime.checkpoint_every=1 runtime.threads=1"

reference() { # JOB — runs JOB uninterrupted; prints the final model sha256
    brun "$T/ref.log" run "$1"
    expect_rc 0 "$T/ref.log" "uninterrupted run of $1"
    ref_a=$(newest_archive "$T/$(basename "$1" .ini)-out")
    is_complete "$ref_a" || fail "$1: final archive $ref_a is not marked complete"
    member_sha "$ref_a"
}
same_as() { # REF_SHA OUTDIR WHAT
    sa_a=$(newest_archive "$2")
    is_complete "$sa_a" || fail "$3: final archive $sa_a is not marked complete"
    sa_sha=$(member_sha "$sa_a")
    [ "$sa_sha" = "$1" ] || fail "$3: model.safetensors of $sa_a is $sa_sha, the uninterrupted run's is $1"
    has_partial "$2" && fail "$3: a .partial is left in $2"
    note "$3: final $(basename "$sa_a") model.safetensors $sa_sha = uninterrupted"
}
# evals OUTDIR — "step loss perplexity" per eval line of metrics.jsonl
evals() {
    grep '"split":"eval"' "$1/metrics.jsonl" | sed -n \
        's/.*"step":\([0-9]*\),.*"loss":\([^,}]*\).*"perplexity":\([^,}]*\).*/\1 \2 \3/p'
}

# ---- 1. concat blocks, 2 epochs: 7 interrupts
start=$(now)
# shellcheck disable=SC2086
write_job "$T/mlm-ref.ini" $mlm_keys job.output_dir=mlm-ref-out
# shellcheck disable=SC2086
write_job "$T/mlm.ini" $mlm_keys job.output_dir=mlm-out
ref=$(reference "$T/mlm-ref.ini")
RA=$(newest_archive "$T/mlm-ref-out")
total=$(trainer_field "$RA" total_steps)
grep -q "512 training blocks" "$T/ref.log" || fail "concat: expected 512 blocks: $(grep -m1 'training' "$T/ref.log")"
note "mlm: uninterrupted run: $total steps in $(elapsed "$start")s"

# metrics: every eval has a finite perplexity = exp(loss); the last is lower than the first
evals "$T/mlm-ref-out" >"$T/evals"
n_ev=$(wc -l <"$T/evals")
[ "$n_ev" -ge 4 ] || fail "metrics.jsonl: $n_ev eval lines with loss and perplexity, expected 8: $(grep eval "$T/mlm-ref-out/metrics.jsonl" | head -n 3)"
awk '{ if ($3 !~ /^[0-9.eE+-]+$/ || $3 + 0 <= 1 || $3 + 0 > 1e6) { print "not finite: " $0; exit 1 }
       d = $3 - exp($2); if (d < 0) d = -d; if (d > 1e-6 * $3) { print "perplexity != exp(loss): " $0; exit 1 } }' \
    "$T/evals" || fail "metrics.jsonl: bad perplexity"
first=$(head -n 1 "$T/evals" | cut -d' ' -f3); last=$(tail -n 1 "$T/evals" | cut -d' ' -f3)
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a) }' || fail "perplexity did not decrease: first $first, last $last"
grep '"split":"eval"' "$T/mlm-ref-out/metrics.jsonl" | grep -q '"masked_tokens":[1-9]' || fail "no masked_tokens in eval lines"
note "mlm: $n_ev evals, perplexity $first -> $last"
# the best archive is the lowest perplexity
best=$(sort -g -k3 "$T/evals" | head -n 1)
[ "$(trainer_field "$RA" metric)" = '"perplexity"' ] || fail "trainer.json best metric is $(trainer_field "$RA" metric), not perplexity"
bstep=$(echo "$best" | cut -d' ' -f1)
tar -xOf "$RA" trainer.json | grep -q "\"best\":{\"metric\":\"perplexity\",\"value\":[^,]*,\"step\":$bstep," \
    || fail "best: trainer.json does not name step $bstep (lowest perplexity): $(tar -xOf "$RA" trainer.json | grep -o '"best":{[^}]*}')"

interrupt_runs "$T/mlm.ini" "$T/mlm-out" 7 "$T/mlm.log"
note "mlm: $INTS interrupts ($TERMS SIGTERM, $KILLS SIGKILL, $COMMIT_KILLS of them mid-commit)"
[ $INTS -ge 5 ] || fail "mlm: only $INTS interrupts"
[ $TERMS -ge 1 ] && [ $KILLS -ge 1 ] || fail "mlm: want SIGTERM and SIGKILL interrupts (TERM $TERMS, KILL $KILLS)"
run_to_end "$T/mlm.ini" "$T/mlm.log"
same_as "$ref" "$T/mlm-out" "mlm concat ($(elapsed "$start")s)"
# the resumed job's evaluations are those of the uninterrupted one
evals "$T/mlm-out" | cut -d' ' -f1,3 >"$T/ev-int"; cut -d' ' -f1,3 "$T/evals" >"$T/ev-ref"
cmp -s "$T/ev-int" "$T/ev-ref" || fail "interrupted run's evals differ: $(diff "$T/ev-ref" "$T/ev-int" | head)"

# ---- 2. the MLM keys are in the fingerprint
for kv in data.mlm_probability=0.2 data.whole_word_mask=true data.mlm_grouping=line; do
    brun "$T/fp.log" run "$T/mlm.ini" -s "$kv"
    expect_rc 78 "$T/fp.log" "resume with $kv"
    grep -q "^${kv%%=*}: " "$T/fp.log" || fail "$kv: the change is not listed: $(cat "$T/fp.log")"
done
note "fingerprint: mlm_probability, whole_word_mask, mlm_grouping changes refused"

# ---- 3. line blocks, whole words, grad_accum = 2 (76 steps): 4 interrupts
start=$(now)
more="data.mlm_grouping=line data.whole_word_mask=true train.grad_accum=2 train.epochs=2 data.limit_train=1200"
# shellcheck disable=SC2086
write_job "$T/line-ref.ini" $mlm_keys $more job.output_dir=line-ref-out
# shellcheck disable=SC2086
write_job "$T/line.ini" $mlm_keys $more job.output_dir=line-out
ref_line=$(reference "$T/line-ref.ini")
grep -q "1200 training blocks" "$T/ref.log" || fail "line: expected 1200 blocks: $(grep -m1 'training' "$T/ref.log")"
interrupt_runs "$T/line.ini" "$T/line-out" 4 "$T/line.log"
note "line: $INTS interrupts ($TERMS SIGTERM, $KILLS SIGKILL)"
[ $INTS -ge 3 ] || fail "line: only $INTS interrupts"
run_to_end "$T/line.ini" "$T/line.log"
same_as "$ref_line" "$T/line-out" "mlm line+wwm+accum ($(elapsed "$start")s)"

# ---- 4. early stopping on perplexity: stops where the rule (lower is better) says
write_job "$T/early.ini" $mlm_keys train.lr=2e-2 train.eval_every=4 train.early_stopping_patience=2 \
    runtime.checkpoint_every=0 job.output_dir=early-out
brun "$T/early.log" run "$T/early.ini"
expect_rc 0 "$T/early.log" "early stopping run"
evals "$T/early-out" >"$T/eev"
# patience 2: stop after 2 evaluations in a row without a new lowest perplexity
want=$(awk -v tot="$total" '{ if (NR == 1 || $3 < b) { b = $3; bad = 0 } else bad++; last = $1; if (bad >= 2) { print $1; s = 1; exit } }
          END { if (!s) print "none" }' "$T/eev")
EA=$(newest_archive "$T/early-out")
reason=$(trainer_field "$EA" stop_reason)
if [ "$want" = none ]; then
    [ "$reason" != '"early stopping"' ] || fail "early: stopped early but the perplexities never worsened twice: $(cat "$T/eev")"
    note "early stopping: perplexity never worsened twice in a row at lr 2e-2 (ran to the end)"
else
    [ "$reason" = '"early stopping"' ] && [ "$(trainer_field "$EA" step)" = "$want" ] \
        || fail "early: expected a stop at step $want, got step $(trainer_field "$EA" step) ($reason); evals: $(cat "$T/eev")"
    note "early stopping on perplexity at step $want"
fi

# ---- 5. export: a BertForMaskedLM directory, no label map
brun "$T/export.log" export "$(newest_archive "$T/mlm-out")" "$T/hf"
expect_rc 0 "$T/export.log" "export"
for f in config.json model.safetensors vocab.txt tokenizer_config.json; do
    [ -s "$T/hf/$f" ] || fail "export: no $f"
done
tr -d ' \n' <"$T/hf/config.json" | grep -q '"architectures":\["BertForMaskedLM"\]' \
    || fail "export: architectures is not [BertForMaskedLM]: $(cat "$T/hf/config.json")"
if grep -q 'id2label\|label2id\|problem_type' "$T/hf/config.json"; then
    fail "export: config.json has a classification label map: $(cat "$T/hf/config.json")"
fi
grep -q 'cls.predictions.transform.dense.weight' "$T/hf/model.safetensors" || fail "export: no MLM head in model.safetensors"
grep -q 'cls.predictions.bias' "$T/hf/model.safetensors" || fail "export: no cls.predictions.bias"
note "export: BertForMaskedLM directory"
# predict has no classifier to use in an MLM archive: a clear refusal, not random logits
printf 'a good film\n' >"$T/in.txt"
brun "$T/predict.log" predict "$(newest_archive "$T/mlm-out")" --input "$T/in.txt" --threads 1
expect_rc 64 "$T/predict.log" "predict with an MLM archive"
grep -q "masked-LM checkpoint" "$T/predict.log" || fail "predict with an MLM archive: $(cat "$T/predict.log")"

# ---- 6. bad MLM job values: clear errors with file:line
write_job "$T/bad.ini" job.task=mlm data.mlm_probability=0
brun "$T/bad.log" run "$T/bad.ini"
expect_rc 78 "$T/bad.log" "mlm_probability = 0"
grep -q "bad.ini:[0-9]*: \[data\] mlm_probability: task mlm needs a probability above 0" "$T/bad.log" \
    || fail "mlm_probability = 0: $(cat "$T/bad.log")"
write_job "$T/short.ini" job.task=mlm data.limit_train=2 data.max_seq_len=64
brun "$T/short.log" run "$T/short.ini"
expect_rc 65 "$T/short.log" "a corpus shorter than one block"
grep -q "fewer than one block" "$T/short.log" || fail "short corpus: $(cat "$T/short.log")"

echo "run mlm: all checks passed"
