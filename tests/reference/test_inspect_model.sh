#!/bin/sh
# tests/reference/test_inspect_model.sh — `baton inspect-model` against what
# Python's safetensors/transformers see: all-MiniLM-L6-v2, and tiny random
# BertForSequenceClassification (3 labels, fp32 and fp16), BertForMaskedLM and
# BertForPreTraining directories written by save_pretrained(safe_serialization=True);
# plus broken directories that must fail with the right exit code and message.
set -u
. "$(dirname "$0")/env.sh"
need_python_module torch transformers safetensors
need_minilm
exec "$PY" "$(dirname "$0")/test_inspect_model.py" "$BATON" "$MINILM"
