#!/bin/sh
# kernels/cuda/check_portable.sh LIB ARCHS... — what `make cuda-portable`
# promises, checked on the library it built (no GPU needed):
#   - SASS for every architecture asked for, plus PTX (cuobjdump);
#   - no CUDA library in its NEEDED list, and no cuBLAS symbol left undefined
#     (the runtime is static; cuBLASLt comes through cuda_blas_dl.c);
#   - the cuBLASLt functions and constants it uses agree across the CUDA
#     majors available here (tests/gpu/check_cublas_abi.sh).
set -eu
lib=$1; shift
fail() { echo "cuda-portable: FAIL: $*" >&2; exit 1; }
[ -f "$lib" ] || fail "$lib not built"
tools=$(dirname "$lib")/toolkit/bin
PATH="$tools:$PATH"
elf=$(cuobjdump --list-elf "$lib" | sed -n 's/.*\.\(sm_[0-9]*\)\..*/\1/p' | sort -u | tr '\n' ' ')
ptx=$(cuobjdump --list-ptx "$lib" | sed -n 's/.*\.\(sm_[0-9]*\)\..*/\1/p' | sort -u | tr '\n' ' ')
for a in "$@"; do
    case " $elf " in *" sm_$a "*) ;; *) fail "no sm_$a code in $lib (has: $elf)" ;; esac
done
[ -n "$ptx" ] || fail "no PTX in $lib"
needed=$(readelf -d "$lib" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p' | tr '\n' ' ')
case "$needed" in *cuda*|*cublas*|*nccl*) fail "$lib needs a CUDA library at load time: $needed" ;; esac
undef=$(nm -D --undefined-only "$lib" | grep -i -E 'cublas|cuda[A-Z]' || true)
[ -z "$undef" ] || fail "$lib leaves CUDA symbols undefined: $undef"
echo "cuda-portable: $lib: SASS $elf+ PTX $ptx; NEEDED: $needed"
sh "$(dirname "$0")/../../tests/gpu/check_cublas_abi.sh" --build-inc "$(dirname "$lib")/toolkit/include" || {
    rc=$?; [ $rc = 77 ] || fail "cuBLASLt ABI check"; }
