#!/bin/sh
# tests/gpu/proof.sh — one command that proves the GPU backend on a machine
# with an NVIDIA GPU (docs/cuda.md, "The GPU proof"), in at most ~8 minutes on
# one H100/H200, offline.
#
#   sh tests/gpu/proof.sh [--out DIR] [--cuda-lib SO] [--baton BIN] [--kit DIR] [--steps N] [--only LIST]
#   sh tests/gpu/proof.sh --prepare [--kit DIR] [--weights fp16|fp32|none] [--no-bundle] [--no-parity-bin]
#   sh tests/gpu/proof.sh --dry-run [--quick] [--out DIR]
#
# Owns: the order of the checks, their thresholds, what is skipped and why,
# and the two result files: DIR/proof.json (format baton-gpu-proof, version 1)
# and DIR/proof.md, plus DIR/proof.log and DIR/logs.tar.gz. DIR is --out, else
# $OUT, else build/proof-<date>. Exit: 0 every correctness check passed (some
# may be skipped, each with its reason), 1 one failed, 64 usage, 69 a needed
# tool is missing, 77 no GPU (use --dry-run).
# Must not: change the machine (no installs, no GPU settings), reach the
# network, or pass a check it did not run.
#
# --only selftest,ops_parity,parity,determinism,gate,data_parallel,families,throughput
# runs those stages (build and inputs always run; determinism includes resume).
# Checks, in order (correctness first; throughput last and only while the time
# budget, PROOF_BUDGET seconds, default 480, lasts):
#   build         baton (built here when the Debian -dev packages are present,
#                 else the kit's bundle) and the GPU backend: --cuda-lib SO (e.g.
#                 build/cuda-portable/libbaton-cuda.so, the build users get), else
#                 built with this machine's nvcc for this GPU's architecture only,
#                 else the kit's; `baton doctor` must say it trains on GPU 0
#   selftest      `baton selftest` (first-contact self-check) in fp32, tf32, fp16
#                 and bf16; one the engine or the GPU refuses is skipped with
#                 baton's reason
#   ops_parity    tests/gpu/ops_parity.c (every op, F32/TF32/F16/BF16 as the GPU
#                 allows, CPU reference, run twice) via tests/gpu/run.sh, linked
#                 against the backend under test; the kit's prebuilt binary when
#                 this machine cannot build it
#   parity_P      for each precision P (fp32 tf32 fp16 bf16, data-driven: P is
#                 skipped with a note while the self-check refuses it, or while
#                 `baton run` does not train in it: its trainer.json must say
#                 precision P, as the segment loop will once it resolves
#                 [train] precision; determinism, resume and throughput then
#                 run in every such P too): --steps optimizer
#                 steps (30) of all-MiniLM-L6-v2 on SST-2, CPU vs GPU: train
#                 losses (fp32 <= 1e-3, others <= 2e-2 relative), the weight
#                 updates of the whole model (fp32 <= 2e-2, others <= 0.2; the
#                 worst tensor is shown), eval accuracy shown
#   determinism   the same GPU run twice: model and optimizer bytes identical
#   resume        a GPU run killed with SIGKILL after its first periodic commit
#                 and resumed to the end: bytes identical to the uninterrupted run
#   gate          the first GPU run checked the GPU (first contact), the later
#                 ones honoured the record
#   data_parallel every GPU here (devices = N, sums through NCCL) against one
#                 GPU with grad_accum N: bit for bit for N = 2 (N > 2: shown,
#                 not bit for bit, docs/operations.md); with one GPU, devices
#                 = 2 must be refused (then skipped); a dry run uses 2
#                 stand-in GPUs
#   family_F[_P]  for each family F of tests/reference/family_train.py's writers
#                 (roberta, xlmr, distilbert, electra-proj: ELECTRA with
#                 embeddings_project, debv3: DeBERTa-v3-like, relative positions
#                 p2c|c2p on kernels/cuda/cuda_relattn.cu, debv2; random weights
#                 at odd sizes, tokenizers trained on the proof's SST-2, written
#                 at run time: skipped with a note without torch + transformers
#                 + tokenizers), PROOF_FSTEPS (20) steps at seq 32, GPU vs CPU
#                 with parity_P's limits in fp32 and in the first of bf16/fp16
#                 that parity found `baton run` training in (P); fp32 also
#                 `baton predict` of the GPU's archive on GPU and CPU (16
#                 singles, 8 pairs): logits <= 1e-3 relative
#   throughput    samples/s of a BERT-base-shaped model (random weights) at
#                 s128 b32 and s512 b8: baton in each supported precision beside
#                 Transformers + PyTorch (SDPA attention; fp32 with TF32 off, AMP
#                 bf16 and fp16) on the same GPU in the same run, MFU against
#                 the datasheet peak of the precision, peak GPU memory (nvidia-smi,
#                 above idle); skipped with a note without torch + transformers
#
# Sizes on a GPU (PROOF_SEQ 128, PROOF_BATCH 16 for the MiniLM runs;
# PROOF_DSTEPS 60 steps with a commit every PROOF_CKPT 20 for determinism and
# resume) can be lowered for a small GPU.
#
# Offline inputs (--kit DIR, default build/proof-kit, made by --prepare on a
# machine with network and the Debian packages): models/all-MiniLM-L6-v2
# (weights in fp16 by default: --weights none keeps only config and vocab, and
# the proof then trains random weights of that shape, saying so), data/ (SST-2
# subsets), baton-bundle.tar.gz (baton and its libraries, for a machine that
# cannot build it), gpu_ops_parity (prebuilt, linked against libbaton-cuda.so
# by name). Without a kit, $BATON_MODELS/all-MiniLM-L6-v2 and
# $BATON_DATA/sst2 are used when present.
#
# --dry-run: everything that needs no GPU, with the CPU standing in for it
# (BATON_FAKE_GPU: "noise:1e-6" where CPU and GPU are compared, so the
# thresholds see rounding like a real device's; "none" where bits must
# repeat; PROOF_DRY_FAKE=SPEC replaces the former, to see the proof fail),
# and tiny shapes for throughput; --quick also uses baton's demo model for
# everything and leaves out PyTorch (what `make test` runs).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 70
T0=$(date +%s)

