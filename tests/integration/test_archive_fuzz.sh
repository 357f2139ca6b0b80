#!/bin/sh
# tests/integration/test_archive_fuzz.sh — builds the archive-reader fuzz
# target (clang + libFuzzer + ASan/UBSan) and runs it briefly from the seed
# corpus: a smoke test that the target builds and the reader survives 2000
# mutated archives. Real fuzzing: see tests/fuzz/Makefile.
set -eu
command -v clang >/dev/null 2>&1 || { echo "SKIP: clang not installed (needed for libFuzzer)"; exit 77; }
echo 'int LLVMFuzzerTestOneInput(const char*d,unsigned long n){return 0;}' >"$BUILD/fuzzprobe.c"
if ! clang -fsanitize=fuzzer "$BUILD/fuzzprobe.c" -o "$BUILD/fuzzprobe" 2>/dev/null; then
    echo "SKIP: this clang has no libFuzzer runtime"; exit 77
fi
rm -f "$BUILD/fuzzprobe" "$BUILD/fuzzprobe.c"
cd "$ROOT"
make -s -f tests/fuzz/Makefile FUZZ_BUILD="$BUILD/fuzz" FUZZ_RUNS=2000 smoke-archive
