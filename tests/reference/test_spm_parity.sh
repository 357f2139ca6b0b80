#!/bin/sh
# tests/reference/test_spm_parity.sh — DeBERTa-v2/v3 model directories whose
# tokenizer is a SentencePiece model (spm.model + tokenizer_config.json, no
# tokenizer.json: microsoft/deberta-v3-*'s layout) against Transformers, which
# converts them on the fly (DebertaV2Converter): a Unigram SentencePiece model
# is trained here on SST-2 text (nothing downloaded); `baton tokenize` ids equal
# DebertaV2TokenizerFast's over SST-2 + AG News, a stress set and the hard
# cases, singles and pairs, cased and do_lower_case; a tiny random
# DebertaV2ForSequenceClassification's logits within 1e-5; a 2-step `baton
# run` whose export (with the converted tokenizer.json) reloads in
# Transformers; damaged spm.model files are refused, never crash. See
# test_spm_parity.py. Skips (77) without sentencepiece / protobuf.
set -u
. "$(dirname "$0")/env.sh"
need_python_module torch transformers tokenizers safetensors numpy sentencepiece google.protobuf
need_data
[ -x "$BATON" ] || skip "baton binary not found at '$BATON' (run make first)"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
case "$BATON" in */san/*) BATON_SPM_QUICK=1; export BATON_SPM_QUICK ;; esac
WORK=$(mktemp -d "${TMPDIR:-/tmp}/spm.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
exec "$PY" "$(dirname "$0")/test_spm_parity.py" "$BATON" "$BATON_DATA" "$ROOT/tests/reference/hard_cases.txt" "$WORK"
