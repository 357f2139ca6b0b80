#!/bin/sh
# tests/reference/test_family_tasks.sh — `task = similarity` and `task =
# classify_long` on RoBERTa, DistilBERT, ELECTRA and DeBERTa-v3 (issue 22):
# random models at odd sizes, without their classification heads (baton
# initialises them; DeBERTa: pooler.dense too), with their own tokenizers
# (family_train.py's and electra_parity.py's writers; byte-level BPE with
# <s>/</s> for RoBERTa, Unigram + Metaspace with [CLS]/[SEP] for deberta_parity's
# v3-like model: relative positions only; its v2-like model, absolute
# positions and token types, is checked once per task without interrupts),
# for each family and task:
#  - the job killed (SIGTERM, SIGKILL, SIGKILL mid-commit) and resumed ends
#    with model.safetensors byte-identical to the uninterrupted run;
#  - `baton export` reloads in Transformers as the family's
#    ForSequenceClassification with `baton predict`'s logits (similarity: the
#    pairs' score; classify_long: the mean over the tokenizer's overflowing
#    chunks, which carry the family's own special tokens) — family_tasks.py;
#  - DeBERTa-v3 with [model] pooling = attention: resumed byte-identical, and
#    predict from the archive and from its export agree exactly;
#  (token_classify: test_family_token.sh; mlm: test_family_mlm.sh.)
set -u
. "$(dirname "$0")/env.sh"
need_data
need_python_module torch transformers tokenizers safetensors numpy
REF=$(cd "$(dirname "$0")" && pwd)
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
. "$REF/../integration/run_lib.sh" # $T, fail, note, brun, interrupt_runs, member_sha, ...
{ "$PY" "$REF/family_train.py" make "$T" "$BATON_DATA/sst2/train.tsv" roberta distilbert debv3 debv2 &&
    "$PY" "$REF/electra_parity.py" make "$T/e" "$BATON_DATA/sst2/train.tsv" &&
    "$PY" "$REF/family_tasks.py" data "$T" "$BATON_DATA/sst2/train.tsv" "$T/roberta" "$T/distilbert" \
        "$T/e/electra" "$T/debv3" "$T/debv2"; } >"$T/make.log" 2>&1 ||
    fail "making the models and data: $(tail -n 5 "$T/make.log")"

# task_job FILE TASK MODEL OUTDIR
task_job() {
    if [ "$2" = similarity ]; then
        data="train = sim.tsv
text_column = sentence1
text_pair_column = sentence2
label_column = score
max_seq_len = 32"
    else
        data="train = docs.tsv
text_column = text
label_column = label
max_seq_len = 24
stride = 5
chunk_batch = 3"
    fi
    cat >"$1" <<JOB
[job]
task = $2
output_dir = $4
seed = 5
[model]
path = $3
[data]
$data
[train]
max_steps = 12
batch_size = 4
grad_accum = 2
lr = 2e-3
warmup_ratio = 0.2
weight_decay = 0.02
max_grad_norm = 0.5
[runtime]
progress = none
threads = 1
checkpoint_every = 1
keep_last = 3
JOB
}

for fam in roberta distilbert electra debv3; do
    model=$fam-base
    [ $fam != electra ] || model=e/electra-base
    mt=$fam
    [ $fam != debv3 ] || mt=deberta-v2
    for task in similarity classify_long; do
        what="$fam $task"
        task_job "$T/$fam-$task-ref.ini" $task $model $fam-$task-ref
        task_job "$T/$fam-$task.ini" $task $model $fam-$task-out
        resume_identical "$what" "$T/$fam-$task-ref.ini" "$T/$fam-$task-ref" "$T/$fam-$task.ini" "$T/$fam-$task-out"
        A=$REF_ARCHIVE
        in="$T/sim-in.txt"
        [ $task = similarity ] || in="$T/docs-in.txt"
        "$BATON" export "$A" "$T/$fam-$task-export" >"$T/export.log" 2>&1 || fail "$what: export: $(cat "$T/export.log")"
        "$BATON" predict "$T/$fam-$task-export" --input "$in" --threads 1 --format logits >"$T/pred.tsv" \
            2>"$T/predict.log" || fail "$what: predict on the export: $(cat "$T/predict.log")"
        "$PY" "$REF/family_tasks.py" check $task "$T/$fam-$task-export" "$in" "$T/pred.tsv" $mt ||
            fail "$what: against Transformers (above)"
    done
done

# the v2-like DeBERTa (absolute positions restarting at every chunk, token
# types 0/1 in the pairs): one uninterrupted run per task, its export against
# Transformers as above
for task in similarity classify_long; do
    task_job "$T/debv2-$task.ini" $task debv2-base debv2-$task-out
    brun "$T/debv2-$task.log" run "$T/debv2-$task.ini"
    expect_rc 0 "$T/debv2-$task.log" "debv2 $task"
    in="$T/sim-in.txt"
    [ $task = similarity ] || in="$T/docs-in.txt"
    "$BATON" export "$(newest_archive "$T/debv2-$task-out")" "$T/debv2-$task-export" >"$T/export.log" 2>&1 ||
        fail "debv2 $task: export: $(cat "$T/export.log")"
    "$BATON" predict "$T/debv2-$task-export" --input "$in" --threads 1 --format logits >"$T/pred2.tsv" \
        2>"$T/predict.log" || fail "debv2 $task: predict on the export: $(cat "$T/predict.log")"
    "$PY" "$REF/family_tasks.py" check $task "$T/debv2-$task-export" "$in" "$T/pred2.tsv" deberta-v2 ||
        fail "debv2 $task: against Transformers (above)"
done

# DeBERTa's pooled vector under attention pooling over chunks ([model] pooling
# = attention: baton's own head, no Transformers class): killed and resumed,
# byte-identical; predict from the archive and from its export agree exactly
for out in debv3-attn-ref debv3-attn-out; do
    task_job "$T/$out.ini" classify_long debv3-base $out
    sed -i 's/^\[model\]$/[model]\npooling = attention/' "$T/$out.ini"
done
resume_identical "debv3 classify_long, pooling = attention" "$T/debv3-attn-ref.ini" "$T/debv3-attn-ref" \
    "$T/debv3-attn-out.ini" "$T/debv3-attn-out"
A=$REF_ARCHIVE
"$BATON" export "$A" "$T/debv3-attn-export" >"$T/export.log" 2>&1 ||
    fail "debv3 attention pooling: export: $(cat "$T/export.log")"
"$BATON" predict "$A" --input "$T/docs-in.txt" --threads 1 --format logits >"$T/attn-a.tsv" 2>"$T/predict.log" ||
    fail "debv3 attention pooling: predict on the archive: $(cat "$T/predict.log")"
"$BATON" predict "$T/debv3-attn-export" --input "$T/docs-in.txt" --threads 1 --format logits >"$T/attn-e.tsv" \
    2>"$T/predict.log" || fail "debv3 attention pooling: predict on the export: $(cat "$T/predict.log")"
[ "$(wc -l <"$T/attn-a.tsv")" -eq "$(wc -l <"$T/docs-in.txt")" ] && cmp -s "$T/attn-a.tsv" "$T/attn-e.tsv" ||
    fail "debv3 attention pooling: predict on the archive and on its export differ"
cmp -s "$T/attn-a.tsv" "$T/pred.tsv" && fail "debv3 attention pooling predicts what mean pooling does"
note "debv3 classify_long, pooling = attention: archive and export predict the same $(wc -l <"$T/attn-a.tsv") documents"

echo "family tasks: ok"
