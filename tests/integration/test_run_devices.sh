#!/bin/sh
# tests/integration/test_run_devices.sh — runtime.devices (issue 20) through
# the runner, on the CPU backend (in-process replicas) with the demo model:
#   1. devices = 2 x grad_accum 1 ends byte-identical to devices = 1 x
#      grad_accum 2 after 50 steps (19 steps an epoch, the last one of each
#      epoch a single micro-batch: one replica idle); trainer.json records the
#      device count and `baton status` shows it;
#   1b. the GPU path (a backend per GPU, the backends' collective) through the
#      BATON_FAKE_GPU stand-in with BATON_FAKE_GPU_COUNT=2: devices = auto
#      takes both GPUs and ends with the same bytes; devices = 3 is refused;
#      a one-GPU archive resumed with auto on 2 GPUs trains on 1 (said), and
#      ends with the bytes of the uninterrupted one-device run;
#   2. kill/resume switching 2 -> 1 -> 2 devices between segments (one line
#      says grad_accum was adjusted) ends byte-identical to the uninterrupted
#      one-device run with grad_accum 2;
#   3. a device count that does not divide the archive's micro-batches per
#      step is refused (exit 78) naming the keys; devices = 0 is refused;
#   3b. micro_batch = auto with 2 devices plans per device (16 x grad_accum 1
#      each) and ends byte-identical to devices = 1 x grad_accum 2; with a
#      memory_limit it picks 8 x grad_accum 2 per device, byte-identical to
#      those explicit settings on 2 devices; `baton plan` (text and --json)
#      reports the per-device choice, `baton verify` accepts the archive, a
#      resume on 1 device is refused (exit 78);
#   4. token_classify (CoNLL) and similarity (sentence pairs): 2 devices ==
#      1 device x grad_accum 2 after 20 steps;
#   4b. classify_long (attention pooling, documents of 3..30 chunks, 4 chunks a
#      pass: most documents re-encoded for their backward): 2 devices == 1
#      device x grad_accum 2 (weights and moments), and a kill/resume
#      switching 2 -> 1 -> 2 devices ends with the same bytes;
#   5. with $BATON_MODELS/all-MiniLM-L6-v2 and $BATON_DATA/sst2 (else this
#      part says it is skipped): the real model, 2 devices == 1 device x
#      grad_accum 2 after 50 steps (batch 2, 24 tokens).
. "$(dirname "$0")/run_lib.sh"

# 584 examples, batch 16: 37 micro-batches, 19 steps of 2 an epoch; 50 steps in all
common="data.limit_train=584 data.limit_eval=64 train.batch_size=16 train.max_steps=50 train.epochs=3 runtime.threads=1"

final_of() {
    fo_a=$(newest_archive "$1")
    is_complete "$fo_a" || fail "$2: final archive $fo_a is not marked complete"
    echo "$fo_a"
}

# ---- 1. two devices == one device with grad_accum doubled
start=$(now)
# shellcheck disable=SC2086
write_job "$T/one.ini" $common train.grad_accum=2 runtime.devices=1 job.output_dir=one-out
# shellcheck disable=SC2086
write_job "$T/two.ini" $common train.grad_accum=1 runtime.devices=2 job.output_dir=two-out
brun "$T/one.log" run "$T/one.ini"
expect_rc 0 "$T/one.log" "devices = 1, grad_accum 2"
brun "$T/two.log" run "$T/two.ini"
expect_rc 0 "$T/two.log" "devices = 2, grad_accum 1"
grep -q "^devices = 2: 2 cpu replicas x grad_accum 1 x batch 16 = 32 examples per step" "$T/two.log" \
    || fail "devices = 2: no line saying so: $(head -n 5 "$T/two.log")"
a1=$(final_of "$T/one-out" "one device"); a2=$(final_of "$T/two-out" "two devices")
ref=$(member_sha "$a1"); sha2=$(member_sha "$a2")
[ "$(trainer_field "$a1" step)" = 50 ] && [ "$(trainer_field "$a1" steps_per_epoch)" = 19 ] \
    || fail "one device: step $(trainer_field "$a1" step), $(trainer_field "$a1" steps_per_epoch) steps an epoch"
