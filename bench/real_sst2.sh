#!/bin/sh
# bench/real_sst2.sh — the runner's real check: all-MiniLM-L6-v2 fine-tuned on
# a 20,000-example subset of SST-2 train (seq 64, one epoch, CPU) in segments
# of at most 5 minutes, each a separate `baton run` of jobs/sst2.ini resuming
# from the previous one's archive. Prints per segment: wall time, steps,
# start-up time (launch to the first step) and overhead (wall time not spent
# in training steps: start-up, evaluation, commits, the margin); at the end
# the dev accuracy, the total wall time and the plot (`baton plot`).
#
# Not a test and not part of `make bench` (it takes ~30-60 min on 2 cores):
#   sh bench/real_sst2.sh [OUT_DIR]       (default build/real-sst2)
# Env: BATON (./baton), SEGMENT (5m), MARGIN (20s: the least time kept back
# for the final commit; the watchdog raises it from measured step, commit and
# evaluation times), EVAL_EVERY (250 steps), THREADS (2), EXTRA ("-s k=v ...").
# Needs build/models/all-MiniLM-L6-v2 (tests/reference/fetch_models.sh) and
# ../shared/data/sst2; exits 77 with a message when either is missing.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BATON=${BATON:-$ROOT/baton}
OUT=${1:-$ROOT/build/real-sst2}
SEGMENT=${SEGMENT:-5m}
THREADS=${THREADS:-2}
[ -f "$ROOT/build/models/all-MiniLM-L6-v2/model.safetensors" ] ||
    { echo "skip: build/models/all-MiniLM-L6-v2 missing (sh tests/reference/fetch_models.sh)"; exit 77; }
[ -f "$ROOT/../shared/data/sst2/train.tsv" ] || { echo "skip: ../shared/data/sst2 missing"; exit 77; }
[ -x "$BATON" ] || { echo "no baton at $BATON (make)"; exit 1; }

mkdir -p "$OUT"
LOG="$OUT/segments.tsv"
set -- -s job.output_dir="$OUT" -s data.limit_train=20000 -s train.epochs=1 -s train.eval_every="${EVAL_EVERY:-250}" \
    -s runtime.budget="$SEGMENT" -s runtime.margin="${MARGIN:-20s}" -s runtime.threads="$THREADS" -s runtime.progress=plain \
    -s runtime.progress_every=60s ${EXTRA:-}
printf 'segment\twall_s\tstep_from\tstep_to\tstartup_s\texit\n' >"$LOG"
t_all=$(date +%s.%N)
n=0
while :; do
    n=$((n + 1))
    [ $n -le 100 ] || { echo "not complete after 100 segments"; exit 1; }
    from=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["step"])' "$OUT/status.json" 2>/dev/null || echo 0)
    t0=$(date +%s.%N)
    "$BATON" run "$ROOT/jobs/sst2.ini" "$@" >"$OUT/segment-$n.log" 2>&1
    rc=$?
    t1=$(date +%s.%N)
    to=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["step"])' "$OUT/status.json" 2>/dev/null || echo 0)
    # start-up: launch to this segment's segment_start record in metrics.jsonl
    start=$(python3 -c 'import json,sys
ev=[json.loads(l) for l in open(sys.argv[1]) if "segment_start" in l]
print("%.1f" % (ev[-1]["time"] - float(sys.argv[2])))' "$OUT/metrics.jsonl" "$t0" 2>/dev/null || echo nan)
    wall=$(python3 -c "print(f'{$t1-$t0:.1f}')")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' $n "$wall" "$from" "$to" "$start" $rc >>"$LOG"
    echo "segment $n: exit $rc, ${wall} s, steps $from -> $to, start-up ${start} s"
    [ $rc = 0 ] && break
    [ $rc = 75 ] || { tail -n 20 "$OUT/segment-$n.log"; exit 1; }
done
t_end=$(date +%s.%N)
"$BATON" plot "$ROOT/jobs/sst2.ini" "$@" >/dev/null || echo "baton plot failed"
python3 - "$OUT" "$t_all" "$t_end" <<'PY'
import json, sys, statistics
out, t0, t1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
recs = [json.loads(l) for l in open(f"{out}/metrics.jsonl")]
train = [r for r in recs if r.get("split") == "train"]
evals = [r for r in recs if r.get("split") == "eval"]
# seconds per step: median over consecutive train records within a segment
rates = []
for a, b in zip(train, train[1:]):
    if b["step"] > a["step"] and b["time"] > a["time"]:
        rates.append((b["time"] - a["time"]) / (b["step"] - a["step"]))
spt = statistics.median(rates)
segs = [l.rstrip("\n").split("\t") for l in open(f"{out}/segments.tsv")][1:]
print(f"step time (median): {spt*1000:.0f} ms ({32/spt:.1f} examples/s)")
print("segment  wall_s  steps  startup_s  overhead_s (wall - steps x step time)")
for s in segs:
    n, wall, a, b, st = s[0], float(s[1]), int(s[2]), int(s[3]), s[4]
    print(f"{n:>7}  {wall:6.1f}  {b-a:5d}  {st:>9}  {wall-(b-a)*spt:10.1f}")
print("evaluations: " + ", ".join(f"step {r['step']}: {r.get('accuracy', float('nan')):.4f}" for r in evals))
print(f"final dev accuracy: {evals[-1].get('accuracy'):.4f}; total wall {t1-t0:.0f} s in {len(segs)} segments; "
      f"plot {out}/metrics.svg")
PY
