#!/bin/sh
# bench/bench_tokenizer_json.sh — tokens/s on SST-2 train, single thread, for
# tokenizer.json model directories trained here from the shared data (byte-level
# BPE as RoBERTa; Unigram with a precompiled char map as XLM-R and DeBERTa-v3):
# baton vs the Rust tokenizers crate (Tokenizer.from_file, encode_batch, 1 thread).
# Ends with one `tokenizer_json_<name>: ours X tokens/s, peer Y tokens/s, ratio R`
# line per tokenizer.
set -u
PY=${BATON_PYTHON:-/usr/bin/python3}
tsv="${BATON_DATA:-}/sst2/train.tsv"
[ -n "${BATON:-}" ] && [ -x "$BATON" ] || { echo "skip: \$BATON (the baton binary) not set or not executable"; exit 77; }
[ -f "$tsv" ] || { echo "skip: no SST-2 at $tsv (\$BATON_DATA)"; exit 77; }
"$PY" -c "import tokenizers" 2>/dev/null || { echo "skip: python tokenizers missing for $PY"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" "$(dirname "$0")/bench_tokenizer_json.py" "$BATON" "$BATON_DATA" "$work" "${BENCH_RUNS:-3}"