[ "$(trainer_field "$a2" steps_per_epoch)" = 19 ] || fail "two devices: $(trainer_field "$a2" steps_per_epoch) steps an epoch"
[ "$sha2" = "$ref" ] || fail "devices = 2 ends with $sha2, devices = 1 x grad_accum 2 with $ref"
[ "$(member_sha "$a2" optimizer.safetensors)" = "$(member_sha "$a1" optimizer.safetensors)" ] \
    || fail "devices = 2: other AdamW moments than devices = 1 x grad_accum 2"
tar -xOf "$a2" trainer.json | grep -q '"devices":{"count":2,"grad_accum":1,"job_grad_accum":1,"batch_factor":2}' \
    || fail "two devices: trainer.json devices: $(tar -xOf "$a2" trainer.json | grep -o '"devices":{[^}]*}')"
brun "$T/st.log" status "$T/two.ini"
grep -q "^devices      2 x cpu$" "$T/st.log" || fail "status: no devices line: $(cat "$T/st.log")"
brun "$T/st.json" status "$T/two.ini" --json
grep -q '"devices": 2,' "$T/st.json" || fail "status --json: no devices: $(cat "$T/st.json")"
# and the device count changed what ran: one device with grad_accum 1 trains otherwise
# shellcheck disable=SC2086
write_job "$T/half.ini" $common train.grad_accum=1 runtime.devices=1 job.output_dir=half-out
brun "$T/half.log" run "$T/half.ini"
expect_rc 0 "$T/half.log" "devices = 1, grad_accum 1"
[ "$(member_sha "$(final_of "$T/half-out" half)")" != "$ref" ] || fail "devices = 2 changed nothing"
note "devices = 2 == devices = 1 x grad_accum 2 after 50 steps: $ref ($(elapsed "$start")s)"

# ---- 1b. the GPU path (a backend per GPU, the sums and broadcasts through the backends' collective:
# NCCL on real GPUs), through the BATON_FAKE_GPU stand-in with 2 "GPUs" (the CPU behind a clean wrapper):
# devices = auto takes both and ends with the bytes above; more devices than GPUs is refused
start=$(now)
# shellcheck disable=SC2086
write_job "$T/gpu.ini" $common train.grad_accum=1 runtime.device=cuda job.output_dir=gpu-out
export BATON_FAKE_GPU=none BATON_FAKE_GPU_COUNT=2
brun "$T/gpu.log" run "$T/gpu.ini"
expect_rc 0 "$T/gpu.log" "device = cuda (stand-in), devices = auto on 2 GPUs"
grep -q "^devices = 2: 2 GPU replicas (GPUs 0..1, one thread each) x grad_accum 1 x batch 16 = 32 examples per step" \
    "$T/gpu.log" || fail "2 stand-in GPUs: no line saying so: $(head -n 8 "$T/gpu.log")"
sha=$(member_sha "$(final_of "$T/gpu-out" "2 stand-in GPUs")")
[ "$sha" = "$ref" ] || fail "2 stand-in GPUs end with $sha, one CPU device x grad_accum 2 with $ref"
brun "$T/gpu3.log" run "$T/gpu.ini" -s runtime.devices=3 -s job.output_dir="$T/gpu3-out"
expect_rc 78 "$T/gpu3.log" "devices = 3 on 2 GPUs"
grep -q "devices = 3, but this machine has 2 GPUs; set devices = auto (every GPU present) or at most 2" "$T/gpu3.log" \
    || fail "devices = 3 on 2 GPUs: $(cat "$T/gpu3.log")"
# a one-GPU archive (1 micro-batch a step) resumed with devices = auto on 2 GPUs: auto takes 1 of them (said),
# and the run ends with the bytes of the uninterrupted one-device run
# shellcheck disable=SC2086
write_job "$T/g1.ini" $common train.grad_accum=1 runtime.device=cuda runtime.checkpoint_every=1 job.output_dir=g1-out
BATON_FAKE_GPU_COUNT=1
term_when "$T/g1a.log" 'newest_step_at_least "$T/g1-out" 7' run "$T/g1.ini"
[ "$RC" = 75 ] || fail "1 stand-in GPU: segment 1 exited $RC: $(tail -n 5 "$T/g1a.log")"
BATON_FAKE_GPU_COUNT=2
run_to_end "$T/g1.ini" "$T/g1b.log"
grep -q "^devices = auto: .* was trained with 1 micro-batch(es) per step, which 2 devices cannot share; training on 1 of them for the same effective batch" \
    "$T/g1b.log" || fail "auto on 2 GPUs resuming a one-GPU archive: no line saying so: $(head -n 8 "$T/g1b.log")"
