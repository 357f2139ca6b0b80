#!/bin/sh
# tests/reference/test_tokenizer_json_parity.sh — `baton tokenize` on tokenizer.json
# model directories (WordPiece, byte-level BPE as RoBERTa, Unigram as XLM-R and
# DeBERTa-v3, and the other components) vs the Rust `tokenizers` crate, id for id,
# on the shared data, hard_cases.txt, a stress set and a code-point sweep. The
# tokenizers are trained here from the shared data (nothing is downloaded).
# (A stale engine/tokjson_unicode_exc.h shows in the sweep; `python3
# tests/reference/gen_tokjson_unicode.py --check` says so directly.)
set -u
. "$(dirname "$0")/env.sh"
need_python_module tokenizers
need_minilm
need_data
[ -x "$BATON" ] || skip "baton binary not found at '$BATON' (run make first)"
# Under the sanitizers (a build/san binary) the data part is cut to 5,000 texts
# and the code-point sweep left out: every tokenizer, the stress set and the
# hard cases still run, in about a minute instead of ten.
case "$BATON" in */san/*) BATON_TOKJSON_QUICK=1; export BATON_TOKJSON_QUICK ;; esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" "$ROOT/tests/reference/test_tokenizer_json_parity.py" "$BATON" "$MINILM" "$BATON_DATA" \
    "$ROOT/tests/reference/hard_cases.txt" "$work"
