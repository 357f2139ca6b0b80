# tests/gpu/proof_stages.sh — the checks of tests/gpu/proof.sh (sourced by it;
# see its header for what each proves and its thresholds).
#
# Owns: each stage's runs, comparisons, thresholds and skip reasons; the job
# files of the proof. Must not: decide the order (proof.sh), or record a pass
# for anything it did not run and compare.
# Uses from proof.sh: MODE QUICK KIT WORK LOGS OUTD PY pl record say left brun
# BATON_BIN CUDA_LIB NPROC STEPS HAVE_TORCH BGPIDS.

DEPS="libarchive libcrypto inih jansson libutf8proc openblas"
SUPPORTED="fp32"      # precisions the engine computes in here (selftest says)
TRAINS="fp32"         # ... and that `baton run` trains in (trainer.json says; parity finds out)
GPU_NAME=""; GPU_CC=""; ARCH=""; NGPU=0; DRIVER="-"; BUNDLE_LIB=""

# fake ROLE — BATON_FAKE_GPU=... for a dry run's "GPU" runs ("" on a GPU):
# noise where CPU and GPU are compared (PROOF_DRY_FAKE overrides it: a test
# makes the stand-in wrong and expects the proof to fail), none where bits must repeat
fake() {
    [ "$MODE" = dry ] || { echo "BATON_FAKE_GPU="; return; }
    case "$1" in compare) echo "BATON_FAKE_GPU=${PROOF_DRY_FAKE:-noise:1e-6}" ;; *) echo "BATON_FAKE_GPU=none" ;; esac
}

stage_env() {
    if [ "$MODE" = dry ]; then
        GPU_NAME="none (dry run: the CPU stands in for the GPU)"
        say "dry run: the CPU stands in for a GPU (BATON_FAKE_GPU); no GPU is used"
        return 0
    fi
    command -v nvidia-smi >/dev/null 2>&1 || { say "no nvidia-smi, so no NVIDIA GPU here: use --dry-run"; return 77; }
    pl gpus >"$WORK/gpus.json"
    NGPU=$(pl jget "$WORK/gpus.json" len)
    [ "${NGPU:-0}" -ge 1 ] 2>/dev/null || { say "nvidia-smi lists no GPU: use --dry-run"; return 77; }
    GPU_NAME=$(pl jget "$WORK/gpus.json" 0.name)
    GPU_CC=$(pl jget "$WORK/gpus.json" 0.cc)
    DRIVER=$(pl jget "$WORK/gpus.json" 0.driver)
    ARCH=$(echo "$GPU_CC" | tr -d .)
    say "GPU 0: $GPU_NAME (compute capability $GPU_CC, sm_$ARCH), driver $DRIVER; $NGPU GPU(s)"
    return 0
}

# ------------------------------------------------------------------ build

stage_build() {
    if [ -n "$BATON_BIN" ]; then
        how="given"
    elif pkg-config --exists $DEPS 2>/dev/null; then
        if ! make -s CUDA=0 BUILD="$ROOT/build/proof" BIN="$ROOT/build/proof/baton" -j"$NPROC" >"$LOGS/build-baton.log" 2>&1; then
            record build fail "make of baton failed (logs/build-baton.log)"
            return 1
        fi
        BATON_BIN=$ROOT/build/proof/baton; how="built here (CUDA=0)"
    elif [ -f "$KIT/baton-bundle.tar.gz" ]; then
        tar -xzf "$KIT/baton-bundle.tar.gz" -C "$WORK" || { record build fail "cannot unpack $KIT/baton-bundle.tar.gz"; return 1; }
        BATON_BIN=$WORK/baton-bundle/baton; BUNDLE_LIB=$WORK/baton-bundle/lib; how="the kit's bundle"
        "$BATON_BIN" version >/dev/null 2>&1 || { BATON_BIN=$WORK/baton-bundle/baton-glibc; how="the kit's bundle, with its glibc"; }
    else
        record build fail "no baton: this machine lacks the Debian packages to build it ($DEPS) and $KIT has no baton-bundle.tar.gz (run --prepare where they are)"
        return 1
    fi
    BATON_BIN=$(cd "$(dirname "$BATON_BIN")" && pwd)/$(basename "$BATON_BIN")
    "$BATON_BIN" version >"$LOGS/version.log" 2>&1 || { record build fail "$BATON_BIN does not start: $(head -n 2 "$LOGS/version.log")"; return 1; }
    if [ "$MODE" = dry ]; then
        record build pass "baton $BATON_BIN ($how); no GPU backend in a dry run"
        return 0
    fi
    if [ -n "$CUDA_LIB" ]; then
        [ -f "$CUDA_LIB" ] || { record build fail "--cuda-lib $CUDA_LIB: no such file"; return 1; }
        lhow="given (--cuda-lib)"
    elif command -v nvcc >/dev/null 2>&1; then
        cb=$ROOT/build/proof-sm$ARCH
        if ! make -s CUDA=1 CUDA_ARCHS="$ARCH" BUILD="$cb" "$cb/libbaton-cuda.so" -j"$NPROC" >"$LOGS/build-cuda.log" 2>&1; then
            record build fail "make of libbaton-cuda.so for sm_$ARCH failed (logs/build-cuda.log)"
            return 1
        fi
        CUDA_LIB=$cb/libbaton-cuda.so; lhow="built here for sm_$ARCH only ($(nvcc --version | tail -n 1))"
    elif [ -f "$KIT/libbaton-cuda.so" ]; then
        CUDA_LIB=$KIT/libbaton-cuda.so; lhow="the kit's"
    else
        record build fail "no GPU backend: no --cuda-lib, no nvcc to build one, none in $KIT"
        return 1
    fi
    CUDA_LIB=$(cd "$(dirname "$CUDA_LIB")" && pwd)/$(basename "$CUDA_LIB")
    export BATON_CUDA_LIB="$CUDA_LIB"
    if [ -z "${BATON_CUDA_LIBS:-}" ]; then
        d=$(pl find-cublaslt)
        [ -z "$d" ] || export BATON_CUDA_LIBS="$d"
    fi
    "$BATON_BIN" doctor >"$LOGS/doctor.log" 2>&1
    if ! grep -qE '^verdict: device = auto trains on (GPU 0|the GPUs)' "$LOGS/doctor.log" &&
        grep -q 'GLIBCXX\|version .* not found' "$LOGS/doctor.log"; then
        # a library built with this machine's compiler may need its newer libstdc++
        sl=$(ldconfig -p 2>/dev/null | awk '/libstdc\+\+\.so\.6 .*x86-64/ { print $NF; exit }')
        if [ -n "$sl" ]; then
            LD_LIBRARY_PATH="$(dirname "$sl")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
            export LD_LIBRARY_PATH
        fi
        "$BATON_BIN" doctor >"$LOGS/doctor.log" 2>&1
    fi
    if ! grep -qE '^verdict: device = auto trains on (GPU 0|the GPUs)' "$LOGS/doctor.log"; then
        record build fail "baton will not train on GPU 0: $(grep -m1 '^verdict' "$LOGS/doctor.log" | cut -c1-300)"
        return 1
    fi
    record build pass "baton $BATON_BIN ($how); backend $CUDA_LIB ($lhow); cuBLASLt $(grep -m1 'cuBLASLt' "$LOGS/doctor.log" | sed 's/^ *//' | cut -c1-160)"
    return 0
}

