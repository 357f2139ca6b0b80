# tests/integration/run_lib.sh — shared helpers of the `baton run` integration
# tests (tests/integration/test_run_*.sh). Sourced, not run: it is not named
# test_*, so tests/run.sh does not pick it up on its own.
#
# Owns: the temp dir of one test ($T, removed on exit), the demo model and
# data ($T/d, from `baton demo-init`), small job files, and helpers to run
# baton with a captured exit code, find the newest archive and hash the
# weights inside one. It must not touch anything outside $T.
set -eu

[ -n "${BATON:-}" ] && [ -x "$BATON" ] || { echo "FAIL: \$BATON ('${BATON:-}') is not an executable"; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/baton-run-XXXXXX")
RL_PIDS=""
rl_cleanup() {
    for p in $RL_PIDS; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$T"
}
trap rl_cleanup EXIT
trap 'exit 1' INT TERM HUP

fail() { echo "FAIL: $*"; exit 1; }
note() { echo "# $*"; }

# A segment's budget counts from the process start to its last commit; the
# exit after it is allowed EXIT_SLACK seconds on top when a test times a
# whole segment: 0.3 s, 0.8 s in a sanitized build (LeakSanitizer's heap scan).
EXIT_SLACK=0.3; [ "${SAN:-0}" = 1 ] && EXIT_SLACK=0.8

# demo model and data once per test: $T/d/model, $T/d/data/{train,eval}.tsv
"$BATON" demo-init "$T/d" >/dev/null || fail "baton demo-init failed"

# write_job FILE [LINE]... — a small classification job on the demo data;
# each extra argument is "section.key=value" and replaces or adds that key.
# Paths are relative to FILE's directory, which must be $T (the demo is $T/d).
write_job() {
    wj_file=$1; shift
    {
        echo "[job]"; echo "name = $(basename "$wj_file" .ini)"; echo "output_dir = out"; echo "seed = 7"
        echo "[model]"; echo "path = d/model"
        echo "[data]"; echo "train = d/data/train.tsv"; echo "eval = d/data/eval.tsv"
        echo "text_column = sentence"; echo "label_column = label"; echo "max_seq_len = 32"
        echo "limit_train = 1500"; echo "limit_eval = 200"
        echo "[train]"; echo "epochs = 2"; echo "batch_size = 32"; echo "lr = 1e-3"; echo "warmup_ratio = 0.1"
        echo "[runtime]"; echo "checkpoint_every = 5"; echo "threads = 2"; echo "progress = none"; echo "margin = 0.2s"
    } >"$wj_file.tmp"
    for kv in "$@"; do
        wj_sec=${kv%%.*}; wj_rest=${kv#*.}; wj_key=${wj_rest%%=*}; wj_val=${wj_rest#*=}
        awk -v sec="$wj_sec" -v key="$wj_key" -v val="$wj_val" '
            /^\[/ { if (insec && !done) { print key " = " val; done = 1 } insec = ($0 == "[" sec "]") }
            { if (insec && $1 == key && $2 == "=") { if (!done) print key " = " val; done = 1; next } print }
            END { if (!done) { if (!insec) print "[" sec "]"; print key " = " val } }' \
            "$wj_file.tmp" >"$wj_file.tmp2"
        mv "$wj_file.tmp2" "$wj_file.tmp"
    done
    mv "$wj_file.tmp" "$wj_file"
}

# brun LOG ARGS... — runs `baton ARGS`, stdout+stderr into LOG, exit code in $RC
brun() {
    br_log=$1; shift
    set +e
    "$BATON" "$@" >"$br_log" 2>&1
    RC=$?
    set -e
}

# expect_rc WANT LOG WHAT — fails with the log unless $RC is WANT
expect_rc() {
    [ "$RC" = "$1" ] || fail "$3: exit $RC, expected $1; output:
$(tail -n 30 "$2")"
}

# term_when LOG COND ARGS... — `baton ARGS` in the background; SIGTERM as soon
# as the shell condition COND holds (polled every 10 ms) or the run ended; the
# exit code in $RC. Stops a run at a point in its progress, not after a
# budget: start-up under sanitizers or load can take longer than a short
# budget allows.
term_when() {
    tw_log=$1; tw_cond=$2; shift 2
    # empty the log first: the background child truncates it only once it
    # runs, and a condition on a previous run's log would hold at once
    : >"$tw_log"
    "$BATON" "$@" >"$tw_log" 2>&1 &
    tw_pid=$!; RL_PIDS=$tw_pid
    tw_i=0
    while kill -0 "$tw_pid" 2>/dev/null && ! eval "$tw_cond"; do
        tw_i=$((tw_i + 1)); [ $tw_i -le 12000 ] || fail "waited 120 s for: $tw_cond: $(tail -n 3 "$tw_log")"
        sleep 0.01
    done
    kill -TERM "$tw_pid" 2>/dev/null || true
    set +e; wait "$tw_pid"; RC=$?; set -e
    RL_PIDS=""
}

# run_to_end JOB LOG [ARGS]... — runs the job until exit 0 (75: again); $RUNS = segments
run_to_end() {
    rte_job=$1; rte_log=$2; shift 2
    RUNS=0
    while :; do
        RUNS=$((RUNS + 1))
        [ $RUNS -le 200 ] || fail "$rte_job: not complete after 200 segments"
        brun "$rte_log" run "$rte_job" "$@"
        [ "$RC" = 0 ] && return 0
        [ "$RC" = 75 ] || fail "$rte_job: segment $RUNS exited $RC; output:
$(tail -n 30 "$rte_log")"
    done
}

# newest_archive DIR — path of the highest-step ckpt-*.tar in DIR ("" if none)
newest_archive() {
    ls "$1"/ckpt-*.tar 2>/dev/null | sort | tail -n 1
}

# archive_step ARCHIVE — the step in its file name
archive_step() {
    as_b=$(basename "$1" .tar); as_b=${as_b#ckpt-}
    echo "$as_b" | sed 's/^0*\([0-9]\)/\1/'
}

# member_sha ARCHIVE [MEMBER] — SHA-256 of a member as `baton inspect` reports
# it (after verifying the archive); model.safetensors by default
member_sha() {
    ms_m=${2:-model.safetensors}
    "$BATON" inspect "$1" 2>/dev/null | awk -v m="$ms_m" '$1 == m && NF == 3 { print $3; f = 1 } END { exit !f }' \
        || fail "baton inspect $1: no $ms_m member"
}

# trainer_field ARCHIVE KEY — a top-level value of trainer.json (via tar)
trainer_field() {
    tar -xOf "$1" trainer.json | tr ',{}' '\n\n\n' | sed -n "s/^\"$2\":\(.*\)$/\1/p" | head -n 1
}

# is_complete ARCHIVE — trainer.json says the job is complete
is_complete() { [ "$(trainer_field "$1" complete)" = true ]; }

# has_partial DIR — a ckpt-*.tar.partial is in DIR (a commit was under way)
has_partial() {
    for hp_f in "$1"/ckpt-*.tar.partial; do [ -e "$hp_f" ] && return 0; done
    return 1
}

# newest_step_at_least DIR STEP — true when DIR holds a ckpt-*.tar of STEP or
# higher (shell builtins only: cheap enough to poll in a tight loop)
newest_step_at_least() {
    for nsa_f in "$1"/ckpt-*.tar; do
        [ -e "$nsa_f" ] || continue
        nsa_s=${nsa_f##*/ckpt-}; nsa_s=${nsa_s%.tar}; nsa_s=${nsa_s#"${nsa_s%%[!0]*}"}
        [ "${nsa_s:-0}" -ge "$2" ] && return 0
    done
    return 1
}

# interrupt_runs JOB OUTDIR N LOG — runs JOB again and again, each run stopped
# by SIGTERM (expects exit 75 and a commit of the step it reports), SIGKILL
# (137), or SIGKILL as soon as a commit is seen under way (a .partial
# exists), until N runs were interrupted or the job completed. JOB must commit
# every step (checkpoint_every = 1). The moment is random in *progress*, not
# in time: 1 to 3 steps after the step it resumed at (the first run: after
# its first step), then 0-15 ms into the next step. So every run ends a few
# steps further on, whatever the seed and however fast the machine is, and a
# job of more than ~6 N steps is always interrupted N times (a test cannot
# pass or fail by its seed). After every run: all archives verify; the newest
# step never goes back; a resumed run starts at exactly the newest committed
# step. Sets INTS, TERMS, KILLS, COMMIT_KILLS (kills that left a .partial),
# DONE (1: completed).
interrupt_runs() {
    ir_job=$1; ir_out=$2; ir_n=$3; ir_log=$4
    INTS=0; TERMS=0; KILLS=0; COMMIT_KILLS=0; DONE=0; ir_i=0
    while [ $INTS -lt "$ir_n" ]; do
        ir_i=$((ir_i + 1))
        [ $ir_i -le $((ir_n * 4)) ] || fail "$ir_job: only $INTS of $ir_n runs could be interrupted"
        ir_before=$(newest_archive "$ir_out")
        ir_bstep=-1
        [ -z "$ir_before" ] || ir_bstep=$(archive_step "$ir_before")
        rand 3; ir_kind=$RAND
        # at least one of each: the first run gets SIGTERM, the second a mid-commit SIGKILL
        [ $ir_i != 1 ] || ir_kind=0
        [ $ir_i != 2 ] || ir_kind=2
        rand 3; ir_target=$(( (ir_bstep < 0 ? 0 : ir_bstep) + 1 + RAND ))
        rand 16; ir_sleep=$(awk -v r="$RAND" 'BEGIN { printf "%.3f", r / 1000 }')
        "$BATON" run "$ir_job" >"$ir_log" 2>&1 &
        ir_pid=$!
        RL_PIDS="$ir_pid"
        ir_t=0 # poll until the target step is committed (5 ms: a step takes longer)
        while kill -0 "$ir_pid" 2>/dev/null && ! newest_step_at_least "$ir_out" "$ir_target"; do
            ir_t=$((ir_t + 1)); [ $ir_t -lt 20000 ] || break
            sleep 0.005
        done
        sleep "$ir_sleep"
        case $ir_kind in
        0) kill -TERM "$ir_pid" 2>/dev/null || true ;;
        1) kill -KILL "$ir_pid" 2>/dev/null || true ;;
        2) ir_t=0 # poll until a commit is under way, then kill
           while kill -0 "$ir_pid" 2>/dev/null && ! has_partial "$ir_out"; do
               ir_t=$((ir_t + 1)); [ $ir_t -lt 200000 ] || break
           done
           kill -KILL "$ir_pid" 2>/dev/null || true ;;
        esac
        set +e; wait "$ir_pid"; ir_rc=$?; set -e
        RL_PIDS=""
        ir_new=$(newest_archive "$ir_out")
        # a resumed run starts exactly at the newest archive of before
        if [ -n "$ir_before" ] && grep -q "resumed from" "$ir_log"; then
            grep -q "resumed from .*ckpt-[0-9]*\.tar at step $ir_bstep " "$ir_log" \
                || fail "run $ir_i did not resume from step $ir_bstep: $(grep 'resumed from' "$ir_log")"
        fi
        if [ -n "$ir_new" ]; then
            brun "$T/verify.log" verify "$ir_out"
            expect_rc 0 "$T/verify.log" "verify after run $ir_i (signal kind $ir_kind)"
            ir_nstep=$(archive_step "$ir_new")
            [ "$ir_nstep" -ge "$ir_bstep" ] || fail "run $ir_i: newest step went back from $ir_bstep to $ir_nstep"
        fi
        case $ir_rc in
        0|143)
            [ -n "$ir_new" ] && is_complete "$ir_new" || fail "run $ir_i exited $ir_rc but the job is not complete:
$(tail -n 20 "$ir_log")"
            DONE=1; return 0 ;;
        75)
            [ $ir_kind = 0 ] || fail "run $ir_i exited 75 without SIGTERM"
            ir_stop=$(sed -n 's/.*segment stopped (SIGTERM) at step \([0-9]*\) .*/\1/p' "$ir_log")
            [ -n "$ir_stop" ] || fail "run $ir_i: exit 75 without 'segment stopped (SIGTERM) at step N':
$(tail -n 20 "$ir_log")"
            [ "$ir_stop" = "$ir_nstep" ] || fail "run $ir_i stopped at step $ir_stop but the newest archive is step $ir_nstep"
            TERMS=$((TERMS + 1)) ;;
        137)
            [ $ir_kind != 0 ] || fail "run $ir_i: SIGTERM gave exit 137"
            KILLS=$((KILLS + 1))
            if has_partial "$ir_out"; then COMMIT_KILLS=$((COMMIT_KILLS + 1)); fi ;;
        *) fail "run $ir_i (signal kind $ir_kind at step $ir_target + ${ir_sleep}s) exited $ir_rc:
$(tail -n 20 "$ir_log")" ;;
        esac
        INTS=$((INTS + 1))
    done
}

# resume_identical WHAT REF_JOB REF_OUT JOB OUT — runs REF_JOB to its end
# uninterrupted, then JOB (the same job, another output_dir) interrupted 3
# times (interrupt_runs) and resumed to its end; fails unless both end with
# byte-identical model.safetensors. Sets REF_ARCHIVE (REF_JOB's final archive).
resume_identical() {
    ri_what=$1
    brun "$T/ri-ref.log" run "$2"
    expect_rc 0 "$T/ri-ref.log" "$ri_what: uninterrupted run"
    REF_ARCHIVE=$(newest_archive "$3")
    is_complete "$REF_ARCHIVE" || fail "$ri_what: $REF_ARCHIVE is not complete"
    interrupt_runs "$4" "$5" 3 "$T/ri-int.log"
    run_to_end "$4" "$T/ri-int.log"
    ri_sha=$(member_sha "$(newest_archive "$5")")
    [ "$ri_sha" = "$(member_sha "$REF_ARCHIVE")" ] ||
        fail "$ri_what: after $INTS interrupts the weights are $ri_sha, not the uninterrupted run's"
    note "$ri_what: $INTS interrupts ($TERMS SIGTERM, $KILLS SIGKILL, $COMMIT_KILLS mid-commit): model.safetensors = uninterrupted"
}