sha=$(member_sha "$(final_of "$T/g1-out" "one GPU, then auto on 2")")
[ "$sha" = "$(member_sha "$(final_of "$T/half-out" half)")" ] \
    || fail "one GPU then auto on 2 ends with $sha, not the one-device run's bytes"
unset BATON_FAKE_GPU BATON_FAKE_GPU_COUNT
note "2 stand-in GPUs (devices = auto) == devices = 1 x grad_accum 2; 3 on 2 refused; a one-GPU archive resumed by auto on 2 GPUs trains on 1, same bytes ($(elapsed "$start")s)"

# baton plan on the t4x2 profile resolves devices as a run there would: auto is both GPUs (the
# effective batch doubles), devices = 1 one of them (said)
brun "$T/pl2.log" plan "$T/gpu.ini" --device t4x2
expect_rc 0 "$T/pl2.log" "plan t4x2, devices = auto"
grep -q "micro-batch 16 x grad_accum 1 per device x 2 devices = 32 examples per step" "$T/pl2.log" \
    || fail "plan t4x2 with devices = auto: $(cat "$T/pl2.log")"
brun "$T/pl1.log" plan "$T/gpu.ini" --device t4x2 -s runtime.devices=1
grep -q "(runtime.devices = 1 of this profile's 2 GPUs)" "$T/pl1.log" || fail "plan t4x2 with devices = 1: $(cat "$T/pl1.log")"
note "plan --device t4x2: auto takes both GPUs, devices = 1 one"

# ---- 2. kill/resume 2 -> 1 -> 2 devices: byte-identical to the one-device run
start=$(now)
# shellcheck disable=SC2086
write_job "$T/sw.ini" $common train.grad_accum=1 runtime.devices=2 runtime.checkpoint_every=1 job.output_dir=sw-out
term_when "$T/sw1.log" 'newest_step_at_least "$T/sw-out" 7' run "$T/sw.ini"
[ "$RC" = 75 ] || fail "switch: segment 1 (2 devices) exited $RC: $(tail -n 5 "$T/sw1.log")"
s1=$(archive_step "$(newest_archive "$T/sw-out")")
term_when "$T/sw2.log" "newest_step_at_least \"\$T/sw-out\" $((s1 + 12))" run "$T/sw.ini" -s runtime.devices=1
[ "$RC" = 75 ] || fail "switch: segment 2 (1 device) exited $RC: $(tail -n 5 "$T/sw2.log")"
[ "$(grep -c "^devices = 1: .* was trained on 2 device(s) x grad_accum 1; continuing with grad_accum 2 per device (the same 32 examples per step)" "$T/sw2.log")" = 1 ] \
    || fail "switch: no (or more than one) line about grad_accum: $(head -n 5 "$T/sw2.log")"
s2=$(archive_step "$(newest_archive "$T/sw-out")")
tar -xOf "$(newest_archive "$T/sw-out")" trainer.json \
    | grep -q '"devices":{"count":1,"grad_accum":2,"job_grad_accum":1,"batch_factor":2}' \
    || fail "switch: segment 2's trainer.json: $(tar -xOf "$(newest_archive "$T/sw-out")" trainer.json | grep -o '"devices":{[^}]*}')"
run_to_end "$T/sw.ini" "$T/sw3.log"
grep -q "continuing with grad_accum" "$T/sw3.log" && fail "switch: 1 -> 2 devices adjusted grad_accum: $(head -n 5 "$T/sw3.log")"
sha=$(member_sha "$(final_of "$T/sw-out" switch)")
[ "$sha" = "$ref" ] || fail "switch 2 -> 1 -> 2 (at steps $s1, $s2) ends with $sha, one device x grad_accum 2 with $ref"
note "2 -> 1 (step $s1) -> 2 (step $s2) devices: final $sha = one device ($(elapsed "$start")s)"

# ---- 3. refusals
# the archive's 2 micro-batches per step on 3 devices
brun "$T/three.log" run "$T/two.ini" -s runtime.devices=3 -s train.max_steps=60 --force
expect_rc 78 "$T/three.log" "3 devices resuming a 2-micro-batch archive"
grep -q "was trained with 2 micro-batches of 16 examples per step (2 device(s) x grad_accum 1); 3 device(s) cannot take the same effective batch: set \[runtime\] devices to a divisor of 2" "$T/three.log" \
    || fail "3 devices: $(cat "$T/three.log")"
