#!/bin/sh
# tests/reference/test_family_token.sh — `task = token_classify` on RoBERTa,
# DistilBERT, ELECTRA and DeBERTa-v3 (issue 22): random encoders at odd sizes
# with their own tokenizers (byte-level BPE for RoBERTa, whose words baton
# encodes with a leading space as Transformers' add_prefix_space=True does;
# Unigram + Metaspace for deberta_parity's v3-like model, each word its own
# "▁"-led pre-token as with is_split_into_words), given a
# random AutoModelForTokenClassification head (family_token.py), for each
# family:
#  - 20 steps of `baton run` on 16 CoNLL sentences (one micro-batch, warmup,
#    weight decay, clipping): train loss and final weights within 1e-4 of a
#    Transformers loop on the same batch (labels on each word's first
#    sub-token, is_split_into_words=True);
#  - the job killed (SIGTERM, SIGKILL, SIGKILL mid-commit) and resumed ends
#    with model.safetensors byte-identical to the uninterrupted run;
#  - `baton export` reloads as the family's ForTokenClassification with no
#    missing or unexpected keys, and its logits at each word's first
#    sub-token are `baton predict --format logits`'s within 1e-5.
set -u
REF=$(cd "$(dirname "$0")" && pwd)
. "$REF/env.sh"
need_python_module torch transformers tokenizers safetensors numpy
need_data
. "$REF/../integration/run_lib.sh" # $T, fail, note, brun, interrupt_runs, member_sha, ...
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
"$PY" "$REF/family_token.py" make "$T" "$BATON_DATA/sst2/train.tsv" >"$T/make.log" 2>&1 ||
    fail "making the models and data: $(tail -n 5 "$T/make.log")"

for fam in roberta distilbert electra debv3; do
    for out in $fam-ref $fam-out; do
        printf '[job]\ntask = token_classify\noutput_dir = %s\nseed = 3\n[model]\npath = %s-tok\n[data]\n%s\n' \
            $out $fam "train = train.conll
max_seq_len = 32
[train]
max_steps = 20
batch_size = 16
lr = 2e-3
warmup_steps = 2
weight_decay = 0.01
max_grad_norm = 1.0
[runtime]
threads = 1
checkpoint_every = 1
keep_last = 2
progress = none" >"$T/$out.ini"
    done
    resume_identical "$fam token_classify" "$T/$fam-ref.ini" "$T/$fam-ref" "$T/$fam-out.ini" "$T/$fam-out"
    A=$REF_ARCHIVE
    "$BATON" export "$A" "$T/$fam-export" >"$T/export.log" 2>&1 || fail "$fam: export: $(cat "$T/export.log")"
    "$BATON" predict "$T/$fam-export" --input "$T/in.conll" --threads 1 --format logits >"$T/$fam-pred.tsv" \
        2>"$T/predict.log" || fail "$fam: predict on the export: $(cat "$T/predict.log")"
    "$BATON" predict "$A" --input "$T/in.conll" --threads 1 --format logits >"$T/$fam-pred-a.tsv" \
        2>"$T/predict.log" || fail "$fam: predict on the archive: $(cat "$T/predict.log")"
    cmp -s "$T/$fam-pred.tsv" "$T/$fam-pred-a.tsv" || fail "$fam: predict on the archive and on its export differ"
    "$PY" "$REF/family_token.py" check $fam "$T" || fail "$fam: against Transformers (above)"
done
echo "family token: ok"
