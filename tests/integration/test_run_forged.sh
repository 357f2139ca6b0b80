#!/bin/sh
# tests/integration/test_run_forged.sh — archives whose checksums are all
# valid but whose contents are not usable (issue 15, findings 1, 2, 3 and
# 10's export): forged by tests/unit/test_archive_forge.c, which recomputes
# every checksum. For each forgery of the newest archive: `baton verify`
# says BAD with the reason, `baton status` names the archive before it, and
# `baton run` skips the forgery with a warning and resumes from the archive
# before it (never a crash, never exit 65 forever, never the forged state).
# Then: export, predict and eval refuse an invalid archive given by name;
# with every archive invalid, run stops (65) listing each one.
. "$(dirname "$0")/run_lib.sh"

FORGE="$BUILD/tests/test_archive_forge"
[ -x "$FORGE" ] || fail "$FORGE is not built (make test-unit)"

write_job "$T/job.ini" runtime.threads=1 train.epochs=4 runtime.checkpoint_every=3 runtime.keep_last=4
OUT="$T/out"
# a base state: at least 3 archives, the job not complete
term_when "$T/base.log" '[ "$(ls "$OUT"/ckpt-*.tar 2>/dev/null | wc -l)" -ge 3 ]' run "$T/job.ini"
expect_rc 75 "$T/base.log" "base segment"
cp -a "$OUT" "$T/base"
N=$(newest_archive "$OUT"); NB=$(basename "$N")
P=$(ls "$OUT"/ckpt-*.tar | sort | tail -n 2 | head -n 1); PSTEP=$(archive_step "$P")
note "base: newest $NB, the one before step $PSTEP"

# forged WHAT FRAGMENT EDIT... — forges the newest archive in a fresh copy of
# the base state, then checks verify, status and run agree on it
forged() {
    fg_what=$1; fg_frag=$2; shift 2
    rm -rf "$OUT"; cp -a "$T/base" "$OUT"
    "$FORGE" "$N" "$N" "$@" || fail "$fg_what: the forger failed"
    # every checksum holds: only the contents are wrong
    brun "$T/v.log" verify "$N"
    expect_rc 65 "$T/v.log" "$fg_what: verify"
    grep -qF "BAD  $N:" "$T/v.log" && grep -qF -- "$fg_frag" "$T/v.log" \
        || fail "$fg_what: verify does not say '$fg_frag': $(head -n 2 "$T/v.log")"
    grep -q "SHA-256\|sidecar" "$T/v.log" && fail "$fg_what: a checksum failed, not the contents: $(head -n 1 "$T/v.log")"
    brun "$T/s.log" status "$T/job.ini" --json
    expect_rc 0 "$T/s.log" "$fg_what: status"
    grep -qF "\"latest_archive\": \"$P\"" "$T/s.log" || fail "$fg_what: status does not name $P: $(grep latest "$T/s.log")"
    # the run: stopped (SIGTERM) once it has resumed, or at its first error
    term_when "$T/r.log" 'grep -q "resumed from\|baton: error" "$T/r.log"' run "$T/job.ini"
    [ "$RC" = 75 ] || [ "$RC" = 0 ] || fail "$fg_what: run exited $RC: $(tail -n 6 "$T/r.log")"
    grep -qF "warning: skipping checkpoint: $N:" "$T/r.log" && grep -qF -- "$fg_frag" "$T/r.log" \
        || fail "$fg_what: run does not skip $NB saying '$fg_frag': $(head -n 3 "$T/r.log")"
    grep -qF "resumed from $P at step $PSTEP " "$T/r.log" || fail "$fg_what: run did not resume from $P: $(head -n 4 "$T/r.log")"
    grep -q "already complete" "$T/r.log" && fail "$fg_what: run believed a forged 'complete'"
    note "$fg_what: $(grep -m1 'skipping' "$T/r.log" | sed "s|.*$NB: ||" | cut -c1-110)"
}

# finding 1: a history entry that is not an object (segfaulted every run)
forged "history [1]" '"history" must be a list of objects' 'trainer.history=[1]'
# finding 2: the model member unusable (exit 65 on every run, no fallback)
forged "shapes swapped" "tensor classifier.weight is F32 [64,2], config.json implies F32 [2,64]" \
    'model:classifier.weight:swap'
forged "I32 dtype" "tensor classifier.weight is I32" 'model:classifier.weight:dtype=I32'
forged "header length 2^63" "header length 9223372036854775808" 'model:hdrlen=9223372036854775808'
forged "missing tensor" "tensor bert.pooler.dense.bias [64] is missing" 'model:bert.pooler.dense.bias:drop'
forged "optimizer moment missing" "classifier.bias.exp_avg_sq [2] is missing" 'optim:classifier.bias.exp_avg_sq:drop'
# finding 3: forged state that was believed
forged "step as a string" '"step" must be an integer' 'trainer.step="188"'
forged "epoch 99" 'epoch 99 at step' 'trainer.epoch=99'
forged "complete at a middle step" 'complete is true with stop_reason' 'trainer.complete=true'
forged "complete, stop_reason complete" 'complete at step' 'trainer.complete=true' 'trainer.stop_reason="complete"'
forged "+inf weight" "holds inf at index 7" 'model:bert.encoder.layer.1.output.dense.weight:set=7,inf'
forged "all-NaN weights" "holds nan" 'model:*:fill=nan'
forged "negative second moment" "a second moment must be >= 0" 'optim:classifier.weight.exp_avg_sq:set=3,-0.5'
# issue 17: the precision and fp16 loss scaler fields (the base ran fp32)
forged "skipped steps past the step" '"skipped_steps" must be an integer in [0, ' 'trainer.skipped_steps=99999'
forged "a loss scale in fp32" 'precision fp32 with a loss scale' 'trainer.loss_scale=1024.0'
forged "precision fp8" '"precision" must be one of' 'trainer.precision="fp8"'
# finding 10: config.json that disagrees with the tensors (export wrote it)
forged "config hidden_size" "config.json implies F32 [67,32]" 'config.hidden_size=32' 'config.num_attention_heads=4'
forged "config labels" "classifier.weight is F32 [2,64], config.json implies F32 [3,64]" \
    'config.id2label={"0":"negative","1":"positive","2":"other"}' 'config.label2id={"negative":0,"positive":1,"other":2}'

