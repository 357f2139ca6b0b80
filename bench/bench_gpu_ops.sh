#!/bin/sh
# bench/bench_gpu_ops.sh — the CUDA backend's hot ops at BERT-base shapes
# (GEMM + GELU epilogue in f32/tf32/f16/bf16, fused attention fwd/bwd with and
# without dropout, layer norm, AdamW over 110M parameters). Needs a GPU and
# nvcc; without them it says so and exits 0. No peer yet: a future session can
# add PyTorch (F.scaled_dot_product_attention, torch.optim.AdamW(fused=True))
# at the same shapes. Prints `gpu_<op>_<dtype>: ours X UNIT` lines.
#   BENCH_GPU_BS="32 128"  batch and sequence length
set -eu
ROOT=${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
BUILD=${BUILD:-$ROOT/build}
if ! command -v nvcc >/dev/null 2>&1 || ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "skip: no nvcc or no GPU on this machine"
    exit 0
fi
CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$(command -v nvcc)")")}
GBUILD=${GPU_BUILD:-$BUILD/gpu}
make -s -C "$ROOT" BUILD="$GBUILD" BIN="$GBUILD/baton" CUDA=1 ${CUDA_ARCHS:+CUDA_ARCHS="$CUDA_ARCHS"} "$GBUILD/libbaton.a" "$GBUILD/libbaton-cuda.a"
mkdir -p "$GBUILD/bench"
cc -std=c11 -D_GNU_SOURCE -O2 -fopenmp -I"$ROOT" -I"$CUDA_HOME/include" -o "$GBUILD/bench/gpu_ops_bench" \
    "$ROOT/tests/gpu/ops_bench.c" "$GBUILD/libbaton-cuda.a" "$GBUILD/libbaton.a" \
    $(pkg-config --libs libarchive libcrypto inih jansson libutf8proc openblas) \
    -L"$CUDA_HOME/lib64" -l:libcudart_static.a -ldl -lrt -lstdc++ -lm -lpthread
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader || true
# shellcheck disable=SC2086
"$GBUILD/bench/gpu_ops_bench" ${BENCH_GPU_BS:-32 128}
