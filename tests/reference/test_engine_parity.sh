#!/bin/sh
# tests/reference/test_engine_parity.sh — the CPU engine's forward and backward
# against HF Transformers + PyTorch (fp32, dropout 0): logits, loss and every
# parameter gradient within 1e-4 relative, for single-label, multi-label,
# regression, MLM and token classification on a random tiny BERT, and for
# all-MiniLM-L6-v2 with a fresh head (single-label, MLM). See engine_parity.py.
set -u
. "$(dirname "$0")/env.sh"
need_python_module torch transformers safetensors numpy
. "$(dirname "$0")/build_driver.sh"
# 2 threads on a shared CI box: spinning OpenMP barriers cost 20x when cores
# are oversubscribed, so both sides wait passively (correctness tests only)
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
M=""
[ -f "$MINILM/model.safetensors" ] && M="$MINILM"
[ -n "$M" ] || echo "note: all-MiniLM-L6-v2 not found at $MINILM; tiny cases only (run tests/reference/fetch_models.sh)" >&2
"$PY" "$(dirname "$0")/engine_parity.py" "$DRIVER" "$WORK" $M || exit 1
[ -n "$M" ] || skip "MiniLM cases not run: all-MiniLM-L6-v2 missing at $MINILM"
