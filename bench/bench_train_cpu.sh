#!/bin/sh
# bench/bench_train_cpu.sh — CPU training throughput of all-MiniLM-L6-v2
# (sequence classification, batch 16, seq 128, 2 threads): baton's engine
# (through tests/reference/engine_driver.c, the same code path as `baton run`'s
# step) side by side with HF Transformers + PyTorch at the same thread count,
# in the same run, plus achieved GFLOP/s against the backend's sgemm rate;
# per precision: fp32 (train_cpu), bf16 (train_cpu_bf16, against torch CPU
# autocast bf16) and fp16 (train_cpu_fp16, baton only).
# Env: BENCH_THREADS (2), BENCH_STEPS (5), BENCH_BATCH (16), BENCH_SEQ (128),
# BENCH_PRECISIONS ("fp32 bf16 fp16").
# Prints: train_cpu[_P]: ours X examples/s, peer Y examples/s, ratio R
set -u
ROOT=${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
BUILD=${BUILD:-$ROOT/build}
BATON_MODELS=${BATON_MODELS:-$ROOT/build/models}
. "$ROOT/tests/reference/env.sh"
need_minilm
need_python_module torch transformers
. "$ROOT/tests/reference/build_driver.sh"
TH=${BENCH_THREADS:-2}; STEPS=${BENCH_STEPS:-5}; B=${BENCH_BATCH:-16}; S=${BENCH_SEQ:-128}
export OMP_NUM_THREADS=$TH
# FLOPs per example: 6 x matmul parameters per token (forward 2, backward 4)
# plus attention (QK^T and PV: 4*S*D per token per layer forward, x3 for training)
flops=$("$PY" - "$MINILM" $S <<'PYEOF'
import json, sys
c = json.load(open(sys.argv[1] + "/config.json")); S = int(sys.argv[2])
D, I, L = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
n_mm = L * (4 * D * D + 2 * D * I)
print(S * (6 * n_mm + 12 * L * S * D))
PYEOF
)
sg=$("$DRIVER" sgemm - - - n=1024 threads=$TH | awk '/sgemm_gflops/ {print $2}')
echo "sgemm_gflops $sg"
# Each precision: ours, and PyTorch's where it has one (torch CPU autocast
# does bf16 only; fp16 on a CPU is baton's emulation for proofs, not speed).
for P in ${BENCH_PRECISIONS:-fp32 bf16 fp16}; do
    ours=$("$DRIVER" bench "$MINILM" - - batch=$B seq=$S steps=$STEPS threads=$TH precision=$P) \
        || { echo "ours ($P) failed" >&2; exit 1; }
    echo "$ours" | sed "s/^/[$P] /"
    oe=$(echo "$ours" | awk '/ours_examples_per_s/ {print $2}')
    name=train_cpu; [ "$P" = fp32 ] || name=train_cpu_$P
    if [ "$P" = fp16 ]; then
        awk -v oe="$oe" -v n="$name" 'BEGIN { printf "%s: ours %.2f examples/s, peer n/a (torch has no CPU fp16 autocast)\n", n, oe }'
        continue
    fi
    peer=$("$PY" "$ROOT/bench/bench_train_cpu.py" "$MINILM" $B $S $STEPS $TH $P 2>/dev/null | grep '^peer_') \
        || { echo "peer ($P) failed" >&2; exit 1; }
    echo "$peer" | sed "s/^/[$P] /"
    pe=$(echo "$peer" | awk '/peer_examples_per_s/ {print $2}')
    awk -v oe="$oe" -v pe="$pe" -v f="$flops" -v sg="$sg" -v th="$TH" -v n="$name" -v p="$P" 'BEGIN {
        printf "[%s] model FLOPs per example %.2f GFLOP; ours %.1f GFLOP/s, peer %.1f GFLOP/s, sgemm %.1f GFLOP/s on %d threads (ours at %.0f%% of sgemm)\n",
            p, f / 1e9, oe * f / 1e9, pe * f / 1e9, sg, th, 100 * oe * f / 1e9 / sg
        printf "%s: ours %.2f examples/s, peer %.2f examples/s, ratio %.2f\n", n, oe, pe, oe / pe }'
done