# export, predict and eval refuse an invalid archive given by name (the
# all-NaN one printed nan with exit 0; a mismatched config was exported)
rm -rf "$OUT"; cp -a "$T/base" "$OUT"
"$FORGE" "$N" "$T/nan.tar" 'model:*:fill=nan' || fail "forge nan"
"$FORGE" "$N" "$T/cfg.tar" 'config.hidden_size=32' 'config.num_attention_heads=4' || fail "forge cfg"
printf 'a fine film\nnot good at all\n' >"$T/in.txt"
brun "$T/p.log" predict "$T/nan.tar" --input "$T/in.txt"
expect_rc 65 "$T/p.log" "predict with all-NaN weights"
grep -v "^baton: " "$T/p.log" | grep -q "nan" && fail "predict printed nan: $(cat "$T/p.log")"
brun "$T/x.log" export "$T/cfg.tar" "$T/exp"
expect_rc 65 "$T/x.log" "export with a config.json that disagrees with the tensors"
[ ! -e "$T/exp/model.safetensors" ] || fail "export wrote a mismatched directory"
brun "$T/x.log" export "$T/nan.tar" "$T/exp"
expect_rc 65 "$T/x.log" "export of all-NaN weights"
brun "$T/e.log" eval "$T/job.ini" --archive "$T/nan.tar"
expect_rc 65 "$T/e.log" "eval of all-NaN weights"
grep -q "holds nan" "$T/e.log" || fail "eval does not say why: $(tail -n 3 "$T/e.log")"
brun "$T/i.log" inspect "$T/nan.tar"
expect_rc 65 "$T/i.log" "inspect of all-NaN weights"
grep -q "^contents       INVALID: .*holds nan" "$T/i.log" || fail "inspect does not show the judgement: $(head -n 5 "$T/i.log")"
# a job's predictions come from its newest usable archive
"$FORGE" "$N" "$N" 'model:*:fill=nan' || fail "forge"
brun "$T/p.log" predict "$T/job.ini" --input "$T/in.txt"
expect_rc 0 "$T/p.log" "predict with the job (newest archive invalid)"
grep -v "^baton: " "$T/p.log" | grep -q "nan" && fail "predict with the job used the invalid archive: $(cat "$T/p.log")"
note "export, predict, eval and inspect refuse an invalid archive; predict JOB uses the newest usable one"

# a renamed archive: verify refuses it as discovery does (it said OK)
rm -rf "$OUT"; cp -a "$T/base" "$OUT"
mv "$N" "$OUT/ckpt-000000999.tar"
brun "$T/v.log" verify "$OUT/ckpt-000000999.tar"
expect_rc 65 "$T/v.log" "verify of a renamed archive"
grep -q "the file name says step 999 but MANIFEST.json says step" "$T/v.log" || fail "renamed: $(cat "$T/v.log")"
brun "$T/s.log" status "$T/job.ini" --json
grep -qF "\"latest_archive\": \"$P\"" "$T/s.log" || fail "renamed: status does not name $P: $(grep latest "$T/s.log")"

# every archive invalid: run stops (65) listing each, and never crashes
rm -rf "$OUT"; cp -a "$T/base" "$OUT"
n=0
for a in "$OUT"/ckpt-*.tar; do "$FORGE" "$a" "$a" 'trainer.history=[1]' || fail "forge $a"; n=$((n + 1)); done
brun "$T/r.log" run "$T/job.ini"
expect_rc 65 "$T/r.log" "run with every archive invalid"
grep -qF "no usable checkpoint archive: $n candidates, each refused:" "$T/r.log" || fail "no summary: $(tail -n 3 "$T/r.log")"
for a in "$OUT"/ckpt-*.tar; do
    grep -qF "  - $a: trainer.json" "$T/r.log" || fail "the error does not list $a: $(tail -n 8 "$T/r.log")"
done
grep -q -- "--fresh" "$T/r.log" || fail "the error does not say what to do"
term_when "$T/r.log" 'grep -q "segment 1 of job\|baton: error" "$T/r.log"' run "$T/job.ini" --fresh
[ "$RC" = 75 ] || [ "$RC" = 0 ] || fail "--fresh after every archive invalid: exit $RC: $(tail -n 4 "$T/r.log")"
note "every archive invalid: exit 65 listing all $n, then --fresh starts over"
echo "run forged: all checks passed"
