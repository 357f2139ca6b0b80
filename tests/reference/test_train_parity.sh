#!/bin/sh
# tests/reference/test_train_parity.sh — 30 training steps of the CPU engine
# (warmup, clipping, weight decay, accumulation 2, head LR, layer-wise LR
# decay, frozen layer / embeddings) against torch.optim.AdamW + LambdaLR +
# clip_grad_norm_: every weight within 1e-4 relative; plus dropout
# determinism (same seed byte-identical, other seed different). See
# train_parity.py.
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
"$PY" "$(dirname "$0")/train_parity.py" "$DRIVER" "$WORK" $M || exit 1
[ -n "$M" ] || skip "MiniLM case not run: all-MiniLM-L6-v2 missing at $MINILM"