brun "$T/bad.log" run "$T/two.ini" -s runtime.devices=0
expect_rc 78 "$T/bad.log" "devices = 0"
note "refused: $(grep -o 'set \[runtime\] devices to a divisor of 2' "$T/three.log"); devices = 0"

# ---- 3b. micro_batch = auto plans per device: 2 devices, batch 16 fits one replica -> 16 x grad_accum 1 per
# device x 2 devices == devices = 1 x grad_accum 2 (part 1's reference); `baton plan` says the same
start=$(now)
# shellcheck disable=SC2086
write_job "$T/auto.ini" $common runtime.devices=2 train.micro_batch=auto job.output_dir=auto-out
brun "$T/autoplan.log" plan "$T/auto.ini" --device cpu
expect_rc 0 "$T/autoplan.log" "baton plan, devices = 2, micro_batch = auto"
grep -q "^batch      micro-batch 16 x grad_accum 1 per device x 2 devices = 32 examples per step (micro_batch = auto" "$T/autoplan.log" \
    && grep -q "^auto       micro-batch 16 x grad_accum 1 per device x 2 devices = 32 examples per step" "$T/autoplan.log" \
    || fail "baton plan, devices = 2 with micro_batch = auto: $(cat "$T/autoplan.log")"
brun "$T/autoplan.json" plan "$T/auto.ini" --device cpu --json
grep -q '"devices":2,"auto":{"micro_batch":16,"grad_accum":1,"examples_per_step":32}' "$T/autoplan.json" \
    || fail "baton plan --json, devices = 2 with micro_batch = auto: $(cat "$T/autoplan.json")"
brun "$T/auto.log" run "$T/auto.ini"
expect_rc 0 "$T/auto.log" "devices = 2 with micro_batch = auto"
grep -q "^micro_batch = auto: 16 x grad_accum 1 per device x 2 devices = 32 examples per step" "$T/auto.log" \
    || fail "devices = 2 with micro_batch = auto: $(head -n 5 "$T/auto.log")"
aa=$(final_of "$T/auto-out" "devices = 2, micro_batch = auto")
[ "$(member_sha "$aa")" = "$ref" ] || fail "devices = 2 with micro_batch = auto ends with $(member_sha "$aa"), devices = 1 x grad_accum 2 with $ref"
tar -xOf "$aa" trainer.json | grep -q '"micro_batch":{"mode":"auto","size":16,"grad_accum":2}' \
    || fail "auto: trainer.json micro_batch: $(tar -xOf "$aa" trainer.json | grep -o '"micro_batch":{[^}]*}')"
brun "$T/autover.log" verify "$T/auto-out"
expect_rc 0 "$T/autover.log" "verify of a devices = 2, micro_batch = auto run"
# a memory_limit (213 MiB for both replicas: 106.5 MiB each, the demo replica's plan at 16 is 108.1) halves the
# micro-batch: 8 x grad_accum 2 per device, still 32 examples per step == the same explicitly on 2 devices
brun "$T/autos.log" plan "$T/auto.ini" --device cpu -s runtime.memory_limit=213MiB --json
grep -q '"devices":2,"auto":{"micro_batch":8,"grad_accum":2,"examples_per_step":32}' "$T/autos.log" \
    || fail "baton plan with memory_limit = 213MiB: $(cat "$T/autos.log")"
# shellcheck disable=SC2086
write_job "$T/autos.ini" $common runtime.devices=2 train.micro_batch=auto runtime.memory_limit=213MiB job.output_dir=autos-out
# shellcheck disable=SC2086
write_job "$T/expl.ini" $common runtime.devices=2 train.batch_size=8 train.grad_accum=2 job.output_dir=expl-out
brun "$T/autos.log" run "$T/autos.ini"
expect_rc 0 "$T/autos.log" "devices = 2, micro_batch = auto, memory_limit = 213MiB"
grep -q "^micro_batch = auto: 8 x grad_accum 2 per device x 2 devices = 32 examples per step" "$T/autos.log" \
    || fail "devices = 2, micro_batch = auto, memory_limit = 213MiB: $(head -n 5 "$T/autos.log")"