MODE=gpu; OUTD=${OUT:-}; KIT=$ROOT/build/proof-kit; CUDA_LIB=""; BATON_BIN=${BATON:-}; STEPS=""; QUICK=0
WEIGHTS=fp16; BUNDLE=1; PARITY_BIN=1; BUDGET=${PROOF_BUDGET:-480}; ONLY=""
usage() { sed -n '2,/^set -u$/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) MODE=dry; shift ;;
        --prepare) MODE=prepare; shift ;;
        --quick) QUICK=1; shift ;;
        --out) OUTD=${2:?--out needs a directory}; shift 2 ;;
        --kit) KIT=${2:?--kit needs a directory}; shift 2 ;;
        --cuda-lib) CUDA_LIB=${2:?--cuda-lib needs a file}; shift 2 ;;
        --baton) BATON_BIN=${2:?--baton needs a file}; shift 2 ;;
        --steps) STEPS=${2:?--steps needs a number}; shift 2 ;;
        --weights) WEIGHTS=${2:?--weights needs fp16, fp32 or none}; shift 2 ;;
        --no-bundle) BUNDLE=0; shift ;;
        --no-parity-bin) PARITY_BIN=0; shift ;;
        --only) ONLY=",${2:?--only needs a list},"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "proof.sh: unknown argument '$1' (see --help)" >&2; exit 64 ;;
    esac
done
case "$WEIGHTS" in fp16|fp32|none) ;; *) echo "proof.sh: --weights fp16, fp32 or none" >&2; exit 64 ;; esac
[ "$QUICK" = 0 ] || [ "$MODE" = dry ] || { echo "proof.sh: --quick is for --dry-run" >&2; exit 64; }
NPROC=$(nproc 2>/dev/null || echo 2)

# ------------------------------------------------------------------ python
PY=""; HAVE_TORCH=0
for p in ${BATON_PYTHON:-} python3 /usr/bin/python3; do
    command -v "$p" >/dev/null 2>&1 || continue
    if [ "$QUICK" = 0 ] && "$p" -c 'import torch, transformers' 2>/dev/null; then PY=$p; HAVE_TORCH=1; break; fi
done
if [ -z "$PY" ]; then
    for p in ${BATON_PYTHON:-} python3 /usr/bin/python3; do
        command -v "$p" >/dev/null 2>&1 && { PY=$p; break; }
    done
fi
[ -n "$PY" ] || { echo "proof.sh: python3 is needed (the standard library is enough without PyTorch)" >&2; exit 69; }
PL="$ROOT/tests/gpu/proof_lib.py"
pl() { "$PY" "$PL" "$@"; }

. "$ROOT/tests/gpu/proof_prepare.sh"
if [ "$MODE" = prepare ]; then
    prepare_kit
    exit $?
fi

# ----------------------------------------------------------- work and log
[ -n "$OUTD" ] || OUTD=$ROOT/build/proof-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUTD" || exit 74
OUTD=$(cd "$OUTD" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/baton-proof.XXXXXX")
LOGS=$WORK/logs
mkdir -p "$LOGS"
: >"$OUTD/proof.log"
BGPIDS=""
cleanup() {
    for p in $BGPIDS; do kill -KILL "$p" 2>/dev/null; done
    [ "${PROOF_KEEP:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
say() { echo "proof: $*" | tee -a "$OUTD/proof.log"; }
left() { echo $((BUDGET - ($(date +%s) - T0))); }
FAILED=0

# record NAME STATUS NOTE [JSON] — one check into checks.jsonl (status pass/fail/skip)
record() {
    "$PY" - "$WORK/checks.jsonl" "$1" "$2" "$3" "${4:-}" <<'EOF'
import json, sys
path, name, status, note, data = sys.argv[1:6]
rec = {"name": name, "status": status, "note": note}
if data:
    try:
        rec["data"] = json.loads(data)
    except ValueError:
        rec["data"] = data[-4000:]
open(path, "a").write(json.dumps(rec) + "\n")
EOF
    [ "$2" != fail ] || FAILED=$((FAILED + 1))
    say "$(printf '%-4s  %-20s %s' "$2" "$1" "$3")"
}

# brun LOG [ENV=V...] -- ARGS... — baton ARGS with a time limit; exit code in RC
brun() {
    br_log=$1; shift
    env_args=""
    while [ "$1" != "--" ]; do env_args="$env_args $1"; shift; done
    shift
    # shellcheck disable=SC2086
    env $env_args timeout "${RUN_LIMIT:-300}" "$BATON_BIN" "$@" >"$br_log" 2>&1
    RC=$?
}

# ------------------------------------------------------------------- GPUs
. "$ROOT/tests/gpu/proof_stages.sh"

stage_env || { finish; exit $?; }
stage_build || { finish; exit $?; }
# wanted STAGE: run it (every stage, or those --only lists)
wanted() { [ -z "$ONLY" ] || case "$ONLY" in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
wanted selftest && stage_selftest
wanted ops_parity && stage_ops_parity
stage_inputs && {
    wanted parity && stage_parity
    wanted determinism && stage_determinism_resume
    wanted gate && stage_gate
    wanted data_parallel && stage_data_parallel
    wanted families && stage_families
    wanted throughput && stage_throughput
}
finish
exit $?
