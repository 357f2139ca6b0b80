#!/bin/sh
# bench/real_mlm.sh — the masked-LM real check: all-MiniLM-L6-v2 with its fresh
# MLM head (initialised from the seed: the checkpoint ships none) adapted by
# masked-LM on the SST-2 sentences (jobs/sst2_mlm.ini, seq 64, concatenated
# blocks) in ONE `baton run` segment of at most 10 minutes on the CPU, started
# fresh. Held-out perplexity is measured on the first LIMIT_EVAL lines of
# ../shared/data/sst2/dev.tsv with fixed masks (the same masked positions at
# every evaluation), first at step EVAL_EVERY (the runner does not evaluate
# step 0, so the first record is the nearest one to the fresh head) and every
# EVAL_EVERY steps after. Prints the curve (step, train loss, eval loss,
# perplexity, wall since launch), the ratio first-evaluation perplexity / best
# perplexity (the acceptance goal is >= 5), the segment's wall time and exit
# code, and writes the plot (`baton plot`) to FIGURE. Caveat: dev.tsv holds
# SST-2 phrases held apart from train.tsv, not separate reviews; most of them
# are sub-phrases of training lines, so "held-out" means unseen lines, not
# unseen text (docs/performance.md).
#
# Not a test and not part of `make bench` (about 10 minutes on 2 cores):
#   sh bench/real_mlm.sh [OUT_DIR]        (default build/real-mlm; its earlier
#                                          archives and metrics are removed)
# Env: BATON (./baton), THREADS (2), SEGMENT (10m: the budget), MARGIN (20s),
# LR (5e-4), BATCH (16), LIMIT_TRAIN (28000 lines of train.tsv: 5,133 blocks, 321
# steps, which end in about 8-9 minutes on 2 cores; 0 = all), EPOCHS (1),
# LIMIT_EVAL (1000 lines), EVAL_EVERY (20 steps), EXTRA ("-s k=v ..."),
# FIGURE (docs/figures/sst2-mlm-minilm-cpu.svg; "" = <OUT_DIR>/metrics.svg).
# Needs build/models/all-MiniLM-L6-v2 (tests/reference/fetch_models.sh) and
# ../shared/data/sst2; exits 77 with a message when either is missing.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BATON=${BATON:-$ROOT/baton}
OUT=${1:-$ROOT/build/real-mlm}
THREADS=${THREADS:-2}
SEGMENT=${SEGMENT:-10m}
FIGURE=${FIGURE-$ROOT/docs/figures/sst2-mlm-minilm-cpu.svg}
[ -f "$ROOT/build/models/all-MiniLM-L6-v2/model.safetensors" ] ||
    { echo "skip: build/models/all-MiniLM-L6-v2 missing (sh tests/reference/fetch_models.sh)"; exit 77; }
[ -f "$ROOT/../shared/data/sst2/train.tsv" ] && [ -f "$ROOT/../shared/data/sst2/dev.tsv" ] ||
    { echo "skip: ../shared/data/sst2 missing"; exit 77; }
[ -x "$BATON" ] || { echo "no baton at $BATON (make)"; exit 1; }

# one fresh segment: drop what an earlier run of this script left in OUT
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd) || exit 1
rm -f "$OUT"/ckpt-* "$OUT"/metrics.jsonl "$OUT"/status.json "$OUT"/metrics.svg "$OUT"/segment.log
set -- -s job.output_dir="$OUT" -s data.limit_train="${LIMIT_TRAIN:-28000}" -s data.limit_eval="${LIMIT_EVAL:-1000}" \
    -s train.epochs="${EPOCHS:-1}" -s train.batch_size="${BATCH:-16}" -s train.lr="${LR:-5e-4}" \
    -s train.eval_every="${EVAL_EVERY:-20}" -s runtime.budget="$SEGMENT" -s runtime.margin="${MARGIN:-20s}" \
    -s runtime.threads="$THREADS" -s runtime.progress=plain -s runtime.progress_every=60s ${EXTRA:-}
echo "baton run jobs/sst2_mlm.ini --fresh $*"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
t0=$(date +%s.%N)
"$BATON" run "$ROOT/jobs/sst2_mlm.ini" --fresh "$@" >"$OUT/segment.log" 2>&1
rc=$?
t1=$(date +%s.%N)
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
case $rc in
0 | 75) ;;
*) tail -n 20 "$OUT/segment.log"; echo "baton run exited $rc"; exit 1 ;;
esac
if [ -n "$FIGURE" ]; then
    mkdir -p "$(dirname "$FIGURE")"
    "$BATON" plot "$ROOT/jobs/sst2_mlm.ini" "$@" --output "$FIGURE" >/dev/null || echo "baton plot failed"
else
    FIGURE=$("$BATON" plot "$ROOT/jobs/sst2_mlm.ini" "$@") || echo "baton plot failed"
fi
python3 - "$OUT" "$t0" "$t1" "$rc" "$FIGURE" <<'PY'
import json, sys, statistics
out, t0, t1, rc, fig = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
recs = [json.loads(l) for l in open(f"{out}/metrics.jsonl")]
train = {r["step"]: r for r in recs if r.get("split") == "train"}
evals = [r for r in recs if r.get("split") == "eval"]
if not evals:
    sys.exit("no evaluation in metrics.jsonl: raise SEGMENT or lower EVAL_EVERY")
tl = [r for r in recs if r.get("split") == "train"]
# seconds per step: consecutive train records with no evaluation between them
rates = [(b["time"] - a["time"]) / (b["step"] - a["step"]) for a, b in zip(tl, tl[1:])
         if b["step"] > a["step"] and b["time"] > a["time"]
         and not any(a["time"] < e["time"] < b["time"] for e in evals)]
last = json.load(open(f"{out}/status.json")).get("step", "?")
print(f"segment: exit {rc} ({'complete' if rc == 0 else 'budget reached'}), wall {t1 - t0:.1f} s, "
      f"{last} steps, {evals[0]['masked_tokens']} masked eval tokens")
if rates:
    print(f"step time (median): {statistics.median(rates):.2f} s")
print("| step | train loss | eval loss | perplexity | wall (s) |")
print("|---|---|---|---|---|")
for r in evals:
    tr = train.get(r["step"])
    print(f"| {r['step']} | {tr['loss']:.4f} | {r['loss']:.4f} | {r['perplexity']:.1f} | {r['time'] - t0:.0f} |"
          if tr else f"| {r['step']} | - | {r['loss']:.4f} | {r['perplexity']:.1f} | {r['time'] - t0:.0f} |")
first, best = evals[0], min(evals, key=lambda r: r["perplexity"])
ratio = first["perplexity"] / best["perplexity"]
print(f"first evaluation (step {first['step']}): perplexity {first['perplexity']:.1f}; best (step {best['step']}): "
      f"{best['perplexity']:.1f}; ratio {ratio:.2f} (goal >= 5: {'met' if ratio >= 5 else 'NOT met'})")
print(f"plot {fig}")
PY
