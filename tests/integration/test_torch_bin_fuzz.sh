#!/bin/sh
# tests/integration/test_torch_bin_fuzz.sh — builds the pytorch_model.bin
# reader's fuzz target (clang + libFuzzer + ASan/UBSan) and runs it briefly
# from the seed corpus (state dicts torch.save wrote): a smoke test that the
# target builds and the zip reader and restricted unpickler survive 2000
# mutated files. Real fuzzing: see tests/fuzz/Makefile.
set -eu
command -v clang >/dev/null 2>&1 || { echo "SKIP: clang not installed (needed for libFuzzer)"; exit 77; }
echo 'int LLVMFuzzerTestOneInput(const char*d,unsigned long n){return 0;}' >"$BUILD/fuzzprobe.c"
if ! clang -fsanitize=fuzzer "$BUILD/fuzzprobe.c" -o "$BUILD/fuzzprobe" 2>/dev/null; then
    echo "SKIP: this clang has no libFuzzer runtime"; exit 77
fi
rm -f "$BUILD/fuzzprobe" "$BUILD/fuzzprobe.c"
cd "$ROOT"
make -s -f tests/fuzz/Makefile FUZZ_BUILD="$BUILD/fuzz" FUZZ_RUNS=2000 smoke-torch-bin