# --------------------------------------------------------------- selftest

stage_selftest() {
    export XDG_CACHE_HOME="$WORK/selftest-cache"
    if [ "$MODE" = dry ]; then
        brun "$LOGS/selftest-fp32.json" "$(fake compare)" -- selftest --json --threads "$NPROC"
        rc1=$RC
        brun "$LOGS/selftest-fault.json" BATON_FAKE_GPU=matmul -- selftest --json --threads "$NPROC"
        if [ $rc1 = 0 ] && [ $RC = 70 ]; then
            record selftest_fp32 pass "noisy stand-in passes ($(selftest_errors "$LOGS/selftest-fp32.json")); a matmul off by 1e-3 is refused (exit 70)" \
                "$(tail -n 1 "$LOGS/selftest-fp32.json")"
        else
            record selftest_fp32 fail "noisy stand-in exit $rc1 (want 0), faulty stand-in exit $RC (want 70); logs/selftest-*.json"
        fi
    else
        brun "$LOGS/selftest-fp32.json" -- selftest --json --threads "$NPROC"
        case $RC in
            0) record selftest_fp32 pass "$(selftest_errors "$LOGS/selftest-fp32.json")" "$(tail -n 1 "$LOGS/selftest-fp32.json")" ;;
            70) record selftest_fp32 fail "MISMATCH: $(selftest_errors "$LOGS/selftest-fp32.json")" "$(tail -n 1 "$LOGS/selftest-fp32.json")" ;;
            *) record selftest_fp32 fail "exit $RC: $(tail -n 3 "$LOGS/selftest-fp32.json" | tr '\n' ' ' | cut -c1-300)" ;;
        esac
    fi
    for p in tf32 fp16 bf16; do
        if [ "$MODE" = gpu ] && [ "$p" != fp16 ] && [ "${ARCH:-0}" -lt 80 ]; then
            record "selftest_$p" skip "$p needs compute capability 8.0 (this GPU: $GPU_CC)"
            continue
        fi
        brun "$LOGS/selftest-$p.json" "$(fake compare)" -- selftest --json --precision "$p" --threads "$NPROC"
        case $RC in
            0) SUPPORTED="$SUPPORTED $p"
               record "selftest_$p" pass "$(selftest_errors "$LOGS/selftest-$p.json")" "$(tail -n 1 "$LOGS/selftest-$p.json")" ;;
            78) record "selftest_$p" skip "baton refuses it: $(sed -n 's/^baton: error: //p' "$LOGS/selftest-$p.json" | head -n 1 | cut -c1-200)" ;;
            70) record "selftest_$p" fail "MISMATCH: $(selftest_errors "$LOGS/selftest-$p.json")" "$(tail -n 1 "$LOGS/selftest-$p.json")" ;;
            *) record "selftest_$p" fail "exit $RC: $(tail -n 2 "$LOGS/selftest-$p.json" | tr '\n' ' ' | cut -c1-300)" ;;
        esac
    done
    # the gate stage wants the first training run on this GPU to meet an empty record
    rm -rf "$XDG_CACHE_HOME"
}

selftest_errors() { # JSON line -> "loss 1e-7, grad 2e-6, weight 3e-6 (limit 1e-4)"
    f=$1
    echo "loss $(fmt "$(pl jget "$f" loss.error)"), gradients $(fmt "$(pl jget "$f" grad.error)"), weight updates $(fmt "$(pl jget "$f" weight.error)") (limit $(pl jget "$f" limit))"
}

fmt() { "$PY" -c "import sys; v = sys.argv[1]; print('%.3g' % float(v) if v else '?')" "${1:-}" 2>/dev/null || echo "${1:-?}"; }

# ------------------------------------------------------------- op parity

