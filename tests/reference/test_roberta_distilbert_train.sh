#!/bin/sh
# tests/reference/test_roberta_distilbert_train.sh — `baton run` trains, resumes, exports
# and predicts RoBERTa, XLM-R and DistilBERT sequence classifiers (issue 22):
# random models at odd sizes with a byte-level BPE, XLM-R's Unigram resp. a
# WordPiece tokenizer trained here on SST-2 (family_train.py's writers), on
# 24 sentence pairs:
#  - 30 steps (batch 8 x grad_accum 3, warmup, weight decay, clipping;
#    family_train_lib.sh's job and round of proofs, shared with
#    test_deberta_train.sh): the
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
#    test_family_tasks.sh, test_family_token.sh, test_family_mlm.sh);
#  - XLM-R (xlmr): a directory exactly as Transformers writes it
#    (XLMRobertaForSequenceClassification's save_pretrained, model_type
#    "xlm-roberta"; XLMRobertaTokenizerFast's save of a Unigram tokenizer.json
#    with a Precompiled char map + Replace(" {2,}"), Metaspace prepend
#    "always", RobertaProcessing, <s> <pad> </s> <unk> at 0-3 and <mask> the
#    last piece): `baton tokenize` ids == the fast tokenizer's for every
#    SST-2 dev sentence, singles and pairs, `baton predict` within 1e-5 of
#    Transformers, and AutoTokenizer loads the export as
#    XLMRobertaTokenizerFast with the same ids (xlmr_dir.py).
set -u
. "$(dirname "$0")/env.sh"
need_python_module torch transformers tokenizers safetensors numpy
need_data
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
. "$(dirname "$0")/../integration/run_lib.sh" # $T, fail, note, brun, interrupt_runs, member_sha, ...
REF=$(cd "$(dirname "$0")" && pwd)
"$PY" "$REF/family_train.py" make "$T" "$BATON_DATA/sst2/train.tsv" roberta distilbert xlmr >"$T/make.log" 2>&1 ||
    fail "making the models: $(tail -n 5 "$T/make.log")"
DEV="$BATON_DATA/sst2/dev.tsv"
"$PY" "$REF/xlmr_dir.py" dir "$BATON" "$T" "$DEV" || fail "the XLM-R directory against Transformers (above)"

. "$REF/family_train_lib.sh" # family_job, train_family
for fam in roberta distilbert xlmr; do
    train_family $fam
done
"$PY" "$REF/xlmr_dir.py" export "$T" "$DEV" || fail "the XLM-R export against Transformers (above)"

echo "family train: ok"
