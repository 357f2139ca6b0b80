#!/bin/sh
# bench/bench_memory.sh — peak resident memory (/usr/bin/time -v) of CPU
# training of a random BERT-base-shaped model, sequence classification,
# batch 8 x 512 tokens, fp32, 2 steps, 2 threads: `baton run` against
# PyTorch + Transformers at the same shape (bench/bench_memory.py). With
# BENCH_BATON_BEFORE=/path/to/another/baton, that build too (docs/performance.md
# compares the build before issue 18). Also prints `baton plan --device cpu`
# for the job. Env: BENCH_MEM_BATCH (8), BENCH_MEM_SEQ (512), BENCH_MEM_STEPS
# (2), BENCH_THREADS (2), BENCH_MEM_RECOMPUTE ("none full").
# Prints: train_rss_bert_base: ours X MiB, peer Y MiB, ratio R
# (ours: baton with train.recompute = none; lines per mode above it)
set -u
ROOT=${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
BUILD=${BUILD:-$ROOT/build}
BATON=${BATON:-$ROOT/baton}
PY=${BATON_PYTHON:-/usr/bin/python3}
B=${BENCH_MEM_BATCH:-8}; S=${BENCH_MEM_SEQ:-512}; STEPS=${BENCH_MEM_STEPS:-2}; TH=${BENCH_THREADS:-2}
[ -x /usr/bin/time ] || { echo "skip: /usr/bin/time is missing"; exit 0; }
"$PY" -c "import torch, transformers" 2>/dev/null || { echo "skip: $PY has no torch + transformers"; exit 0; }
W="$BUILD/bench/memory"
mkdir -p "$W"
[ -f "$W/model/model.safetensors" ] || "$PY" "$ROOT/bench/bench_memory.py" make "$W/model" || exit 1
export OMP_NUM_THREADS=$TH
cat >"$W/job.ini" <<JOB
[job]
name = mem
output_dir = out
[model]
path = model
[data]
train = model/train.tsv
text_column = sentence
label_column = label
max_seq_len = $S
[train]
batch_size = $B
max_steps = $STEPS
lr = 1e-5
[runtime]
threads = $TH
progress = none
checkpoint_every = 0
JOB

# maxrss BIN ARGS... — runs under /usr/bin/time -v, prints the peak RSS in MiB
maxrss() {
    /usr/bin/time -v "$@" >"$W/run.log" 2>&1 || { echo "run failed: $(tail -n 5 "$W/run.log")" >&2; return 1; }
    awk -F: '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$W/run.log"
}

"$BATON" plan "$W/job.ini" --device cpu | sed 's/^/plan  /'
for mode in ${BENCH_MEM_RECOMPUTE:-none full}; do
    rm -rf "$W/out"
    r=$(maxrss "$BATON" run "$W/job.ini" --fresh -s train.recompute=$mode) || exit 1
    echo "baton (recompute $mode): peak RSS $r MiB"
    [ "$mode" = none ] && ours=$r
done
if [ -n "${BENCH_BATON_BEFORE:-}" ]; then
    rm -rf "$W/out"
    r=$(maxrss "$BENCH_BATON_BEFORE" run "$W/job.ini" --fresh) || exit 1
    echo "baton before ($BENCH_BATON_BEFORE): peak RSS $r MiB"
fi
peer=$(maxrss "$PY" "$ROOT/bench/bench_memory.py" train "$W/model" $B $S $STEPS $TH) || exit 1
pv=$("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null)
echo "pytorch $pv: peak RSS $peer MiB"
awk -v o="$ours" -v p="$peer" -v b="$B" -v s="$S" 'BEGIN {
    printf "train_rss_bert_base: ours %.0f MiB, peer %.0f MiB, ratio %.2f\n", o, p, o / p }'
