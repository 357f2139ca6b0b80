#!/bin/sh
# tests/integration/test_run_devices_par.sh — runtime.devices = 2 with the
# replicas running concurrently (issue 20), on the CPU with the demo model;
# short enough for make test-tsan (tests/run.sh; there OpenMP runs one thread,
# so runtime.threads is 1 and each replica gets 1):
#   1. a 2-device run with runtime.threads split between the replicas ends
#      byte-identical to 1 device x grad_accum 2 on all the threads; the
#      setup line says the split;
#   2. per-device figures: status.json per_device (2 entries: examples/s,
#      tokens/s, counted bytes), metrics.jsonl's train records, the plain
#      progress line, `baton status` (text and --json);
#   3. a failure in one replica (BATON_FAULT_REPLICA=1@8, testing only)
#      stops the step: exit 74 naming the replica, status.json "failed", no
#      archive of step 8, the archive of step 5 still the newest and valid;
#      resuming without the fault ends byte-identical to the run without one;
#      a malformed BATON_FAULT_REPLICA is refused (exit 78);
#   4. classify_long on 2 concurrent replicas (each its own long-document
#      state, documents of several chunk passes) == 1 device x grad_accum 2:
#      under make test-tsan the replicas' host pooling/head code races nothing.
. "$(dirname "$0")/run_lib.sh"

thr=2; [ "${TSAN:-0}" = 1 ] && thr=1
common="data.limit_train=320 data.limit_eval=32 train.batch_size=16 train.max_steps=12 train.epochs=2 runtime.threads=$thr"

# ---- 1. concurrent replicas == one device with grad_accum doubled
start=$(now)
# shellcheck disable=SC2086
write_job "$T/one.ini" $common train.grad_accum=2 runtime.devices=1 job.output_dir=one-out
# shellcheck disable=SC2086
write_job "$T/two.ini" $common train.grad_accum=1 runtime.devices=2 job.output_dir=two-out \
    runtime.progress=plain runtime.progress_every=0.01s
brun "$T/one.log" run "$T/one.ini"
expect_rc 0 "$T/one.log" "devices = 1, grad_accum 2"
brun "$T/two.log" run "$T/two.ini"
expect_rc 0 "$T/two.log" "devices = 2, grad_accum 1"
if [ "$thr" = 2 ]; then
    grep -q "^devices = 2: 2 cpu replicas x grad_accum 1 x batch 16 = 32 examples per step (one thread per replica, 1 thread(s) of runtime.threads = 2 each)$" "$T/two.log" \
        || fail "devices = 2: no line saying the split: $(head -n 5 "$T/two.log")"
else
    grep -q "(one thread per replica, 1 thread(s) of runtime.threads = 1 each; fewer threads than replicas: they share cores)$" "$T/two.log" \
        || fail "devices = 2: no line saying the split: $(head -n 5 "$T/two.log")"
fi
ref=$(member_sha "$(newest_archive "$T/one-out")")
sha=$(member_sha "$(newest_archive "$T/two-out")")
[ "$sha" = "$ref" ] || fail "2 concurrent replicas end with $sha, 1 device x grad_accum 2 with $ref"
[ "$(member_sha "$(newest_archive "$T/two-out")" optimizer.safetensors)" = "$(member_sha "$(newest_archive "$T/one-out")" optimizer.safetensors)" ] \
    || fail "2 concurrent replicas: other AdamW moments than 1 device x grad_accum 2"
note "2 concurrent replicas ($thr threads) == 1 device x grad_accum 2: $ref ($(elapsed "$start")s)"

# ---- 2. per-device figures
python3 - "$T/two-out/status.json" "$T/two-out/metrics.jsonl" <<'PY' || fail "per-device figures: see above"
import json, sys
st = json.load(open(sys.argv[1]))
pd = st["per_device"]
assert st["devices"] == 2 and len(pd) == 2, st
for j, d in enumerate(pd):
    assert d["device"] == j and d["examples_per_s"] > 0 and d["tokens_per_s"] > d["examples_per_s"], d
    assert d["memory_bytes"] > 0, d
assert pd[0]["memory_bytes"] > pd[1]["memory_bytes"], pd  # replica 0's backend also holds AdamW
train = [json.loads(l) for l in open(sys.argv[2]) if '"split":"train"' in l.replace(" ", "")]
assert train and all(len(r["per_device"]) == 2 for r in train), train[:2]
PY
grep -q "ex/s  devices [0-9.]*+[0-9.]* ex/s [0-9]*+[0-9]* MiB" "$T/two.log" \
    || fail "no per-device figures in the progress lines: $(grep step "$T/two.log" | tail -n 2)"
