#!/bin/sh
# tests/integration/test_selftest.sh — the first-contact self-check through
# the binary, with the CPU standing in for a GPU (BATON_FAKE_GPU): `baton
# selftest` passes a faithful device and refuses a perturbed one (exit 70);
# `baton run` with device = cuda stops with exit 70 and the report before
# training on a wrong device, device = auto trains on the CPU with a loud
# warning; a pass is recorded in the output dir and the cache and honoured by
# the next run (no second check), a failure is never recorded; `baton doctor`
# says whether this "GPU" was checked.
. "$(dirname "$0")/run_lib.sh"
export XDG_CACHE_HOME="$T/cache"
CACHE="$XDG_CACHE_HOME/baton/selfcheck.json"

# ---- baton selftest
brun "$T/st.log" selftest --device cpu --threads 2
expect_rc 0 "$T/st.log" "selftest --device cpu"
grep -q '^result: pass' "$T/st.log" || fail "no pass line: $(cat "$T/st.log")"
[ ! -e "$CACHE" ] || fail "selftest --device cpu recorded something"

BATON_FAKE_GPU=adamw brun "$T/st.log" selftest --threads 2
expect_rc 70 "$T/st.log" "selftest on a device with a wrong AdamW"
grep -q '^result: MISMATCH' "$T/st.log" || fail "no MISMATCH line: $(cat "$T/st.log")"
grep -q 'weight updates .* > *limit' "$T/st.log" || fail "the report does not name the weight updates: $(cat "$T/st.log")"
[ ! -e "$CACHE" ] || fail "a mismatch was recorded"

BATON_FAKE_GPU=none brun "$T/st.json" selftest --json --threads 2
expect_rc 0 "$T/st.json" "selftest --json on a faithful device"
python3 - "$T/st.json" "$CACHE" <<'EOF' || fail "selftest --json: $(cat "$T/st.json")"
import json, sys
d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
assert d["result"] == "pass" and d["limit"] == 1e-4, d
assert d["key"]["precision"] == "fp32" and "fake GPU" in d["key"]["gpu"], d
assert d["recorded"] == sys.argv[2], d
assert all(d[k]["error"] == 0 for k in ("loss", "grad", "weight")), d
EOF
grep -q '"result": "pass"' "$CACHE" || fail "the pass is not in $CACHE"

brun "$T/st.log" selftest --device cpu --precision bf16 --threads 2
expect_rc 0 "$T/st.log" "selftest --device cpu --precision bf16"
grep -q 'model-wide' "$T/st.log" || fail "bf16 is not judged model-wide: $(cat "$T/st.log")"
BATON_FAKE_GPU=none brun "$T/st.log" selftest --precision tf32
expect_rc 78 "$T/st.log" "selftest --precision tf32 on a device without TF32"
grep -q 'TF32' "$T/st.log" || fail "no reason for tf32: $(cat "$T/st.log")"
brun "$T/st.log" selftest --device tpu
expect_rc 64 "$T/st.log" "selftest --device tpu"

# ---- doctor: checked or not
BATON_FAKE_GPU=none brun "$T/doc.log" doctor
expect_rc 0 "$T/doc.log" "doctor"
grep -q 'self-check: passed on .*fake GPU (BATON_FAKE_GPU=none)' "$T/doc.log" || fail "doctor: $(cat "$T/doc.log")"
BATON_FAKE_GPU=gelu brun "$T/doc.log" doctor
grep -q 'self-check: not run yet for fake GPU' "$T/doc.log" || fail "doctor (unchecked): $(cat "$T/doc.log")"
rm -f "$CACHE"

# ---- baton run
write_job "$T/j.ini" data.limit_train=96 data.limit_eval=32 train.epochs=1 train.batch_size=16 runtime.threads=2