stage_ops_parity() {
    if [ "$MODE" = dry ]; then
        record ops_parity skip "needs a GPU (tests/gpu/ops_parity.c and engine_parity.c compare every op and training steps on the GPU with the CPU)"
        return
    fi
    log=$LOGS/ops_parity.log
    if command -v nvcc >/dev/null 2>&1 && pkg-config --exists $DEPS 2>/dev/null; then
        BUILD="$ROOT/build/proof-sm$ARCH" CUDA_ARCHS="$ARCH" CUDA_LIB="$CUDA_LIB" timeout 420 sh "$ROOT/tests/gpu/run.sh" >"$log" 2>&1
        rc=$?; how="tests/gpu/run.sh against $CUDA_LIB"
    elif [ -x "$KIT/gpu_ops_parity" ]; then
        lp="$(dirname "$CUDA_LIB")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}${BUNDLE_LIB:+:$BUNDLE_LIB}"
        LD_LIBRARY_PATH="$lp" timeout 300 "$KIT/gpu_ops_parity" >"$log" 2>&1
        rc=$?
        if [ $rc != 77 ] && [ -x "$KIT/gpu_engine_parity" ]; then
            LD_LIBRARY_PATH="$lp" timeout 120 "$KIT/gpu_engine_parity" >>"$log" 2>&1
            erc=$?
            [ $rc != 0 ] || rc=$erc
        fi
        how="the kit's prebuilt ops_parity and engine_parity against $CUDA_LIB"
    else
        record ops_parity skip "cannot build tests/gpu/ops_parity.c here (needs nvcc and the Debian packages: $DEPS) and $KIT has no prebuilt gpu_ops_parity"
        return
    fi
    case $rc in
        0) record ops_parity pass "$(grep -E '^(PASS|FAIL)' "$log" | tr '\n' ' ' | cut -c1-300) ($how)" ;;
        77) record ops_parity skip "$(grep -m1 -i skip "$log")" ;;
        124) record ops_parity fail "did not finish in 420 s ($how); logs/ops_parity.log" ;;
        *) record ops_parity fail "exit $rc: $(grep -c '^FAIL' "$log") failed: $(grep -m3 '^FAIL' "$log" | tr '\n' ';' | cut -c1-400)" ;;
    esac
}

# ----------------------------------------------------------------- inputs

stage_inputs() {
    if [ "$QUICK" = 1 ]; then
        "$BATON_BIN" demo-init "$WORK/demo" >/dev/null 2>&1 || { record inputs fail "baton demo-init failed"; return 1; }
        MODEL=$WORK/demo/model; TRAIN=$WORK/demo/data/train.tsv; EVAL=$WORK/demo/data/eval.tsv
        VOCAB=$MODEL/vocab.txt; NOTE="baton's demo model and data (--quick)"
        SEQ=32; BATCH=8; STEPS=${STEPS:-8}; CKPT=4; DSTEPS=12; LIMIT_EVAL=64
    else
        src=""
        for d in "$KIT/models/all-MiniLM-L6-v2" "${BATON_MODELS:-$ROOT/build/models}/all-MiniLM-L6-v2"; do
            [ -f "$d/config.json" ] && [ -f "$d/vocab.txt" ] && { src=$d; break; }
        done
        [ -n "$src" ] || { record inputs fail "no all-MiniLM-L6-v2 (config.json, vocab.txt) in $KIT/models or \$BATON_MODELS: run --prepare"; return 1; }
        VOCAB=$src/vocab.txt
        if [ -f "$src/model.safetensors" ]; then
            MODEL=$src; NOTE="all-MiniLM-L6-v2 ($src)"
        else
            pl synth-model "$WORK/minilm" "$VOCAB" --config "$src/config.json" || { record inputs fail "cannot make the model"; return 1; }
            MODEL=$WORK/minilm; NOTE="random weights of all-MiniLM-L6-v2's shape (no weights in $src)"
        fi
        TRAIN=""; EVAL=""
        if [ -f "$KIT/data/sst2-train.tsv" ]; then
            TRAIN=$KIT/data/sst2-train.tsv; EVAL=$KIT/data/sst2-dev.tsv; NOTE="$NOTE; SST-2 from the kit"
        elif [ -f "${BATON_DATA:-$ROOT/../shared/data}/sst2/train.tsv" ]; then
            TRAIN=${BATON_DATA:-$ROOT/../shared/data}/sst2/train.tsv; EVAL=$(dirname "$TRAIN")/dev.tsv; NOTE="$NOTE; SST-2 ($TRAIN)"
        else
            pl synth-data "$VOCAB" 2000 20 "$WORK/train.tsv" && pl synth-data "$VOCAB" 300 20 "$WORK/eval.tsv"
            TRAIN=$WORK/train.tsv; EVAL=$WORK/eval.tsv; NOTE="$NOTE; synthetic sentences (no SST-2 here)"
        fi
        if [ "$MODE" = gpu ]; then SEQ=${PROOF_SEQ:-128}; BATCH=${PROOF_BATCH:-16}; STEPS=${STEPS:-30}
            CKPT=${PROOF_CKPT:-20}; DSTEPS=${PROOF_DSTEPS:-60}; LIMIT_EVAL=256
        else SEQ=32; BATCH=8; STEPS=${STEPS:-6}; CKPT=4; DSTEPS=12; LIMIT_EVAL=64; fi
    fi
    LIMIT_TRAIN=$((DSTEPS * BATCH))
    [ "$STEPS" -le "$DSTEPS" ] || LIMIT_TRAIN=$((STEPS * BATCH))
    record inputs pass "$NOTE; seq $SEQ, batch $BATCH"
    return 0
}

