# tests/reference/family_train_lib.sh — sourced by test_roberta_distilbert_train.sh,
# test_deberta_train.sh and test_electra_parity.sh (after tests/integration/run_lib.sh, with $T,
# $REF, $PY): the job they train a family's model with, and the one round of
# proofs per family (issue 22). Owns no test of its own (tests/run.sh runs
# test_*.sh only).

# family_job FILE FAMILY OUTDIR [EXTRA LINE]: 30 steps of task = classify on
# $T/train.tsv's 24 pairs (batch 8 x grad_accum 3, warmup, weight decay,
# clipping), an archive every step
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

# train_family FAMILY [CHECKER]: the model directory $T/FAMILY trained
# uninterrupted (a valid format-2 archive carrying its tokenizer.json, which
# `baton eval` scores) and killed/resumed again and again (byte-identical
# end), exported, predicted from the archive and the export (identical), and
# CHECKER's check against Transformers (default family_train.py).
train_family() {
    fam=$1
    checker=${2:-family_train.py}
    family_job "$T/$fam-ref.ini" "$fam" "$fam-ref-out" ""
    family_job "$T/$fam.ini" "$fam" "$fam-out" ""
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
    "$PY" "$REF/$checker" check "$fam" "$T" || fail "$fam: against Transformers (above)"
}