# device = cuda on a wrong device: exit 70 before training, the report, nothing recorded or committed
BATON_FAKE_GPU=matmul brun "$T/r1.log" run "$T/j.ini" -s runtime.device=cuda
expect_rc 70 "$T/r1.log" "device = cuda on a device with a wrong matmul"
grep -q 'first contact with fake GPU' "$T/r1.log" || fail "no first-contact line: $(cat "$T/r1.log")"
grep -q 'does not match the CPU reference' "$T/r1.log" || fail "no mismatch error: $(cat "$T/r1.log")"
grep -q 'gradients .* > *limit' "$T/r1.log" || fail "the report does not name the gradients: $(cat "$T/r1.log")"
[ -z "$(newest_archive "$T/out")" ] || fail "an archive was committed after the self-check failed"
[ ! -e "$T/out/selfcheck.json" ] && [ ! -e "$CACHE" ] || fail "a failed self-check was recorded"

# device = auto on a wrong device: a loud warning, then the CPU trains; nothing recorded
BATON_FAKE_GPU=attention brun "$T/r2.log" run "$T/j.ini"
expect_rc 0 "$T/r2.log" "device = auto on a device with a wrong attention"
grep -q 'WARNING: the GPU backend does not match' "$T/r2.log" || fail "no warning: $(cat "$T/r2.log")"
grep -q 'TRAINING ON THE CPU' "$T/r2.log" || fail "the warning does not say the CPU: $(cat "$T/r2.log")"
a=$(newest_archive "$T/out")
[ -n "$a" ] || fail "device = auto did not train"
[ "$(trainer_field "$a" device)" = '"cpu"' ] || fail "trained on $(trainer_field "$a" device), not the CPU"
[ ! -e "$T/out/selfcheck.json" ] && [ ! -e "$CACHE" ] || fail "a failed self-check was recorded"
rm -rf "$T/out"

# a faithful device: checked once, recorded in both places, trains on it
BATON_FAKE_GPU=none brun "$T/r3.log" run "$T/j.ini" -s runtime.device=cuda
expect_rc 0 "$T/r3.log" "device = cuda on a faithful device"
grep -q 'self-check passed in' "$T/r3.log" || fail "no pass line: $(cat "$T/r3.log")"
a=$(newest_archive "$T/out")
[ "$(trainer_field "$a" device)" = '"cpu+wrap"' ] || fail "trained on $(trainer_field "$a" device), not the device"
[ -e "$T/out/selfcheck.json" ] && [ -e "$CACHE" ] || fail "the pass was not recorded in both places"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['format']=='baton-selfcheck' and d['version']==1 and len(d['records'])==1" \
    "$T/out/selfcheck.json" || fail "selfcheck.json: $(cat "$T/out/selfcheck.json")"
# the next run of another job on the same device: honoured from the cache, not checked again
write_job "$T/k.ini" data.limit_train=96 data.limit_eval=32 train.epochs=1 train.batch_size=16 runtime.threads=2 \
    job.output_dir=out2
BATON_FAKE_GPU=none brun "$T/r4.log" run "$T/k.ini" -s runtime.device=cuda
expect_rc 0 "$T/r4.log" "a second job on the checked device"
! grep -q 'first contact' "$T/r4.log" || fail "the recorded pass was not honoured: $(cat "$T/r4.log")"
[ -e "$T/out2/selfcheck.json" ] || fail "the pass was not copied into the new output dir"
# a damaged cache record is not trusted: checked again
sed -i 's/fake GPU/fake GPX/' "$CACHE"
rm -rf "$T/out2"
BATON_FAKE_GPU=none brun "$T/r5.log" run "$T/k.ini" -s runtime.device=cuda
expect_rc 0 "$T/r5.log" "the checked device with a damaged cache record"
grep -q 'damaged' "$T/r5.log" && grep -q 'first contact' "$T/r5.log" || fail "damaged record: $(cat "$T/r5.log")"
note "selftest, run (cuda: 70 / auto: CPU / pass recorded and honoured), doctor: ok"
exit 0