# write_job FILE OUTDIR DEVICE PRECISION MAX_STEPS CHECKPOINT_EVERY [SECTION.KEY=VALUE...]
write_job() {
    wj=$1; wo=$2; wd=$3; wp=$4; wm=$5; wc=$6; shift 6
    {
        printf '[job]\nname = proof\noutput_dir = %s\nseed = 42\n[model]\npath = %s\n' "$wo" "$MODEL"
        printf '[data]\ntrain = %s\ntext_column = sentence\nlabel_column = label\nmax_seq_len = %s\nlimit_train = %s\n' \
            "$TRAIN" "$SEQ" "$LIMIT_TRAIN"
        [ -z "$EVAL" ] || printf 'eval = %s\nlimit_eval = %s\n' "$EVAL" "$LIMIT_EVAL"
        printf '[train]\nbatch_size = %s\nlr = 5e-5\nmax_steps = %s\nwarmup_steps = 0\nprecision = %s\n' "$BATCH" "$wm" "$wp"
        printf '[runtime]\ndevice = %s\nthreads = %s\nprogress = none\ncheckpoint_every = %s\nkeep_last = 3\n' "$wd" "$NPROC" "$wc"
    } >"$wj"
    for kv in "$@"; do # a key not written above, in a section of its own (INI allows a section twice)
        printf '[%s]\n%s = %s\n' "${kv%%.*}" "$(echo "${kv#*.}" | cut -d= -f1)" "${kv#*=}" >>"$wj"
    done
}

newest() { ls "$1"/ckpt-*.tar 2>/dev/null | sort | tail -n 1; }

# gpu_run LOG ROLE JOB [ARGS]: the job on the "GPU" (device = cuda; a dry run's stand-in per ROLE)
gpu_run() { gr_log=$1; gr_role=$2; shift 2; brun "$gr_log" "$(fake "$gr_role")" -- run "$@"; }

# ----------------------------------------------------------------- parity

stage_parity() {
    for p in fp32 tf32 fp16 bf16; do
        case " $SUPPORTED " in *" $p "*) ;; *)
            record "parity_$p" skip "the engine does not compute in $p here (see selftest_$p)"; continue ;;
        esac
        if [ "$(left)" -lt 60 ]; then record "parity_$p" skip "the time budget ran out (PROOF_BUDGET=$BUDGET s)"; continue; fi
        write_job "$WORK/par-$p-cpu.ini" "$WORK/par-$p-cpu" cpu "$(cpu_precision "$p")" "$STEPS" 0
        write_job "$WORK/par-$p-gpu.ini" "$WORK/par-$p-gpu" cuda "$p" "$STEPS" 0
        gpu_run "$LOGS/parity-$p-gpu.log" compare "$WORK/par-$p-gpu.ini"
        rc_g=$RC
        if [ $rc_g = 0 ] && [ "$p" != fp32 ]; then
            # the job key must have reached the engine: trainer.json records the precision trained in
            got=$(pl trainer-field "$(newest "$WORK/par-$p-gpu")" precision 2>/dev/null)
            if [ "$got" != "$p" ]; then
                record "parity_$p" skip "baton run does not train in $p yet: its trainer.json says precision '${got:-(none)}' (the segment loop does not resolve [train] precision); the engine's $p is checked by selftest_$p"
                continue
            fi
        fi
        brun "$LOGS/parity-$p-cpu.log" -- run "$WORK/par-$p-cpu.ini"
        rc_c=$RC
        if [ $rc_c != 0 ] || [ $rc_g != 0 ]; then
            record "parity_$p" fail "training exited $rc_c on the CPU and $rc_g on the GPU (logs/parity-$p-*.log): $(grep -h -m1 'error' "$LOGS/parity-$p-gpu.log" "$LOGS/parity-$p-cpu.log" | head -n 1 | cut -c1-300)"
            continue
        fi
        [ "$p" = fp32 ] || TRAINS="$TRAINS $p"
        pl compare-archives "$(newest "$WORK/par-$p-gpu")" "$(newest "$WORK/par-$p-cpu")" "$MODEL" >"$WORK/cmp-$p.json"
        pl compare-metrics "$WORK/par-$p-gpu/metrics.jsonl" "$WORK/par-$p-cpu/metrics.jsonl" >"$WORK/met-$p.json"
        lr=$(pl jget "$WORK/met-$p.json" loss_rel); ug=$(pl jget "$WORK/cmp-$p.json" update_rel_global)
        ur=$(pl jget "$WORK/cmp-$p.json" update_rel); ua=$(pl jget "$WORK/cmp-$p.json" update_at)
        ev=$(pl jget "$WORK/met-$p.json" eval.accuracy)
        if [ "$p" = fp32 ]; then lt=1e-3; ut=2e-2; else lt=2e-2; ut=0.2; fi
        verdict=$("$PY" -c "import sys; l,u,lt,ut=map(float,sys.argv[1:]); print('pass' if l <= lt and u <= ut else 'fail')" \
            "${lr:-inf}" "${ug:-inf}" "$lt" "$ut")
        record "parity_$p" "$verdict" "$STEPS steps GPU ($p) vs CPU ($(cpu_precision "$p")): train loss rel $(fmt "$lr") (<= $lt), weight updates rel $(fmt "$ug") (<= $ut; worst tensor $(fmt "$ur"), $ua); eval accuracy GPU, CPU: $ev" \
            "{\"archives\": $(cat "$WORK/cmp-$p.json"), \"metrics\": $(cat "$WORK/met-$p.json")}"
        rm -rf "$WORK/par-$p-cpu"
    done
}

cpu_precision() { [ "$1" = tf32 ] && echo fp32 || echo "$1"; } # the CPU has no TF32: its reference is fp32

# ------------------------------------------------ determinism and resume

stage_determinism_resume() {
    for p in $TRAINS; do
        sfx=""; [ "$p" = fp32 ] || sfx=_$p
        if [ "$(left)" -lt 60 ]; then
            record "determinism$sfx" skip "the time budget ran out"; record "resume$sfx" skip "the time budget ran out"
            continue
        fi
        determinism_resume "$p" "$sfx"
    done
}

