#!/bin/sh
# bench/bench_sgemm.sh — this machine's single-precision GEMM rate at BERT-like
# linear-layer shapes (y = x W^T), through the CPU backend's matmul (OpenBLAS
# sgemm blocks on OpenMP threads, what training runs), against the same shapes
# in PyTorch (torch.matmul) — or numpy if torch is missing — in /usr/bin/python3
# at the same thread count. Threads: $OMP_NUM_THREADS (default 2).
# Prints per-shape lines, then:
#   sgemm: ours X GFLOP/s, peer Y GFLOP/s, ratio R
# (or `sgemm: ours X GFLOP/s` when no Python peer is available).
set -eu
ROOT=${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
BUILD=${BUILD:-$ROOT/build}
PY=${BATON_PYTHON:-/usr/bin/python3}
THREADS=${OMP_NUM_THREADS:-2}
SHAPES=${BENCH_SGEMM_SHAPES:-"2048x384x384 2048x1536x384 2048x384x1536"}
export OMP_NUM_THREADS=$THREADS
exe="$BUILD/bench/bench_sgemm"
mkdir -p "$BUILD/bench"

# Build against the library when it is a CPU-only one; otherwise compile the
# few sources the CPU backend needs (a CUDA libbaton.a needs the CUDA libraries).
pkgs="openblas"
cflags="-std=c11 -D_GNU_SOURCE -O2 -fopenmp -march=x86-64-v2 -I$ROOT $(pkg-config --cflags $pkgs)"
libs="$(pkg-config --libs $pkgs) -lm -lpthread -fopenmp"
if [ ! -f "$BUILD/libbaton.a" ]; then
    make -s -C "$ROOT" BUILD="$BUILD" "$BUILD/libbaton.a" >/dev/null 2>&1 || true
fi
if ! { [ -f "$BUILD/libbaton.a" ] &&
       cc $cflags -o "$exe" "$ROOT/bench/bench_sgemm.c" "$BUILD/libbaton.a" \
          $(pkg-config --libs libarchive libcrypto inih jansson libutf8proc 2>/dev/null) $libs 2>/dev/null; }; then
    cc $cflags -DBATON_CUDA=0 -o "$exe" "$ROOT/bench/bench_sgemm.c" "$ROOT/kernels/backend.c" \
        "$ROOT"/kernels/cpu/*.c "$ROOT/util/err.c" "$ROOT/util/mem.c" $libs
fi

echo "threads: $THREADS; shapes (MxNxK): $SHAPES"
ours_out=$("$exe" "$THREADS" $SHAPES)
echo "$ours_out" | sed 's/^/ours  /'
ours=$(echo "$ours_out" | awk '/^total:/ {print $2}')

peer=$("$PY" - "$THREADS" $SHAPES <<'PYEOF' 2>/dev/null || true
import sys, time
threads = int(sys.argv[1]); shapes = [tuple(map(int, s.split("x"))) for s in sys.argv[2:]]
try:
    import torch
    torch.set_num_threads(threads)
    def mk(r, c): return torch.rand(r, c) - 0.5
    def mm(x, w): return torch.matmul(x, w.t())
    name = "torch " + torch.__version__
except ImportError:
    import numpy as np
    def mk(r, c): return (np.random.rand(r, c) - 0.5).astype(np.float32)
    def mm(x, w): return x @ w.T
    name = "numpy"
tf = ts = 0.0
for M, N, K in shapes:
    x, w = mk(M, K), mk(N, K)
    mm(x, w)
    best = 1e30
    for _ in range(3):
        n = 0; t0 = time.perf_counter()
        while True:
            mm(x, w); n += 1
            t = time.perf_counter() - t0
            if t >= 0.3: break
        best = min(best, t / n)
    f = 2.0 * M * N * K
    print("shape %dx%dx%d: %.1f GFLOP/s" % (M, N, K, f / best * 1e-9))
    tf += f; ts += best
print("total: %.1f GFLOP/s (%s)" % (tf / ts * 1e-9, name))
PYEOF
)
if [ -n "$peer" ]; then
    echo "$peer" | sed 's/^/peer  /'
    p=$(echo "$peer" | awk '/^total:/ {print $2}')
    echo "sgemm: ours $ours GFLOP/s, peer $p GFLOP/s, ratio $(awk -v a="$ours" -v b="$p" 'BEGIN {printf "%.2f", a / b}')"
else
    echo "(no Python peer: neither torch nor numpy importable by $PY)"
    echo "sgemm: ours $ours GFLOP/s"
fi