brun "$T/expl.log" run "$T/expl.ini"
expect_rc 0 "$T/expl.log" "devices = 2, batch 8 x grad_accum 2"
[ "$(member_sha "$(final_of "$T/autos-out" "auto 8")")" = "$(member_sha "$(final_of "$T/expl-out" "explicit 8")")" ] \
    || fail "devices = 2: micro_batch = auto's 8 x 2 per device trains otherwise than batch_size = 8, grad_accum = 2"
# a resume on another device count cannot keep auto's choice: refused, saying what to do
brun "$T/auto1.log" run "$T/auto.ini" -s runtime.devices=1 -s train.max_steps=60 --force
expect_rc 78 "$T/auto1.log" "devices = 2 -> 1 with micro_batch = auto"
grep -q "1 device(s) cannot take the same effective batch with \[train\] micro_batch = auto" "$T/auto1.log" \
    || fail "devices = 2 -> 1 with micro_batch = auto: $(cat "$T/auto1.log")"
note "micro_batch = auto with 2 devices: 16 x 1 per device == devices = 1 x grad_accum 2 ($(elapsed "$start")s)"

# ---- 4. token_classify and similarity: 2 devices == 1 device x grad_accum 2; classify_long refused
start=$(now)
awk -F '\t' 'NR > 1 { s[NR] = $1; l[NR] = ($2 == "positive") }
    END { print "sentence1\tsentence2\tscore"
          for (i = 2; i < 2 + 400 && i + 7 <= NR; i++) printf "%s\t%s\t%.1f\n", s[i], s[i + 7], 2.5 * (l[i] + l[i + 7]) }' \
    "$T/d/data/train.tsv" >"$T/pairs.tsv"
tk="job.task=token_classify data.train=d/data/train.conll data.eval=d/data/eval.conll data.text_column=auto
 data.label_column=auto data.limit_train=320 data.limit_eval=32"
sim="job.task=similarity data.train=pairs.tsv data.eval=pairs.tsv data.text_column=sentence1
 data.text_pair_column=sentence2 data.label_column=score data.max_seq_len=48 data.limit_train=320 data.limit_eval=32"
for task in tk sim; do
    eval "keys=\$$task"
    for n in 1 2; do
        # shellcheck disable=SC2086
        write_job "$T/$task$n.ini" $keys train.batch_size=16 train.max_steps=20 train.epochs=3 runtime.threads=1 \
            train.grad_accum=$((3 - n)) runtime.devices=$n job.output_dir=$task$n-out
        brun "$T/$task$n.log" run "$T/$task$n.ini"
        expect_rc 0 "$T/$task$n.log" "$task, devices = $n"
    done
    t1=$(member_sha "$(final_of "$T/${task}1-out" "$task 1 device")"); t2=$(member_sha "$(final_of "$T/${task}2-out" "$task 2 devices")")
    [ "$t1" = "$t2" ] || fail "$task: devices = 2 ends with $t2, devices = 1 x grad_accum 2 with $t1"
    [ "$(member_sha "$(newest_archive "$T/${task}1-out")" optimizer.safetensors)" = "$(member_sha "$(newest_archive "$T/${task}2-out")" optimizer.safetensors)" ] \
        || fail "$task: devices = 2: other AdamW moments than devices = 1 x grad_accum 2"
done
note "token_classify, similarity: devices = 2 == devices = 1 x grad_accum 2 ($(elapsed "$start")s)"

# ---- 4b. classify_long: each replica its own long-document state, the head's gradients summed like the encoder's
start=$(now)
longdoc_docs "$T/d/data/train.tsv" "$T/docs.tsv"
ld="job.task=classify_long data.train=docs.tsv data.eval=docs.tsv data.text_column=text data.limit_train=40
 data.limit_eval=8 data.max_seq_len=32 data.stride=8 data.chunk_batch=4 model.pooling=attention train.batch_size=3
 train.max_steps=12 train.epochs=3 train.lr=3e-3 runtime.threads=1 runtime.checkpoint_every=1"
for n in 1 2; do
    # shellcheck disable=SC2086
    write_job "$T/ld$n.ini" $ld train.grad_accum=$((3 - n)) runtime.devices=$n job.output_dir=ld$n-out
    brun "$T/ld$n.log" run "$T/ld$n.ini"
    expect_rc 0 "$T/ld$n.log" "classify_long, devices = $n"