# determinism_resume PRECISION SUFFIX: two GPU runs, then a killed and resumed one
determinism_resume() {
    p=$1; sfx=$2; d=$WORK/det-$p
    for r in a b c; do write_job "$d-$r.ini" "$d-$r" cuda "$p" "$DSTEPS" "$CKPT"; done
    gpu_run "$LOGS/det-$p-a.log" repeat "$d-a.ini"; rc_a=$RC
    gpu_run "$LOGS/det-$p-b.log" repeat "$d-b.ini"; rc_b=$RC
    if [ $rc_a != 0 ] || [ $rc_b != 0 ]; then
        record "determinism$sfx" fail "GPU runs exited $rc_a and $rc_b (logs/det-$p-*.log)"
    else
        pl compare-archives "$(newest "$d-a")" "$(newest "$d-b")" >"$d.json"
        if [ "$(pl jget "$d.json" identical)" = True ]; then
            record "determinism$sfx" pass "two GPU runs of $DSTEPS steps in $p: model and optimizer bytes identical" "$(cat "$d.json")"
        else
            record "determinism$sfx" fail "two GPU runs in $p differ: weights rel $(fmt "$(pl jget "$d.json" weight_rel)") at $(pl jget "$d.json" weight_at)" "$(cat "$d.json")"
        fi
    fi
    # resume: SIGKILL after the first periodic commit, then run to the end
    first=$d-c/ckpt-$(printf '%09d' "$CKPT").tar
    # env execs baton (no timeout wrapper): the pid killed is baton's own
    env "$(fake repeat)" "$BATON_BIN" run "$d-c.ini" >"$LOGS/resume-$p-1.log" 2>&1 &
    pid=$!
    BGPIDS="$BGPIDS $pid"
    i=0
    while [ ! -f "$first" ] && kill -0 $pid 2>/dev/null && [ $i -lt 6000 ]; do sleep 0.02; i=$((i + 1)); done
    kill -KILL $pid 2>/dev/null
    wait $pid 2>/dev/null
    killed_at=$(basename "$(newest "$d-c")")
    if [ -f "$d-c/ckpt-$(printf '%09d' "$DSTEPS").tar" ]; then
        record "resume$sfx" fail "the run reached its end ($DSTEPS steps) before the kill; raise the steps (logs/resume-$p-1.log)"
        return
    fi
    n=0
    while :; do
        n=$((n + 1))
        gpu_run "$LOGS/resume-$p-$((n + 1)).log" repeat "$d-c.ini"
        [ $RC = 75 ] && [ $n -lt 5 ] && continue
        break
    done
    if [ $RC != 0 ] || [ $rc_a != 0 ]; then
        record "resume$sfx" fail "the resumed run exited $RC, the uninterrupted one $rc_a (logs/resume-$p-*.log)"
        return
    fi
    grep -q 'resumed from' "$LOGS/resume-$p-2.log" || { record "resume$sfx" fail "the second run did not resume (logs/resume-$p-2.log)"; return; }
    pl compare-archives "$(newest "$d-c")" "$(newest "$d-a")" >"$d-res.json"
    if [ "$(pl jget "$d-res.json" identical)" = True ]; then
        record "resume$sfx" pass "killed (SIGKILL) with ${killed_at:-no archive} committed, resumed in $n run(s): bytes identical to the uninterrupted run ($p)" "$(cat "$d-res.json")"
    else
        record "resume$sfx" fail "the resumed run differs from the uninterrupted one: weights rel $(fmt "$(pl jget "$d-res.json" weight_rel)") at $(pl jget "$d-res.json" weight_at)" "$(cat "$d-res.json")"
    fi
}

# ------------------------------------------------------------------- gate

stage_gate() {
    # the first run on this GPU and a later one; in a dry run the stand-ins of
    # parity (noise) and determinism (none) are two "GPUs", so det-a is a first contact
    g=$LOGS/parity-fp32-gpu.log; later=$LOGS/det-fp32-a.log
    [ "$MODE" = gpu ] || { g=$LOGS/det-fp32-a.log; later=$LOGS/det-fp32-b.log; }
    [ -f "$g" ] && [ -f "$later" ] || { record gate skip "the runs it reads did not run"; return; }
    if grep -q 'first contact with' "$g" && grep -q 'self-check passed in' "$g" && ! grep -q 'first contact with' "$later"; then
        record gate pass "the first training run checked the GPU ($(grep -m1 'self-check passed' "$g" | cut -c1-160)); later runs honoured the record"
    else
        record gate fail "first run: $(grep -c 'first contact' "$g") first-contact line(s), pass line: $(grep -c 'self-check passed' "$g"); a later run: $(grep -c 'first contact' "$later") (want 1, 1, 0)"
    fi
}

# ---------------------------------------------------------- data parallel