# now — wall clock in seconds with fractions
# longdoc_docs FROM TO — TSV "text<TAB>label" for task = classify_long:
# consecutive sentences of one label of FROM joined into documents of 5..45
# sentences (sizes cycle deterministically)
longdoc_docs() {
    awk -F'\t' 'BEGIN { k = 12; print "text\tlabel" }
        NR > 1 { s[$2] = s[$2] (s[$2] == "" ? "" : " ") $1; n[$2]++
                 if (n[$2] >= k) { print s[$2] "\t" $2; s[$2] = ""; n[$2] = 0; k = 5 + (k * 7) % 41 } }' "$1" >"$2"
}

now() { date +%s.%N; }
# elapsed START — seconds since START (from now), 2 decimals
elapsed() { echo "$(now) $1" | awk '{ printf "%.2f", $1 - $2 }'; }

# rand N — sets RAND to a pseudo-random integer in [0, N) (no subshell, so
# the generator advances; BATON_TEST_SEED fixes the sequence)
RL_SEED=${BATON_TEST_SEED:-$$}
RL_STATE=$RL_SEED
rand() {
    RL_STATE=$(( (RL_STATE * 1103515245 + 12345) % 2147483648 ))
    RAND=$(( (RL_STATE / 65536) % $1 ))
}
