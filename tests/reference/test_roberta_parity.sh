#!/bin/sh
# tests/reference/test_roberta_parity.sh — RoBERTa / XLM-R (model_type
# "roberta", "xlm-roberta") against the Transformers reference: random
# RobertaForSequenceClassification / XLMRobertaForSequenceClassification at
# odd sizes (hidden 36, 3 heads, 2 layers, intermediate 52) with a byte-level
# BPE tokenizer trained here on SST-2 text: `baton predict DIR --format
# logits` (singles and pairs) and the engine's logits, loss and every
# gradient within 1e-4 relative, and 12 training steps (AdamW, warmup,
# clipping, accumulation) within 1e-4. See roberta_parity.py.
set -u
. "$(dirname "$0")/env.sh"
need_python_module torch transformers tokenizers safetensors numpy
need_data
. "$(dirname "$0")/build_driver.sh"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/roberta.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
exec "$PY" "$(dirname "$0")/roberta_parity.py" "$BATON" "$DRIVER" "$WORK" "$BATON_DATA/sst2/train.tsv"
