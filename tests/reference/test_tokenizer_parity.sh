#!/bin/sh
# tests/reference/test_tokenizer_parity.sh — `baton tokenize` vs BertTokenizerFast
# (Rust tokenizers), id for id, on the shared data, hard_cases.txt and every
# Unicode code point; uncased all-MiniLM-L6-v2 and a cased vocab trained here.
# (The code-point sweep also catches a stale engine/tokenizer_unicode_exc.h;
# `python3 tests/reference/gen_unicode_exceptions.py --check` says so directly.)
set -u
. "$(dirname "$0")/env.sh"
need_python_module tokenizers transformers
need_minilm
need_data
[ -x "$BATON" ] || skip "baton binary not found at '$BATON' (run make first)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" "$ROOT/tests/reference/test_tokenizer_parity.py" "$BATON" "$MINILM" "$BATON_DATA" \
    "$ROOT/tests/reference/hard_cases.txt" "$work"
