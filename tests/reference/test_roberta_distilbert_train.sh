#!/bin/sh
# tests/reference/test_roberta_distilbert_train.sh — `baton run` trains, resumes, exports
# and predicts RoBERTa and DistilBERT sequence classifiers (issue 22): random
# models at odd sizes with a byte-level BPE resp. WordPiece tokenizer trained
# here on SST-2 (roberta_parity.py's and distilbert_parity.py's writers), on
# 24 sentence pairs:
#  - 30 steps (batch 8 x grad_accum 3, warmup, weight decay, clipping): the
#    train loss and the final weights within 1e-4 of a Transformers loop on
#    the same batches (family_train.py);
#  - the same job killed (SIGTERM, SIGKILL, SIGKILL mid-commit) and resumed
#    again and again ends with model.safetensors byte-identical to the
#    uninterrupted run (tests/integration/run_lib.sh's interrupt_runs);
#  - archives carry tokenizer.json (format 2); `baton export` writes the
#    family's tensor names and tokenizer files, which Transformers reloads
#    (AutoModelForSequenceClassification + AutoTokenizer) with `baton
#    predict`'s logits within 1e-5; predict from the archive and from the
#    export agree exactly (the other tasks of these families:
#    test_family_tasks.sh, test_family_token.sh, test_family_mlm.sh).
set -u
. "$(dirname "$0")/env.sh"
need_python_module torch transformers tokenizers safetensors numpy
need_data
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
. "$(dirname "$0")/../integration/run_lib.sh" # $T, fail, note, brun, interrupt_runs, member_sha, ...
REF=$(cd "$(dirname "$0")" && pwd)
"$PY" "$REF/family_train.py" make "$T" "$BATON_DATA/sst2/train.tsv" >"$T/make.log" 2>&1 ||
    fail "making the models: $(tail -n 5 "$T/make.log")"

# family_job FILE FAMILY OUTDIR [EXTRA LINE]
family_job() {
    cat >"$1" <<JOB
[job]
name = $2
output_dir = $3
seed = 5
[model]
path = $2
[data]
train = train.tsv
text_column = sentence
text_pair_column = sentence2
label_column = label
max_seq_len = 32
[train]
max_steps = 30
batch_size = 8
grad_accum = 3
lr = 1e-3
warmup_steps = 3
weight_decay = 0.01
max_grad_norm = 1.0
[runtime]
checkpoint_every = 1
keep_last = 2
threads = 1
progress = none
$4
JOB
}

for fam in roberta distilbert; do
    family_job "$T/$fam-ref.ini" $fam $fam-ref-out ""
    family_job "$T/$fam.ini" $fam $fam-out ""
    brun "$T/$fam-ref.log" run "$T/$fam-ref.ini"
    expect_rc 0 "$T/$fam-ref.log" "$fam: uninterrupted run"
    A=$(newest_archive "$T/$fam-ref-out")
    is_complete "$A" || fail "$fam: $A is not complete"
    ref_sha=$(member_sha "$A")
    "$BATON" inspect "$A" >"$T/inspect.log" 2>&1 || fail "$fam: baton inspect $A: $(cat "$T/inspect.log")"
    grep -q "version 2," "$T/inspect.log" || fail "$fam: $A is not format version 2"
    [ "$(member_sha "$A" tokenizer.json)" = "$(sha256sum <"$T/$fam/tokenizer.json" | cut -d' ' -f1)" ] ||
        fail "$fam: the archive's tokenizer.json is not the model directory's"
    interrupt_runs "$T/$fam.ini" "$T/$fam-out" 4 "$T/$fam.log"
    run_to_end "$T/$fam.ini" "$T/$fam.log"
    sha=$(member_sha "$(newest_archive "$T/$fam-out")")
    [ "$sha" = "$ref_sha" ] || fail "$fam: after $INTS interrupts ($KILLS SIGKILL, $COMMIT_KILLS mid-commit) the " \
        "weights are $sha, the uninterrupted run's $ref_sha"
    note "$fam: $INTS interrupts ($TERMS SIGTERM, $KILLS SIGKILL, $COMMIT_KILLS mid-commit): model.safetensors $sha = uninterrupted"
    "$BATON" export "$A" "$T/$fam-export" >"$T/export.log" 2>&1 || fail "$fam: export: $(cat "$T/export.log")"
    "$BATON" predict "$T/$fam-export" --input "$T/in.txt" --threads 1 --format logits >"$T/$fam-pred.tsv" \
        2>"$T/predict.log" || fail "$fam: predict on the export: $(cat "$T/predict.log")"
    "$BATON" predict "$A" --input "$T/in.txt" --threads 1 --format logits >"$T/$fam-pred-a.tsv" \
        2>"$T/predict.log" || fail "$fam: predict on the archive: $(cat "$T/predict.log")"
    cmp -s "$T/$fam-pred.tsv" "$T/$fam-pred-a.tsv" || fail "$fam: predict on the archive and on its export differ"
    "$PY" "$REF/family_train.py" check $fam "$T" || fail "$fam: against Transformers (above)"
done

echo "family train: ok"
