#!/bin/sh
# bench/run.sh — `make bench`: runs every bench/bench_*.sh and ends with one line
# per benchmark in the form `NAME: ours X UNIT, peer Y UNIT, ratio R`.
# Benchmarks measure; they never pass or fail on speed. A benchmark whose
# reference (model, data, Python peer) is missing says so and is left out.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export ROOT BATON BUILD
export BATON_MODELS="${BATON_MODELS:-$ROOT/build/models}"
export BATON_DATA="${BATON_DATA:-$ROOT/../shared/data}"
out="$BUILD/bench-results.txt"
: >"$out"
for b in "$ROOT"/bench/bench_*.sh; do
    [ -f "$b" ] || continue
    name=$(basename "$b" .sh)
    echo "== $name" >&2
    log="$BUILD/$name.log"
    if sh "$b" >"$log" 2>&1; then
        grep -E '^[a-z0-9_]+: ours ' "$log" >>"$out"
    else
        echo "   $name did not complete (log: $log):" >&2
        tail -n 5 "$log" | sed 's/^/   | /' >&2
    fi
done
echo
echo "benchmark results ($(uname -m), $(nproc) cores):"
cat "$out"
