#!/bin/sh
# tests/reference/test_precision_parity.sh — baton's CPU engine in bf16
# against PyTorch CPU autocast bf16 on all-MiniLM-L6-v2 (12 steps, the same
# SST-2 examples in the same order, the same hyper-parameters): every step's
# loss within 0.2% (the issue asks 2%; measured 1.8e-4); fp32 of both sides
# within 1e-3; baton fp16 (loss scaling) within 0.2% of baton fp32. See
# precision_parity.py.
set -u
. "$(dirname "$0")/env.sh"
need_python_module torch transformers safetensors numpy
need_minilm
need_data # (the check that it learns needs real sentences: random ids with random labels do not)
. "$(dirname "$0")/build_driver.sh"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$PY" "$(dirname "$0")/precision_parity.py" "$DRIVER" "$WORK" "$MINILM" "$BATON_DATA/sst2/train.tsv"
