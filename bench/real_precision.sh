#!/bin/sh
# bench/real_precision.sh — mixed precision on the real model (issue 17's
# proof): all-MiniLM-L6-v2 fine-tuned on SST-2 for STEPS (300) steps on the
# CPU in fp32, bf16 and fp16, same data order and hyper-parameters; then each
# reduced precision's train loss against fp32's at every logged step (every
# 10 steps: the relative difference, which must stay within 2%) and the dev
# accuracy (within 1 point). Prints a table and exits 1 when a bound fails.
#
# Not a test and not part of `make bench` (~15-40 min on 2 cores):
#   sh bench/real_precision.sh [OUT_DIR]      (default build/real-precision)
# Env: BATON (./baton), STEPS (300), BATCH (16), THREADS (2),
# BATON_MODELS (build/models), BATON_DATA (../shared/data); exits 77 with a
# message when the model or the data is missing.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BATON=${BATON:-$ROOT/baton}
OUT=${1:-$ROOT/build/real-precision}
MODELS=${BATON_MODELS:-$ROOT/build/models}
DATA=${BATON_DATA:-$ROOT/../shared/data}
STEPS=${STEPS:-300}
[ -f "$MODELS/all-MiniLM-L6-v2/model.safetensors" ] ||
    { echo "skip: $MODELS/all-MiniLM-L6-v2 missing (make models)"; exit 77; }
[ -f "$DATA/sst2/train.tsv" ] || { echo "skip: $DATA/sst2 missing"; exit 77; }
[ -x "$BATON" ] || { echo "no baton at $BATON (make)"; exit 1; }

mkdir -p "$OUT"
for p in fp32 bf16 fp16; do
    rm -rf "$OUT/$p"
    t0=$(date +%s)
    "$BATON" run "$ROOT/jobs/sst2.ini" -s job.output_dir="$OUT/$p" -s model.path="$MODELS/all-MiniLM-L6-v2" \
        -s data.train="$DATA/sst2/train.tsv" -s data.eval="$DATA/sst2/dev.tsv" -s train.max_steps="$STEPS" \
        -s train.batch_size="${BATCH:-16}" -s train.eval_every=0 -s train.precision=$p -s runtime.budget=none \
        -s runtime.checkpoint_every=0 -s runtime.threads="${THREADS:-2}" -s runtime.progress=none \
        >"$OUT/$p.log" 2>&1 || { tail -n 5 "$OUT/$p.log"; echo "$p: baton run failed"; exit 1; }
    echo "$p: $(( $(date +%s) - t0 )) s"
done

python3 - "$OUT" <<'EOF'
import json, sys
out = sys.argv[1]
def load(p):
    recs = [json.loads(l) for l in open(f"{out}/{p}/metrics.jsonl")]
    train = {r["step"]: r["loss"] for r in recs if r.get("split") == "train" and r.get("loss") is not None}
    ev = [r for r in recs if r.get("split") == "eval"]
    return train, ev[-1]["accuracy"] if ev else None
base, acc32 = load("fp32")
ok = True
print(f"{'precision':9} {'steps':>5} {'max rel. loss diff':>19} {'at step':>7} {'dev acc':>8} {'vs fp32':>8}")
print(f"{'fp32':9} {len(base):5} {'-':>19} {'-':>7} {acc32:8.4f} {'-':>8}")
for p in ("bf16", "fp16"):
    tr, acc = load(p)
    common = sorted(set(base) & set(tr))
    worst = max(common, key=lambda s: abs(tr[s] - base[s]) / abs(base[s]))
    rel = abs(tr[worst] - base[worst]) / abs(base[worst])
    d = (acc - acc32) * 100
    good = rel <= 0.02 and abs(d) <= 1.0 and len(common) == len(base)
    ok &= good
    print(f"{p:9} {len(common):5} {rel:19.4%} {worst:7} {acc:8.4f} {d:+7.2f}pt {'ok' if good else 'OUT OF BOUNDS'}")
sys.exit(0 if ok else 1)
EOF
