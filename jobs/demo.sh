#!/bin/sh
# jobs/demo.sh — `make demo`: the embedded default job, end to end, explained.
# A tiny BERT and a synthetic sentiment dataset that baton generates itself
# are fine-tuned in several segments, interrupted the ways real machines
# interrupt work (a SIGTERM notice, a time budget, a hard kill), resumed each
# time, finished, verified and used.
set -u
BATON=${1:-./baton}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
JOB="$ROOT/jobs/demo.ini"
DEMO="$ROOT/build/demo"
OUT="$DEMO/out"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { "$BATON" run "$JOB" -s runtime.progress=plain -s runtime.progress_every=2s "$@"; }
bg_run() { exec "$BATON" run "$JOB" -s runtime.progress=plain -s runtime.progress_every=2s "$@"; }
fail() { echo "demo: $*" >&2; exit 1; }

say "1. baton writes a tiny BERT (2 layers, hidden 64) and 6,000 labelled sentences"
"$BATON" demo-init "$DEMO" || fail "demo-init failed"
rm -rf "$OUT"
echo "   model: $DEMO/model   data: $DEMO/data   job: jobs/demo.ini   output: build/demo/out"

say "2. segment 1: training starts; after 3 s a spot-instance style SIGTERM arrives"
bg_run & pid=$!
sleep 3
kill -TERM $pid
wait $pid; rc=$?
echo "   exit code $rc (75 = segment ended cleanly, run again): the current step finished and an archive was committed"
[ $rc -eq 75 ] || fail "expected exit 75 after SIGTERM, got $rc"

say "3. segment 2: resumes from the newest valid archive; a 4 s time budget ends it by itself"
run -s runtime.budget=4s -s runtime.margin=1s; rc=$?
echo "   exit code $rc: baton stopped before its budget ran out, with margin for the commit"
[ $rc -eq 75 ] || fail "expected exit 75 at the budget, got $rc"

say "4. segment 3: a hard kill (SIGKILL, as when a Kaggle session hits its limit) after 2 s"
bg_run & pid=$!
sleep 2
kill -KILL $pid
wait $pid 2>/dev/null; rc=$?
echo "   exit code $rc: nothing could be saved, but the last committed archive is intact by construction"
ls "$OUT"/*.partial 2>/dev/null && echo "   (a half-written .partial is left; the next run removes it)"

say "5. segment 4: resumes from the last committed archive and runs to the end"
run; rc=$?
[ $rc -eq 0 ] || fail "expected exit 0 at the end, got $rc"

say "6. every archive is checked: manifest hashes, member list, sidecar SHA-256"
"$BATON" verify "$OUT" || fail "verify failed"

say "7. where the job stands, and its curves across all segments"
"$BATON" status "$JOB"
svg=$("$BATON" plot "$JOB") && echo "   plot: $svg"

say "8. the final archive exported as a Hugging Face model directory, and used"
latest=$("$BATON" status "$JOB" --json | sed -n 's/.*"latest_archive": "\(.*\)",*/\1/p')
rm -rf "$DEMO/export"
"$BATON" export "$latest" "$DEMO/export" || fail "export failed"
printf 'the film was great and the music charming\nboring plot , awful actors and a dull ending\n' > "$DEMO/sentences.txt"
echo "   logits (negative, positive) for:"
sed 's/^/     /' "$DEMO/sentences.txt"
"$BATON" predict "$DEMO/export" --input "$DEMO/sentences.txt" | sed 's/^/     /'
echo
echo "Done. A run interrupted three times ended exactly where an uninterrupted run would:"
echo "the resume is bit-exact (tests/integration/test_run_resume.sh proves it byte for byte)."