stage_data_parallel() {
    write_job "$WORK/dp-probe.ini" "$WORK/dp-probe" cuda fp32 1 0 runtime.devices=1
    brun "$LOGS/dp-probe.log" -- status "$WORK/dp-probe.ini"
    if grep -q "unknown key 'devices'" "$LOGS/dp-probe.log"; then
        record data_parallel skip "[runtime] devices does not exist yet (data parallel is not built); this check runs once it does"
        return
    fi
    # a dry run stands 2 "GPUs" in (the CPU behind clean wrappers: the GPU path of runner/devices.c,
    # the backends' collective in place of NCCL); one real GPU: more devices than GPUs is refused
    dp_env="$(fake det)"; n=$NGPU
    [ "$MODE" = dry ] && { dp_env="BATON_FAKE_GPU=none BATON_FAKE_GPU_COUNT=2"; n=2; }
    if [ "$n" -lt 2 ]; then
        write_job "$WORK/dp-2.ini" "$WORK/dp-2" cuda fp32 1 0 runtime.devices=2
        # shellcheck disable=SC2086
        brun "$LOGS/dp-2.log" $dp_env -- run "$WORK/dp-2.ini"
        if [ "$RC" = 78 ] && grep -q "but this machine has 1 GPU" "$LOGS/dp-2.log"; then
            record data_parallel skip "one GPU here: data parallel needs two (devices = 2 is refused with exit 78, as it should be)"
        else
            record data_parallel fail "one GPU, devices = 2: exit $RC, want 78 and 'this machine has 1 GPU' (logs/dp-2.log)"
        fi
        return
    fi
    # N devices, accumulation 1 == 1 device, accumulation N: bit for bit for N = 2 (for N > 2 NCCL's
    # order of the sum differs: docs/operations.md), the effective batch the same
    write_job "$WORK/dp-n.ini" "$WORK/dp-n" cuda fp32 "$STEPS" 0 runtime.devices="$n"
    write_job "$WORK/dp-1.ini" "$WORK/dp-1" cuda fp32 "$STEPS" 0 runtime.devices=1 train.grad_accum="$n"
    # shellcheck disable=SC2086
    brun "$LOGS/dp-n.log" $dp_env -- run "$WORK/dp-n.ini"; rc_n=$RC
    # shellcheck disable=SC2086
    brun "$LOGS/dp-1.log" $dp_env -- run "$WORK/dp-1.ini"; rc_1=$RC
    if [ $rc_n != 0 ] || [ $rc_1 != 0 ]; then record data_parallel fail "runs exited $rc_n and $rc_1 (logs/dp-*.log)"; return; fi
    how="the backends' collective"
    [ "$MODE" = gpu ] && how="NCCL"
    grep -q "go through host memory instead" "$LOGS/dp-n.log" && how="host memory (no NCCL: $(grep -o 'devices = [0-9]*: .*; the gradients' "$LOGS/dp-n.log" | cut -c1-200))"
    pl compare-archives "$(newest "$WORK/dp-n")" "$(newest "$WORK/dp-1")" >"$WORK/dp.json"
    if [ "$(pl jget "$WORK/dp.json" model_identical)" = True ]; then
        record data_parallel pass "$n GPUs == 1 GPU with grad_accum $n, bit for bit (sums through $how)" "$(cat "$WORK/dp.json")"
    elif [ "$n" -gt 2 ]; then
        record data_parallel pass "$n GPUs vs 1 GPU with grad_accum $n: not bit for bit, as documented for N > 2 (sums through $how)" "$(cat "$WORK/dp.json")"
    else
        record data_parallel fail "$n GPUs differ from 1 GPU with grad_accum $n (sums through $how)" "$(cat "$WORK/dp.json")"
    fi
}

# --------------------------------------------------------------- families

# the model directories of tests/reference/family_train.py's writers (random
# weights at odd sizes, tokenizers trained on $TRAIN's text): RoBERTa, XLM-R,
# DistilBERT, ELECTRA with embeddings_project, DeBERTa-v3-like (relative
# positions, p2c|c2p: kernels/cuda/cuda_relattn.cu) and DeBERTa-v2-like
FAMILIES=${PROOF_FAMILIES:-roberta xlmr distilbert electra-proj debv3 debv2}

stage_families() {
    if [ "$HAVE_TORCH" != 1 ] || ! "$PY" -c 'import tokenizers, numpy' 2>/dev/null; then
        record families skip "needs torch, transformers, tokenizers and numpy for $PY to write the model directories (tests/reference/family_train.py)$( [ "$QUICK" = 1 ] && echo '; --quick leaves out PyTorch')"
        return
    fi
    fd=$WORK/families
    if ! "$PY" "$ROOT/tests/reference/family_train.py" dirs "$fd" "$TRAIN" $FAMILIES >"$LOGS/families-make.log" 2>&1; then
        record families fail "cannot write the model directories: $(tail -n 1 "$LOGS/families-make.log" | cut -c1-300)"
        return
    fi
    # 16 singles and 8 pairs of the eval text to predict
    tail -n +2 "${EVAL:-$TRAIN}" | cut -f1 | head -n 32 |
        awk 'NR <= 16 { print; next } NR % 2 { a = $0; next } { print a "\t" $0 }' >"$WORK/families-in.txt"
    rp=""
    for p in bf16 fp16; do case " $TRAINS " in *" $p "*) rp=$p; break ;; esac; done
    keep_model=$MODEL; keep_seq=$SEQ
    SEQ=32 # the models' positions: 40 (RoBERTa's from pad_token_id + 1), 64
    for f in $FAMILIES; do
        MODEL=$fd/$f
        family_parity "$f" fp32 "$f"
        if [ -n "$rp" ]; then family_parity "$f" "$rp" "${f}_$rp"
        else record "family_${f}_16bit" skip "no 16-bit precision that baton run trains in was found by parity_bf16/fp16 (run the parity stage first)"; fi
    done
    MODEL=$keep_model; SEQ=$keep_seq
}

