#!/bin/sh
# tests/reference/test_electra_parity.sh — ELECTRA discriminators (model_type
# "electra", ElectraForSequenceClassification) against the Transformers
# reference, once with embedding_size == hidden_size and once with
# embedding_size 22 != hidden_size 36 (embeddings_project), random models at
# odd sizes with a WordPiece tokenizer made here from SST-2 words
# (electra_parity.py):
#  - `baton predict --format logits` on singles and pairs within 1e-5
#    relative; the engine's logits, loss and every gradient, and 12 AdamW
#    steps, within 1e-4; inspect-model's output; `baton run` refuses the tasks
#    electra_parity.py's REFUSED lists (exit 78, naming the task and
#    model_type), predict refuses a token classifier holding the sequence head;
#  - `baton run` of 30 steps on 24 sentence pairs (batch 8 x grad_accum 3,
#    warmup, weight decay, clipping): train loss and final weights within
#    1e-4 of a Transformers loop (family_train.py's check); the same job
#    killed (SIGTERM, SIGKILL, SIGKILL mid-commit) and resumed ends with
#    model.safetensors byte-identical; `baton export` reloads in
#    Transformers (AutoModelForSequenceClassification + AutoTokenizer:
#    ElectraTokenizerFast) with `baton predict`'s logits within 1e-5; predict
#    on the archive and on the export agree exactly; `baton eval` on the
#    archive.
set -u
. "$(dirname "$0")/env.sh"
need_python_module torch transformers tokenizers safetensors numpy
need_data
. "$(dirname "$0")/build_driver.sh"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
. "$(dirname "$0")/../integration/run_lib.sh" # $T, fail, note, brun, interrupt_runs, member_sha, ...
REF=$(cd "$(dirname "$0")" && pwd)

mkdir -p "$T/parity"
"$PY" "$REF/electra_parity.py" parity "$BATON" "$DRIVER" "$T/parity" "$BATON_DATA/sst2/train.tsv" ||
    fail "electra parity (above)"

"$PY" "$REF/electra_parity.py" make "$T" "$BATON_DATA/sst2/train.tsv" >"$T/make.log" 2>&1 ||
    fail "making the models: $(tail -n 5 "$T/make.log")"

# electra_job FILE MODEL OUTDIR
electra_job() {
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
JOB
}

for fam in electra electra-proj; do
    electra_job "$T/$fam-ref.ini" $fam $fam-ref-out
    electra_job "$T/$fam.ini" $fam $fam-out
    brun "$T/$fam-ref.log" run "$T/$fam-ref.ini"
    expect_rc 0 "$T/$fam-ref.log" "$fam: uninterrupted run"
    A=$(newest_archive "$T/$fam-ref-out")
    is_complete "$A" || fail "$fam: $A is not complete"
    ref_sha=$(member_sha "$A")
    "$BATON" inspect "$A" >"$T/inspect.log" 2>&1 || fail "$fam: baton inspect $A: $(cat "$T/inspect.log")"
    grep -q "version 2," "$T/inspect.log" || fail "$fam: $A is not format version 2"
    grep -q "^contents *valid" "$T/inspect.log" || fail "$fam: $A: $(cat "$T/inspect.log")"
    [ "$(member_sha "$A" tokenizer.json)" = "$(sha256sum <"$T/$fam/tokenizer.json" | cut -d' ' -f1)" ] ||
        fail "$fam: the archive's tokenizer.json is not the model directory's"
    "$BATON" eval "$T/$fam-ref.ini" --latest -s data.eval="$T/train.tsv" >"$T/eval.log" 2>&1 ||
        fail "$fam: baton eval: $(cat "$T/eval.log")"
    note "$fam: baton eval on the archive: $(tail -n 1 "$T/eval.log")"
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
    "$PY" "$REF/electra_parity.py" check $fam "$T" || fail "$fam: against Transformers (above)"
done
echo "electra: ok"
