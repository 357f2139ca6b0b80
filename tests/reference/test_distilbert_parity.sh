#!/bin/sh
# tests/reference/test_distilbert_parity.sh — DistilBERT (model_type
# "distilbert") against the Transformers reference: a random
# DistilBertForSequenceClassification at odd sizes (dim 36, 3 heads, 2
# layers, hidden_dim 52) with a WordPiece vocab.txt made here from SST-2
# words: `baton predict DIR --format logits` (singles and pairs), the
# engine's logits, loss and every gradient within 1e-4 relative, 12 training
# steps within 1e-4; inspect-model; `baton run` trains it (training
# parity: test_roberta_distilbert_train.sh). See
# distilbert_parity.py.
set -u
. "$(dirname "$0")/env.sh"
need_python_module torch transformers tokenizers safetensors numpy
need_data
. "$(dirname "$0")/build_driver.sh"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/distilbert.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
exec "$PY" "$(dirname "$0")/distilbert_parity.py" "$BATON" "$DRIVER" "$WORK" "$BATON_DATA/sst2/train.tsv"