# family_parity FAMILY PRECISION NAME: FSTEPS steps of the model $MODEL on the
# GPU and the CPU, compared as parity_P does (its limits); fp32: `baton
# predict` of the GPU's archive on the GPU and on the CPU (logits <= 1e-3)
family_parity() {
    f=$1; p=$2; n=family_$3; fs=${PROOF_FSTEPS:-20}; d=$WORK/fam-$3
    if [ "$(left)" -lt 30 ]; then record "$n" skip "the time budget ran out (PROOF_BUDGET=$BUDGET s)"; return; fi
    write_job "$d-gpu.ini" "$d-gpu" cuda "$p" "$fs" 0
    write_job "$d-cpu.ini" "$d-cpu" cpu "$(cpu_precision "$p")" "$fs" 0
    gpu_run "$LOGS/fam-$3-gpu.log" compare "$d-gpu.ini"; rc_g=$RC
    brun "$LOGS/fam-$3-cpu.log" -- run "$d-cpu.ini"; rc_c=$RC
    if [ $rc_c != 0 ] || [ $rc_g != 0 ]; then
        record "$n" fail "$f ($p): training exited $rc_c on the CPU and $rc_g on the GPU: $(grep -h -m1 'error' "$LOGS/fam-$3-gpu.log" "$LOGS/fam-$3-cpu.log" | head -n 1 | cut -c1-300)"
        return
    fi
    got=$(pl trainer-field "$(newest "$d-gpu")" precision 2>/dev/null)
    [ "$got" = "$p" ] || { record "$n" fail "$f: the GPU run's trainer.json says precision '$got', not $p"; return; }
    pl compare-archives "$(newest "$d-gpu")" "$(newest "$d-cpu")" "$MODEL" >"$d-cmp.json"
    pl compare-metrics "$d-gpu/metrics.jsonl" "$d-cpu/metrics.jsonl" >"$d-met.json"
    lr=$(pl jget "$d-met.json" loss_rel); ug=$(pl jget "$d-cmp.json" update_rel_global)
    nt=$(pl jget "$d-cmp.json" update_tensors); ns=$(pl jget "$d-met.json" steps_compared.len)
    if [ "$p" = fp32 ]; then lt=1e-3; ut=2e-2; else lt=2e-2; ut=0.2; fi
    pr=0; pnote=""
    if [ "$p" = fp32 ]; then
        for dev in cuda cpu; do
            brun "$LOGS/fam-$3-predict-$dev.log" "$( [ $dev = cuda ] && fake compare)" -- predict "$(newest "$d-gpu")" \
                --input "$WORK/families-in.txt" --format logits --device $dev --output "$d-p$dev.txt"
            [ $dev = cuda ] && rc_pg=$RC
        done
        if [ $rc_pg != 0 ] || [ $RC != 0 ]; then pr=inf; pnote="; predict exited $rc_pg on the GPU, $RC on the CPU: $(grep -h -m1 error "$LOGS/fam-$3-predict-"*.log | head -n 1 | cut -c1-200)"
        else pl compare-logits "$d-pcuda.txt" "$d-pcpu.txt" >"$d-pred.json"; pr=$(pl jget "$d-pred.json" rel)
            pnote="; predict GPU vs CPU: $(pl jget "$d-pred.json" rows) lines (8 pairs), logits rel $(fmt "$pr") (<= 1e-3)"; fi
    fi
    verdict=$("$PY" -c "import sys; l,u,pr,lt,ut=map(float,sys.argv[1:6]); n,s=int(sys.argv[6] or 0),int(sys.argv[7] or 0); print('pass' if l <= lt and u <= ut and pr <= 1e-3 and n > 10 and s > 0 else 'fail')" \
        "${lr:-inf}" "${ug:-inf}" "$pr" "$lt" "$ut" "$nt" "$ns")
    record "$n" "$verdict" "$f: $fs steps GPU ($p) vs CPU ($(cpu_precision "$p")): train loss rel $(fmt "$lr") (<= $lt, $ns steps), weight updates rel $(fmt "$ug") (<= $ut, $nt tensors; worst $(fmt "$(pl jget "$d-cmp.json" update_rel)"), $(pl jget "$d-cmp.json" update_at))$pnote" \
        "{\"archives\": $(cat "$d-cmp.json"), \"metrics\": $(cat "$d-met.json")$( [ -f "$d-pred.json" ] && echo ", \"predict\": $(cat "$d-pred.json")")}"
    rm -rf "$d-cpu"
}

# ------------------------------------------------------------- throughput

mem_start() { # FILE: samples GPU 0's used memory every 100 ms (GPU only)
    MEMPID=""
    [ "$MODE" = gpu ] || return 0
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 -lms 100 >"$1" 2>/dev/null &
    MEMPID=$!
    BGPIDS="$BGPIDS $MEMPID"
    sleep 0.3
}
mem_stop() { # FILE -> peak MiB above the first sample ("" if none)
    [ -n "$MEMPID" ] || { echo ""; return; }
    kill "$MEMPID" 2>/dev/null
    wait "$MEMPID" 2>/dev/null
    awk 'NR == 1 { base = $1 } $1 + 0 > max { max = $1 + 0 } END { if (NR) print max - base }' "$1"
}

