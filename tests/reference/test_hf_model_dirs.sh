#!/bin/sh
# tests/reference/test_hf_model_dirs.sh — Hugging Face directories in: model
# directories written by the Transformers reference the way users get them
# (save_pretrained of BertTokenizerFast built from a vocab file, whose
# tokenizer_config.json says model_max_length 1000000000000000019884624838656;
# of the slow BertTokenizer; of a cased tokenizer; a config.json with extra
# keys, a huge integer and repeated keys) load in `baton predict` and
# `baton inspect-model`, and predict the reference's logits (<= 1e-4
# relative). Hand-made edge cases (Infinity, NaN, a real where an integer is
# expected) are read or refused the way Transformers would.
set -u
. "$(dirname "$0")/env.sh"
need_python_module torch transformers
need_minilm
T=$(mktemp -d "${TMPDIR:-/tmp}/hf-dirs.XXXXXX")
trap 'rm -rf "$T"' EXIT
exec "$PY" "$(dirname "$0")/test_hf_model_dirs.py" "$BATON" "$MINILM/vocab.txt" "$T"
