#!/bin/sh
# bench/real_agnews_long.sh — the long-document real check: builds documents
# of 30 AG News articles of one topic (tests/reference/make_longdocs.py; 240
# train, 91 dev, no shared article) and runs jobs/agnews_long.ini
# (all-MiniLM-L6-v2, chunks of 128 tokens, 4 per document, mean pooling, one
# epoch) on the CPU in one segment. Prints the evaluations, the wall time, the
# peak memory and the plot (`baton plot`).
#
# Not a test and not part of `make bench` (~15-30 min on 2 cores):
#   sh bench/real_agnews_long.sh [OUT_DIR]     (default build/real-agnews-long)
# Env: BATON (./baton), THREADS (2), EXTRA ("-s k=v ..." overrides).
# Needs build/models/all-MiniLM-L6-v2 (tests/reference/fetch_models.sh),
# ../shared/data/agnews/dev.tsv and python3; exits 77 when one is missing.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BATON=${BATON:-$ROOT/baton}
OUT=${1:-$ROOT/build/real-agnews-long}
THREADS=${THREADS:-2}
AG=$ROOT/../shared/data/agnews/dev.tsv
[ -f "$ROOT/build/models/all-MiniLM-L6-v2/model.safetensors" ] ||
    { echo "skip: build/models/all-MiniLM-L6-v2 missing (sh tests/reference/fetch_models.sh)"; exit 77; }
[ -f "$AG" ] || { echo "skip: ../shared/data/agnews/dev.tsv missing"; exit 77; }
command -v python3 >/dev/null || { echo "skip: python3 missing (it builds the documents)"; exit 77; }
[ -x "$BATON" ] || { echo "no baton at $BATON (make)"; exit 1; }

mkdir -p "$ROOT/build/longdocs" "$OUT"
python3 "$ROOT/tests/reference/make_longdocs.py" --input "$AG" --output "$ROOT/build/longdocs/train.tsv" \
    --seed 1 --per-doc 30 --first 0 --count 240 || exit 1
python3 "$ROOT/tests/reference/make_longdocs.py" --input "$AG" --output "$ROOT/build/longdocs/dev.tsv" \
    --seed 1 --per-doc 30 --first 240 || exit 1
# shellcheck disable=SC2086
set -- -s job.output_dir="$OUT" -s runtime.threads="$THREADS" -s runtime.progress=plain -s runtime.progress_every=60s \
    ${EXTRA:-}
t0=$(date +%s.%N)
"$BATON" -v run "$ROOT/jobs/agnews_long.ini" "$@" >"$OUT/run.log" 2>&1
rc=$?
t1=$(date +%s.%N)
[ $rc = 0 ] || { tail -n 20 "$OUT/run.log"; echo "baton run exited $rc"; exit 1; }
"$BATON" plot "$ROOT/jobs/agnews_long.ini" "$@" >/dev/null || echo "baton plot failed"
python3 - "$OUT" "$t0" "$t1" <<'PY'
import json, sys, re
out, t0, t1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
recs = [json.loads(l) for l in open(f"{out}/metrics.jsonl")]
evals = [r for r in recs if r.get("split") == "eval"]
train = [r for r in recs if r.get("split") == "train"]
print("step  train_loss  eval_loss  accuracy  f1_macro")
for e in evals:
    tl = [r["loss"] for r in train if r["step"] <= e["step"]]
    print(f"{e['step']:4d}  {tl[-1] if tl else float('nan'):10.4f}  {e['loss']:9.4f}  {e['accuracy']:8.4f}  {e['f1_macro']:8.4f}")
peak = re.findall(r"peak resident memory ([0-9.]+) MB", open(f"{out}/run.log").read())
print(f"final dev accuracy {evals[-1]['accuracy']:.4f} (best {max(e['accuracy'] for e in evals):.4f}); "
      f"wall {t1-t0:.0f} s; peak memory {peak[-1] if peak else '?'} MB; plot {out}/metrics.svg")
PY
