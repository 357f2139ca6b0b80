#!/bin/sh
# tests/reference/test_xlmr_dir.sh — a real XLM-R model directory, end to end
# (issue 22): a random XLMRobertaForSequenceClassification (hidden 36, 3
# heads, 2 layers; model_type "xlm-roberta") saved by save_pretrained beside
# XLMRobertaTokenizerFast's own save of a Unigram tokenizer trained here on
# SST-2's train text and shaped as XLM-R's tokenizer.json (Precompiled char
# map + Replace(" {2,}"), Metaspace prepend "always", RobertaProcessing,
# <s> <pad> </s> <unk> at 0-3 and <mask> the last piece; tokenizer_class
# XLMRobertaTokenizer) — family_train.py's xlmr writer:
#  - `baton tokenize` ids == XLMRobertaTokenizerFast's for every SST-2 dev
#    sentence, singles and pairs; `baton predict` logits within 1e-5 of
#    Transformers (xlmr_dir.py dir);
#  - family_train_lib.sh's round: 30 `baton run` steps with train loss and
#    weights within 1e-4 of a Transformers loop, kill/resume byte-identical,
#    `baton eval`, export reloaded as XLMRobertaForSequenceClassification with
#    predict's logits within 1e-5 (family_train.py check);
#  - AutoTokenizer loads the export's tokenizer as XLMRobertaTokenizerFast
#    with the model directory's ids (xlmr_dir.py export).
set -u
. "$(dirname "$0")/env.sh"
need_python_module torch transformers tokenizers safetensors numpy
need_data
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
. "$(dirname "$0")/../integration/run_lib.sh" # $T, fail, note, brun, interrupt_runs, member_sha, ...
REF=$(cd "$(dirname "$0")" && pwd)
DEV="$BATON_DATA/sst2/dev.tsv"
"$PY" "$REF/family_train.py" make "$T" "$BATON_DATA/sst2/train.tsv" xlmr >"$T/make.log" 2>&1 ||
    fail "making the model directory: $(tail -n 5 "$T/make.log")"
"$PY" "$REF/xlmr_dir.py" dir "$BATON" "$T" "$DEV" || fail "the XLM-R directory against Transformers (above)"

. "$REF/family_train_lib.sh" # family_job, train_family
train_family xlmr
"$PY" "$REF/xlmr_dir.py" export "$T" "$DEV" || fail "the XLM-R export against Transformers (above)"
echo "xlmr dir: ok"
