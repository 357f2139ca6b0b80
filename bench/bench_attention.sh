#!/bin/sh
# bench/bench_attention.sh — the CPU attention kernels (forward + backward,
# BERT-base heads: H 12, Dh 64, dropout 0.1, 4096 tokens per call) at short and
# long sequences: the kernel that recomputes the probabilities from the
# log-sum-exp (new; no [B,H,S,S] buffer) against the one that stores them for
# the backward (the previous kernel, still used up to S = 256), in the same
# run. Threads: $OMP_NUM_THREADS (default 2); lengths: $BENCH_ATT_LENGTHS.
# Prints per length, then one line each:
#   attention_sN: ours X ms, peer Y ms, ratio R   (ours = recomputed, peer = stored)
set -eu
ROOT=${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
BUILD=${BUILD:-$ROOT/build}
THREADS=${BENCH_ATT_THREADS:-1}
if [ "$THREADS" = 1 ]; then export BENCH_CPU_TIME=1; clock="CPU time"; else clock="wall time"; fi
LENGTHS=${BENCH_ATT_LENGTHS:-"64 128 256 512 1024"}
export OMP_NUM_THREADS=$THREADS
exe="$BUILD/bench/bench_attention"
mkdir -p "$BUILD/bench"
# as bench_sgemm.sh: against the library when it is a CPU-only one, else the
# few sources the CPU backend needs
pkgs="openblas"
cflags="-std=c11 -D_GNU_SOURCE -O2 -fopenmp -march=x86-64-v2 -I$ROOT $(pkg-config --cflags $pkgs)"
libs="$(pkg-config --libs $pkgs) -lm -lpthread -fopenmp"
if [ ! -f "$BUILD/libbaton.a" ]; then
    make -s -C "$ROOT" BUILD="$BUILD" "$BUILD/libbaton.a" >/dev/null 2>&1 || true
fi
if ! { [ -f "$BUILD/libbaton.a" ] &&
       cc $cflags -o "$exe" "$ROOT/bench/bench_attention.c" "$BUILD/libbaton.a" \
          $(pkg-config --libs libarchive libcrypto inih jansson libutf8proc 2>/dev/null) $libs -ldl 2>/dev/null; }; then
    cc $cflags -DBATON_CUDA=0 -o "$exe" "$ROOT/bench/bench_attention.c" "$ROOT/kernels/backend.c" \
        "$ROOT"/kernels/cpu/*.c "$ROOT/util/err.c" "$ROOT/util/mem.c" $libs
fi
echo "threads: $THREADS ($clock); H 12, Dh 64, p 0.1, B*S = 4096; best of >= 5 passes and 1 s"
# shellcheck disable=SC2086
out=$("$exe" "$THREADS" $LENGTHS)
echo "$out"
echo "$out" | awk '/^S=/ {
    s = $1; sub("S=", "", s); st = $4; rc = $7
    printf "attention_s%s: ours %.1f ms, peer %.1f ms, ratio %.2f\n", s, rc, st, rc / st }'
