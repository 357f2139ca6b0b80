#!/bin/sh
# tests/reference/test_electra_parity.sh — ELECTRA discriminators (model_type
# "electra", ElectraForSequenceClassification) against the Transformers
# reference, once with embedding_size == hidden_size and once with
# embedding_size 22 != hidden_size 36 (embeddings_project), random models at
# odd sizes with a WordPiece tokenizer made here from SST-2 words
# (electra_parity.py):
#  - `baton predict --format logits` on singles and pairs within 1e-5
#    relative; the engine's logits, loss and every gradient, and 12 AdamW
#    steps, within 1e-4; inspect-model's output; predict refuses a token
#    classifier holding the sequence head (task = mlm: test_family_mlm.sh);
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

. "$REF/family_train_lib.sh" # family_job, train_family
for fam in electra electra-proj; do
    train_family $fam electra_parity.py
done
echo "electra: ok"