done
l1=$(member_sha "$(final_of "$T/ld1-out" "classify_long 1 device")"); l2=$(member_sha "$(final_of "$T/ld2-out" "classify_long 2 devices")")
[ "$l1" = "$l2" ] || fail "classify_long: devices = 2 ends with $l2, devices = 1 x grad_accum 2 with $l1"
[ "$(member_sha "$(newest_archive "$T/ld1-out")" optimizer.safetensors)" = "$(member_sha "$(newest_archive "$T/ld2-out")" optimizer.safetensors)" ] \
    || fail "classify_long: devices = 2: other AdamW moments than devices = 1 x grad_accum 2"
# shellcheck disable=SC2086
write_job "$T/ldh.ini" $ld train.grad_accum=1 runtime.devices=1 job.output_dir=ldh-out
brun "$T/ldh.log" run "$T/ldh.ini"
expect_rc 0 "$T/ldh.log" "classify_long, devices = 1 x grad_accum 1"
[ "$(member_sha "$(final_of "$T/ldh-out" "classify_long half")")" != "$l1" ] || fail "classify_long: devices = 2 changed nothing"
# kill/resume 2 -> 1 -> 2 devices
# shellcheck disable=SC2086
write_job "$T/lds.ini" $ld train.grad_accum=1 runtime.devices=2 job.output_dir=lds-out
term_when "$T/lds1.log" 'newest_step_at_least "$T/lds-out" 3' run "$T/lds.ini"
[ "$RC" = 75 ] || fail "classify_long switch: segment 1 (2 devices) exited $RC: $(tail -n 5 "$T/lds1.log")"
s1=$(archive_step "$(newest_archive "$T/lds-out")")
term_when "$T/lds2.log" "newest_step_at_least \"\$T/lds-out\" $((s1 + 3))" run "$T/lds.ini" -s runtime.devices=1
[ "$RC" = 75 ] || fail "classify_long switch: segment 2 (1 device) exited $RC: $(tail -n 5 "$T/lds2.log")"
grep -q "continuing with grad_accum 2 per device" "$T/lds2.log" || fail "classify_long switch: $(head -n 5 "$T/lds2.log")"
s2=$(archive_step "$(newest_archive "$T/lds-out")")
run_to_end "$T/lds.ini" "$T/lds3.log"
sha=$(member_sha "$(final_of "$T/lds-out" "classify_long switch")")
[ "$sha" = "$l1" ] || fail "classify_long switch 2 -> 1 -> 2 (at steps $s1, $s2) ends with $sha, one device x grad_accum 2 with $l1"
note "classify_long: devices = 2 == devices = 1 x grad_accum 2: $l1; 2 -> 1 (step $s1) -> 2 (step $s2) the same ($(elapsed "$start")s)"

# ---- 5. the real model
M=${BATON_MODELS:-}/all-MiniLM-L6-v2; D=${BATON_DATA:-}/sst2
if [ -n "${BATON_MODELS:-}" ] && [ -f "$M/model.safetensors" ] && [ -n "${BATON_DATA:-}" ] && [ -f "$D/train.tsv" ]; then
    start=$(now)
    for n in 1 2; do
        # shellcheck disable=SC2086
        write_job "$T/mini$n.ini" model.path="$M" data.train="$D/train.tsv" data.eval="$D/dev.tsv" data.limit_train=400 \
            data.limit_eval=16 data.max_seq_len=24 train.batch_size=2 train.grad_accum=$((3 - n)) train.max_steps=50 train.lr=5e-5 \
            runtime.devices=$n runtime.threads=1 runtime.checkpoint_every=0 job.output_dir=mini$n-out
        brun "$T/mini$n.log" run "$T/mini$n.ini"
        expect_rc 0 "$T/mini$n.log" "all-MiniLM-L6-v2, devices = $n"
    done
    m1=$(member_sha "$(final_of "$T/mini1-out" "MiniLM 1 device")"); m2=$(member_sha "$(final_of "$T/mini2-out" "MiniLM 2 devices")")
    [ "$m1" = "$m2" ] || fail "all-MiniLM-L6-v2: devices = 2 ends with $m2, devices = 1 x grad_accum 2 with $m1"
    note "all-MiniLM-L6-v2: devices = 2 == devices = 1 x grad_accum 2 after 50 steps: $m1 ($(elapsed "$start")s)"
else
    note "part 4 skipped: no \$BATON_MODELS/all-MiniLM-L6-v2 or \$BATON_DATA/sst2 (set BATON_MODELS and BATON_DATA)"
fi

echo "run devices: all checks passed"
