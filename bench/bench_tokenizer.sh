#!/bin/sh
# bench/bench_tokenizer.sh — tokens/s on SST-2 train, single thread: baton vs
# BertTokenizerFast (Rust tokenizers, encode_batch, 1 thread). Ends with
# `tokenizer: ours X tokens/s, peer Y tokens/s, ratio R`.
set -u
PY=${BATON_PYTHON:-/usr/bin/python3}
model="${BATON_MODELS:-}/all-MiniLM-L6-v2"
tsv="${BATON_DATA:-}/sst2/train.tsv"
[ -n "${BATON:-}" ] && [ -x "$BATON" ] || { echo "skip: \$BATON (the baton binary) not set or not executable"; exit 77; }
[ -f "$model/vocab.txt" ] || { echo "skip: no model at $model (run: sh tests/reference/fetch_models.sh)"; exit 77; }
[ -f "$tsv" ] || { echo "skip: no SST-2 at $tsv (\$BATON_DATA)"; exit 77; }
"$PY" -c "import tokenizers, transformers" 2>/dev/null || { echo "skip: python tokenizers/transformers missing for $PY"; exit 77; }
exec "$PY" "$(dirname "$0")/bench_tokenizer.py" "$BATON" "$model" "$tsv" "${BENCH_RUNS:-3}"
