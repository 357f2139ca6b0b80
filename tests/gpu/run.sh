#!/bin/sh
# tests/gpu/run.sh — build and run the CUDA backend's parity tests (needs a GPU).
#
# Builds $BUILD/libbaton.a with CUDA (for CUDA_ARCHS if given, e.g. CUDA_ARCHS=80
# to build only for an A100), links tests/gpu/ops_parity.c (every op, every
# dtype) and tests/gpu/engine_parity.c (training in fp32/tf32/fp16/bf16) against
# it and runs both. Not part of `make test` (CI has no GPU).
# Exit: 0 pass, 1 failure, 77 no GPU.
#   sh tests/gpu/run.sh [-v] [-k substring]
#   BUILD=build/gpu CUDA_ARCHS=75 sh tests/gpu/run.sh -v
#   CUDA_LIB=build/cuda-portable/libbaton-cuda.so sh tests/gpu/run.sh
# CUDA_LIB: test that prebuilt GPU backend library (linked by name, found
# through RUNPATH) instead of building the CUDA objects; ops_parity's own two
# device queries use the CUDA runtime of this machine's nvcc (engine_parity likewise).
# LINK_ONLY=1: build and link, do not run (tests/gpu/proof.sh --prepare).
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build/gpu}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
NVCC=$(command -v nvcc || true)
if [ -z "$NVCC" ]; then
    echo "skip: nvcc not on PATH (export PATH=/usr/local/cuda/bin:\$PATH)"
    exit 77
fi
CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$NVCC")")}
CUDA_OBJS="$BUILD/libbaton-cuda.a"
TARGETS="$BUILD/libbaton.a $BUILD/libbaton-cuda.a"
if [ -n "${CUDA_LIB:-}" ]; then
    [ -f "$CUDA_LIB" ] || { echo "run.sh: CUDA_LIB=$CUDA_LIB: no such file" >&2; exit 1; }
    libdir=$(cd "$(dirname "$CUDA_LIB")" && pwd)
    CUDA_OBJS="-L$libdir -l:$(basename "$CUDA_LIB") -Wl,-rpath,$libdir -rdynamic"
    TARGETS="$BUILD/libbaton.a"
fi
if [ -n "${CUDA_ARCHS:-}" ]; then
    make -s BUILD="$BUILD" BIN="$BUILD/baton" CUDA=1 CUDA_ARCHS="$CUDA_ARCHS" -j"$JOBS" $TARGETS
else
    make -s BUILD="$BUILD" BIN="$BUILD/baton" CUDA=1 -j"$JOBS" $TARGETS
fi
mkdir -p "$BUILD/tests"
LIBS=$(pkg-config --libs libarchive libcrypto inih jansson libutf8proc openblas)
CFL=$(pkg-config --cflags libarchive libcrypto inih jansson libutf8proc openblas)
# shellcheck disable=SC2086
for prog in ops_parity engine_parity; do
    cc -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Wno-unused-parameter -fopenmp -I. $CFL -I"$CUDA_HOME/include" \
        -DBATON_CUDA=1 -o "$BUILD/tests/gpu_$prog" "tests/gpu/$prog.c" $CUDA_OBJS "$BUILD/libbaton.a" $LIBS \
        -L"$CUDA_HOME/lib64" -l:libcudart_static.a -ldl -lrt -lstdc++ -lm -lpthread -fopenmp
done
[ -z "${LINK_ONLY:-}" ] || exit 0
# the checks are order-sensitive only through the RNG; one OpenMP thread count for the CPU reference
rc=0
"$BUILD/tests/gpu_ops_parity" "$@" || rc=$?
[ $rc -eq 77 ] && exit 77
erc=0
"$BUILD/tests/gpu_engine_parity" $( [ "${1:-}" = "-v" ] && echo -v ) || erc=$?
[ $rc -ne 0 ] && exit $rc
exit $erc
