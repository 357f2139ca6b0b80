#!/bin/sh
# tests/reference/test_deberta_parity.sh — DeBERTa-v2/v3 (model_type
# "deberta-v2") against the Transformers reference: random
# DebertaV2ForSequenceClassification at odd sizes (hidden 40, 5 heads, 2
# layers, intermediate 52), a v3-like one (log position buckets, p2c|c2p, no
# absolute positions) and a v2-like one (absolute positions, token types, c2p
# only), with a Unigram tokenizer trained here on SST-2 text: `baton predict
# DIR --format logits` (singles and pairs) within 1e-5 relative, and the
# engine's logits, loss and every gradient within 1e-4. See deberta_parity.py.
set -u
. "$(dirname "$0")/env.sh"
need_python_module torch transformers tokenizers safetensors numpy
need_data
. "$(dirname "$0")/build_driver.sh"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/deberta.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
exec "$PY" "$(dirname "$0")/deberta_parity.py" "$BATON" "$DRIVER" "$WORK" "$BATON_DATA/sst2/train.tsv"
