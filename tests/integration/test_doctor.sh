#!/bin/sh
# tests/integration/test_doctor.sh — `baton doctor` reports the CPU, the GPU
# backend library (or why none loads) and a verdict for device = auto that
# names the reason when it is the CPU; on a machine without a GPU it never
# claims one. With a GPU backend library whose cuBLASLt cannot be found
# (BATON_CUDA_LIBS pointing nowhere and no library path), it says so.
set -u
fail() { echo "FAIL: $*"; exit 1; }
out=$("$BATON" doctor 2>&1) || fail "baton doctor exited $?: $out"
echo "$out"
echo "$out" | grep -q '^CPU: .*threads' || fail "no CPU line"
echo "$out" | grep -q '^verdict: device = auto trains on ' || fail "no verdict"
if ! ls /dev/nvidia0 >/dev/null 2>&1; then
    echo "$out" | grep -q '^verdict: device = auto trains on the CPU: .' ||
        fail "no GPU here, but the verdict does not say the CPU and why"
fi
"$BATON" doctor --bogus >/dev/null 2>&1 && fail "doctor accepted an unknown argument"
exit 0