grep "ex/s" "$T/one.log" | grep -q "devices" && fail "one device: the progress line shows devices"
brun "$T/st.log" status "$T/two.ini"
grep -q "^device 0     [0-9.]* examples/s, [0-9]* tokens/s, [0-9]* MiB counted (status.json)$" "$T/st.log" \
    && grep -q "^device 1     " "$T/st.log" || fail "baton status: no per-device lines: $(cat "$T/st.log")"
brun "$T/st.json" status "$T/two.ini" --json
grep -q '"per_device": \[' "$T/st.json" || fail "status --json: no per_device: $(cat "$T/st.json")"
note "per device: $(grep '^device' "$T/st.log" | tr '\n' ';')"

# ---- 3. one replica fails at step 8: nothing of step 8, step 5's archive intact
start=$(now)
# shellcheck disable=SC2086
write_job "$T/f.ini" $common train.grad_accum=1 runtime.devices=2 job.output_dir=f-out
set +e
BATON_FAULT_REPLICA=1@8 "$BATON" run "$T/f.ini" >"$T/f.log" 2>&1
RC=$?
set -e
expect_rc 74 "$T/f.log" "replica 1 failing at step 8"
grep -q "step 8 micro-batch 1 (replica 1; every replica stopped): injected failure of replica 1 at step 8" "$T/f.log" \
    || fail "failure: no message naming the replica: $(tail -n 5 "$T/f.log")"
[ -z "$(ls "$T/f-out"/ckpt-000000008.tar* "$T/f-out"/*.partial 2>/dev/null)" ] || fail "failure: an archive of step 8: $(ls "$T/f-out")"
a=$(newest_archive "$T/f-out")
[ "$(archive_step "$a")" = 5 ] || fail "failure: the newest archive is $a, not step 5's"
"$BATON" verify "$a" >/dev/null 2>&1 || fail "failure: $a does not verify"
grep -q '"state": "failed"' "$T/f-out/status.json" || fail "failure: status.json: $(cat "$T/f-out/status.json")"
brun "$T/f2.log" run "$T/f.ini"
expect_rc 0 "$T/f2.log" "resume after the failure"
[ "$(member_sha "$(newest_archive "$T/f-out")")" = "$ref" ] \
    || fail "resumed after the failure: not the weights of the run without one"
set +e
BATON_FAULT_REPLICA=x "$BATON" run "$T/f.ini" -s train.max_steps=14 >"$T/f3.log" 2>&1
RC=$?
set -e
expect_rc 78 "$T/f3.log" "a malformed BATON_FAULT_REPLICA"
grep -q "BATON_FAULT_REPLICA=x: expected J@STEP" "$T/f3.log" || fail "malformed: $(tail -n 3 "$T/f3.log")"
note "replica 1 failing at step 8: exit 74, step 5's archive the newest; resumed to $ref ($(elapsed "$start")s)"

# ---- 4. classify_long: the replicas' long-document states run at the same time
start=$(now)
longdoc_docs "$T/d/data/train.tsv" "$T/docs.tsv"
ld="job.task=classify_long data.train=docs.tsv data.eval=docs.tsv data.text_column=text data.limit_train=12
 data.limit_eval=4 data.max_seq_len=32 data.stride=8 data.chunk_batch=4 model.pooling=attention train.batch_size=2
 train.max_steps=3 train.epochs=1"
# the one-device reference on all the threads (a GEMM's bits do not depend on the thread count: test_ops_dense)
for n in 1 2; do
    # shellcheck disable=SC2086
    write_job "$T/ld$n.ini" $ld train.grad_accum=$((3 - n)) runtime.devices=$n runtime.threads=$thr \
        job.output_dir=ld$n-out
    brun "$T/ld$n.log" run "$T/ld$n.ini"
    expect_rc 0 "$T/ld$n.log" "classify_long, devices = $n"
done
l1=$(member_sha "$(newest_archive "$T/ld1-out")"); l2=$(member_sha "$(newest_archive "$T/ld2-out")")
[ "$l1" = "$l2" ] || fail "classify_long: 2 concurrent replicas end with $l2, 1 device x grad_accum 2 with $l1"
note "classify_long on 2 concurrent replicas == 1 device x grad_accum 2: $l1 ($(elapsed "$start")s)"

echo "run devices (concurrent): all checks passed"
