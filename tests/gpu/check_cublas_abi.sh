#!/bin/sh
# tests/gpu/check_cublas_abi.sh — the cuBLASLt that libbaton-cuda.so loads at
# run time (kernels/cuda/cuda_blas_dl.c: majors 12, 11, 13) may differ from
# the headers it was compiled with (CUDA 11.8 for `make cuda-portable`). This
# checks, for every major whose headers and library are available here:
#   - each function the loader resolves is exported by that libcublasLt;
#   - each CUBLAS*/CUDA_R_* constant the backend passes (grepped from
#     kernels/cuda) has the same value as in the build's headers.
# No GPU needed. Usage:
#   sh tests/gpu/check_cublas_abi.sh [--build-inc DIR] [MAJOR=INCDIR:LIBDIR ...]
# Default: the portable build's headers against CUDA 11 (Debian:
# /usr/include, /usr/lib/x86_64-linux-gnu), CUDA 13 (/usr/local/cuda) and, if
# present, CUDA 12 from an unpacked nvidia-cublas-cu12 wheel in
# $CUBLAS12_DIR (its nvidia/cublas/{include,lib}).
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
build_inc="$ROOT/build/cuda-portable/toolkit/include"
sets=""
while [ $# -gt 0 ]; do
    case "$1" in
        --build-inc) build_inc=$2; shift 2 ;;
        *) sets="$sets $1"; shift ;;
    esac
done
if [ -z "$sets" ]; then
    [ -f /usr/lib/x86_64-linux-gnu/libcublasLt.so.11 ] && sets="$sets 11=/usr/include:/usr/lib/x86_64-linux-gnu"
    [ -n "${CUBLAS12_DIR:-}" ] && [ -d "$CUBLAS12_DIR/include" ] && sets="$sets 12=$CUBLAS12_DIR/include:$CUBLAS12_DIR/lib"
    [ -f /usr/local/cuda/lib64/libcublasLt.so.13 ] && sets="$sets 13=/usr/local/cuda/include:/usr/local/cuda/lib64"
fi
[ -d "$build_inc" ] || { echo "SKIP: no build headers at $build_inc (run make cuda-portable)"; exit 77; }
[ -n "$sets" ] || { echo "SKIP: no cuBLASLt found to check against"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
consts=$(grep -ohE '\b(CUBLAS[A-Z_0-9]*|CUDA_R_[0-9A-Z_]*)\b' "$ROOT"/kernels/cuda/*.cu "$ROOT"/kernels/cuda/*.cuh | sort -u)
funcs=$(sed -n '/#define BLAS_SYMBOLS/,/^$/p' "$ROOT/kernels/cuda/cuda_blas_dl.c" | grep -oE 'X\(cublas[A-Za-z]*\)' | sed 's/X(\(.*\))/\1/')
{
    echo '#include <cublasLt.h>'
    echo '#include <stdio.h>'
    echo 'int main(void) {'
    for c in $consts; do printf '    printf("%s %%ld\\n", (long)%s);\n' "$c" "$c"; done
    echo '    return 0; }'
} >"$T/enums.c"
# -nostdinc of CUDA's: only the given directory's CUDA headers (the system's libc headers stay)
values() { # incdir -> "NAME VALUE" lines
    gcc -I"$1" -o "$T/enums" "$T/enums.c" 2>"$T/cc.log" || { sed "s/^/    /" "$T/cc.log" | head -n 5 >&2; return 1; }
    "$T/enums"
}
values "$build_inc" >"$T/build.txt" || { echo "FAIL: the build's headers do not define every constant"; exit 1; }
bad=0
for s in $sets; do
    major=${s%%=*}; rest=${s#*=}; inc=${rest%%:*}; lib=${rest#*:}
    so=$(ls "$lib"/libcublasLt.so."$major"* 2>/dev/null | head -n 1)
    [ -n "$so" ] || { echo "FAIL: CUDA $major: no libcublasLt.so.$major in $lib"; bad=1; continue; }
    missing=""
    for f in $funcs; do nm -D --defined-only "$so" | grep -qw "$f" || missing="$missing $f"; done
    if values "$inc" >"$T/v$major.txt"; then
        diff=$(diff "$T/build.txt" "$T/v$major.txt" || true)
    else
        diff="(headers lack a constant)"
    fi
    if [ -z "$missing" ] && [ -z "$diff" ]; then
        echo "CUDA $major: $(basename "$so"): all $(echo "$funcs" | wc -w) functions exported, $(wc -l <"$T/build.txt") constants equal"
    else
        bad=1
        [ -n "$missing" ] && echo "FAIL: CUDA $major: $so lacks:$missing"
        [ -n "$diff" ] && echo "FAIL: CUDA $major: constants differ from the build's headers:" && echo "$diff" | sed 's/^/    /'
    fi
done
exit $bad