stage_throughput() {
    if [ "$(left)" -lt 90 ]; then
        record throughput skip "the time budget ran out before it (PROOF_BUDGET=$BUDGET s)"
        return
    fi
    if [ "$QUICK" = 1 ]; then
        tmodel=$MODEL; shapes="32:8"; tsteps=20; mname="demo"
    else
        if [ "$MODE" = gpu ]; then shape=bert-base; shapes="128:32 512:8"; tsteps=40; mname="BERT-base shape, random weights"
        else shape=tiny; shapes="64:8"; tsteps=20; mname="tiny BERT (dry run), random weights"; fi
        tmodel=$WORK/tp-model
        pl synth-model "$tmodel" "$VOCAB" "$shape" || { record throughput fail "cannot make the model"; return; }
    fi
    peer="PyTorch $(if [ $HAVE_TORCH = 1 ]; then "$PY" -c 'import torch, transformers; print(torch.__version__ + " + Transformers " + transformers.__version__)'; fi)"
    dev=cuda; [ "$MODE" = gpu ] || dev=cpu
    gpu=${GPU_NAME}
    n_ok=0
    for sb in $shapes; do
        s=${sb%%:*}; b=${sb#*:}
        flops=$(pl flops "$tmodel/config.json" "$s")
        pl synth-data "$VOCAB" $((tsteps * b)) $((s + 16)) "$WORK/tp-$s.tsv"
        for p in $TRAINS; do
            if [ "$(left)" -lt 45 ]; then
                pl add-throughput "$WORK/throughput.jsonl" model="$mname" seq="$s" batch="$b" who=baton precision="$p" note="skipped: the time budget ran out"
                continue
            fi
            save_model=$MODEL; save_train=$TRAIN; save_eval=$EVAL; save_seq=$SEQ; save_batch=$BATCH; save_lt=$LIMIT_TRAIN
            MODEL=$tmodel; TRAIN=$WORK/tp-$s.tsv; EVAL=""; SEQ=$s; BATCH=$b; LIMIT_TRAIN=$((tsteps * b))
            write_job "$WORK/tp.ini" "$WORK/tp-out" "$( [ "$MODE" = gpu ] && echo cuda || echo cpu)" "$p" "$tsteps" 0
            MODEL=$save_model; TRAIN=$save_train; EVAL=$save_eval; SEQ=$save_seq; BATCH=$save_batch; LIMIT_TRAIN=$save_lt
            mem_start "$WORK/mem.txt"
            brun "$LOGS/tp-baton-$p-s$s.log" -- run "$WORK/tp.ini"
            peak_mib=$(mem_stop "$WORK/mem.txt")
            sps=""
            [ $RC != 0 ] || sps=$(pl throughput "$WORK/tp-out/metrics.jsonl" "$b" 10 "$tsteps")
            mfu=$(mfu_of "$sps" "$flops" "$gpu" "$p")
            note="steps 10..$tsteps of $tsteps"; [ $RC = 0 ] || note="exit $RC (logs/tp-baton-$p-s$s.log)"
            pl add-throughput "$WORK/throughput.jsonl" model="$mname" seq="$s" batch="$b" who=baton precision="$p" \
                samples_per_s="$sps" mfu="$mfu" peak_mib="$peak_mib" flops_per_sample="$flops" note="$note"
            [ -z "$sps" ] || n_ok=$((n_ok + 1))
            rm -rf "$WORK/tp-out"
        done
        if [ "$HAVE_TORCH" = 1 ]; then
            if [ "$MODE" = gpu ]; then amps="none fp16"; [ "${ARCH:-0}" -lt 80 ] || amps="none bf16 fp16"; else amps="none"; fi
            for amp in $amps; do
                pname=$amp; [ "$amp" != none ] || pname=fp32
                if [ "$(left)" -lt 30 ]; then
                    pl add-throughput "$WORK/throughput.jsonl" model="$mname" seq="$s" batch="$b" who=pytorch precision="$pname" note="skipped: the time budget ran out"
                    continue
                fi
                mem_start "$WORK/mem.txt"
                if [ "$MODE" = gpu ]; then w=5; n=20; else w=1; n=3; fi
                timeout 300 "$PY" "$PL" torch-train "$tmodel" "$b" "$s" "$n" "$w" "$amp" "$dev" "$NPROC" \
                    >"$LOGS/tp-torch-$pname-s$s.json" 2>"$LOGS/tp-torch-$pname-s$s.err"
                trc=$?
                peak_mib=$(mem_stop "$WORK/mem.txt")
                sps=""; [ $trc != 0 ] || sps=$(pl jget "$LOGS/tp-torch-$pname-s$s.json" samples_per_s)
                mfu=$(mfu_of "$sps" "$flops" "$gpu" "$pname")
                note="$peer, $(pl jget "$LOGS/tp-torch-$pname-s$s.json" attention 2>/dev/null) attention, $( [ "$amp" = none ] && echo "fp32 (TF32 off)" || echo "AMP $amp")"
                [ $trc = 0 ] || note="exit $trc: $(tail -n 1 "$LOGS/tp-torch-$pname-s$s.err" | cut -c1-200)"
                pl add-throughput "$WORK/throughput.jsonl" model="$mname" seq="$s" batch="$b" who=pytorch precision="$pname" \
                    samples_per_s="$sps" mfu="$mfu" peak_mib="$peak_mib" flops_per_sample="$flops" note="$note"
            done
        else
            pl add-throughput "$WORK/throughput.jsonl" model="$mname" seq="$s" batch="$b" who=pytorch \
                note="skipped: no torch + transformers for $PY$( [ "$QUICK" = 1 ] && echo ' (--quick)')"
        fi
    done
    if [ $n_ok -gt 0 ]; then record throughput pass "baton measured at $n_ok shape(s)/precision(s); see the table (a measurement, not a pass/fail on speed)"
    else record throughput fail "no baton throughput could be measured (logs/tp-baton-*.log)"; fi
}

mfu_of() { # SAMPLES_PER_S FLOPS GPU PRECISION -> fraction or ""
    [ -n "$1" ] && [ "$MODE" = gpu ] || { echo ""; return; }
    pk=$(pl peak "$3" "$4")
    [ -n "$pk" ] || { echo ""; return; }
    "$PY" -c "import sys; print('%.4g' % (float(sys.argv[1]) * float(sys.argv[2]) / float(sys.argv[3])))" "$1" "$2" "$pk"
}

# ----------------------------------------------------------------- finish

finish() {
    bv=$( [ -n "$BATON_BIN" ] && "$BATON_BIN" version 2>/dev/null | head -n 1)
    tv=$( [ "$HAVE_TORCH" = 1 ] && "$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null)
    pl env "$WORK/env.json" mode="$MODE$( [ "$QUICK" = 1 ] && echo ' (quick)')" gpu="$GPU_NAME" cc="$GPU_CC" \
        gpus="$NGPU" driver="$DRIVER" baton="$bv" baton_bin="$BATON_BIN" cuda_lib="${CUDA_LIB:-}" \
        cublaslt="${BATON_CUDA_LIBS:-}" python="$PY" torch="${tv:-none}" kit="$KIT" cpus="$NPROC" \
        host="$(uname -n)" date="$(date -u +%Y-%m-%dT%H:%M:%SZ)" seconds="$(($(date +%s) - T0))" \
        engine_precisions="$SUPPORTED" run_precisions="$TRAINS"
    [ -f "$WORK/checks.jsonl" ] || : >"$WORK/checks.jsonl"
    pl summarize "$WORK" "$OUTD"
    rc=$?
    (cd "$WORK" && tar -czf "$OUTD/logs.tar.gz" logs) 2>/dev/null
    sed -n '/^## /,$p' "$OUTD/proof.md"
    say "$( [ $rc = 0 ] && echo PASS || echo FAIL): $OUTD/proof.json, $OUTD/proof.md ($(($(date +%s) - T0)) s)"
    return $rc
}
