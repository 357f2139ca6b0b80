#!/bin/sh
# bench/bench_archive.sh — committing and verifying a BERT-base-sized state
# (110M fp32 weights + AdamW m and v: about 1.3 GB) against the same bytes
# written by `dd conv=fsync` to the same disk, and hashed by `sha256sum`.
# Prints:
#   archive_commit: ours X MB/s, peer Y MB/s, ratio R
#   archive_verify: ours X MB/s, peer Y MB/s, ratio R
# Needs about 1.4 GB of memory and 2.7 GB of free disk under $BUILD.
# BENCH_ARCHIVE_PARAMS overrides the parameter count (e.g. for a quick run).
set -eu
ROOT=${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
BUILD=${BUILD:-$ROOT/build}
cd "$ROOT"
make -s BUILD="$BUILD" "$BUILD/tests/test_archive_tool" >&2
dir="$BUILD/bench-archive"
trap 'rm -rf "$dir"' EXIT
"$BUILD/tests/test_archive_tool" bench "$dir" "${BENCH_ARCHIVE_PARAMS:-110000000}"
