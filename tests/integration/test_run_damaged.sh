#!/bin/sh
# tests/integration/test_run_damaged.sh — damaged archives in the output
# directory: a flipped byte (caught by the sidecar), a flipped byte in the
# weights without a sidecar (caught by the manifest), a truncated archive, and
# every archive damaged at once. Each time the next run warns naming the
# archive and the damage, resumes from the newest valid one (or, with none,
# from the model), and the job still ends byte-identical to an uninterrupted run.
. "$(dirname "$0")/run_lib.sh"

# six epochs (~280 steps): room for the damage tests however fast the machine
write_job "$T/ref.ini" runtime.threads=1 job.output_dir=ref-out train.epochs=6
write_job "$T/job.ini" runtime.threads=1 train.epochs=6
OUT="$T/out"
brun "$T/ref.log" run "$T/ref.ini"
expect_rc 0 "$T/ref.log" "uninterrupted run"
REF=$(member_sha "$(newest_archive "$T/ref-out")")

seg() { # one 1.2 s segment; exit 75, or 0 when complete
    brun "$T/seg.log" run "$T/job.ini" -s runtime.budget=1.2s -s runtime.margin=0.2s
    [ "$RC" = 75 ] || [ "$RC" = 0 ] || fail "segment: exit $RC: $(tail -n 10 "$T/seg.log")"
}
# two_archives — segments until the output dir has at least 2 archives
two_archives() {
    ta_i=0
    while [ "$(ls "$OUT"/ckpt-*.tar 2>/dev/null | wc -l)" -lt 2 ]; do
        ta_i=$((ta_i + 1)); [ $ta_i -le 10 ] || fail "no 2 archives after 10 segments"
        seg
    done
    [ "$RC" = 75 ] || fail "the job completed before the damage tests"
}
flip() { # FILE OFFSET — inverts one byte
    fl_b=$(dd if="$1" bs=1 skip="$2" count=1 status=none | od -An -tu1 | tr -d ' ')
    printf "\\$(printf '%03o' $((255 - fl_b)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
# damaged_then KIND — damages the newest archive with KIND, runs a segment,
# checks the warning (fragment $2) and the resume from the one before
damaged_then() {
    two_archives
    dt_new=$(newest_archive "$OUT")
    dt_prev=$(ls "$OUT"/ckpt-*.tar | sort | tail -n 2 | head -n 1)
    dt_size=$(stat -c %s "$dt_new")
    case $1 in
    flip) flip "$dt_new" $((dt_size / 2)) ;;
    flip-weights) rm -f "$dt_new.sha256"; flip "$dt_new" $((512 + 1000)) ;;
    truncate) truncate -s $((dt_size - 700)) "$dt_new" ;;
    esac
    brun "$T/verify.log" verify "$dt_new"
    expect_rc 65 "$T/verify.log" "verify of the archive after $1"
    seg
    grep -qF "warning: skipping checkpoint: $dt_new: " "$T/seg.log" || fail "$1: no warning naming $dt_new: $(head -n 5 "$T/seg.log")"
    grep -qF -- "$2" "$T/seg.log" || fail "$1: the warning does not say '$2': $(grep skipping "$T/seg.log")"
    grep -qF "resumed from $dt_prev at step $(archive_step "$dt_prev") " "$T/seg.log" \
        || fail "$1: did not resume from $dt_prev: $(head -n 5 "$T/seg.log")"
    # retention: the damaged archive is kept aside and counts for nothing, so
    # keep_last (2) valid archives remain once the run has committed twice
    dt_commits=$(grep -c "^baton: committed\|committed .*ckpt-" "$T/seg.log" || true)
    dt_ok=$("$BATON" verify "$OUT" 2>/dev/null | grep -c '^OK' || true)
    [ -e "$dt_new" ] || fail "$1: retention removed the damaged $dt_new (it must be left for the user)"
    [ "$dt_ok" -ge 2 ] || fail "$1: only $dt_ok valid archive(s) left with keep_last 2: $("$BATON" verify "$OUT" 2>&1 | cut -c1-80)"
    note "$1: $(grep -m1 skipping "$T/seg.log" | sed "s|$T/||g" | cut -c1-160)"
    note "    resumed from $(basename "$dt_prev")"
}

damaged_then flip "SHA-256 mismatch"
damaged_then flip-weights "model.safetensors: SHA-256 mismatch"
damaged_then truncate "ckpt-"

# every archive damaged: the run stops (65) listing every archive and its
# damage, and does not start over on its own; --fresh starts from the model
# (the damaged archives stay), and progress is kept from there
two_archives
n=$(ls "$OUT"/ckpt-*.tar | wc -l)
for a in "$OUT"/ckpt-*.tar; do flip "$a" $(($(stat -c %s "$a") / 2)); done
brun "$T/seg.log" run "$T/job.ini" -s runtime.budget=1.2s -s runtime.margin=0.2s
expect_rc 65 "$T/seg.log" "all damaged"
grep -qF "no usable checkpoint archive: $n candidates, each refused:" "$T/seg.log" \
    || fail "all damaged: no error listing them: $(tail -n 8 "$T/seg.log")"
for a in "$OUT"/ckpt-*.tar; do grep -qF "  - $a: " "$T/seg.log" || fail "all damaged: $a not listed: $(tail -n 8 "$T/seg.log")"; done
brun "$T/seg.log" run "$T/job.ini" --fresh -s runtime.budget=1.2s -s runtime.margin=0.2s
expect_rc 75 "$T/seg.log" "all damaged, --fresh"
grep -q "segment 1 of job 'job': step 0 of" "$T/seg.log" || fail "all damaged: not a start at step 0: $(head -n 8 "$T/seg.log")"
stop=$(sed -n 's/.*segment stopped (deadline) at step \([0-9]*\) .*/\1/p' "$T/seg.log")
seg
grep -q "resumed from .* at step $stop " "$T/seg.log" \
    || fail "all damaged: the next run did not resume from this run's step $stop: $(grep -v skipping "$T/seg.log" | head -n 3)"
note "all $n damaged: exit 65 listing them; --fresh started from the model, then resumed at step $stop"

run_to_end "$T/job.ini" "$T/end.log" -s runtime.budget=1.2s -s runtime.margin=0.2s
F=$(newest_archive "$OUT")
is_complete "$F" || fail "$F not complete"
[ "$(member_sha "$F")" = "$REF" ] || fail "final $F: model.safetensors $(member_sha "$F") differs from the uninterrupted run's $REF"
brun "$T/verify.log" verify "$F"
expect_rc 0 "$T/verify.log" "verify of the final archive"
# damaged archives are never removed by retention (nor counted): they stay for the user
brun "$T/verify.log" verify "$OUT"
[ "$(grep -c '^OK' "$T/verify.log")" -ge 2 ] || fail "fewer than keep_last = 2 valid archives at the end: $(cut -c1-80 "$T/verify.log")"
[ "$RC" = 0 ] || note "left in the output dir: $(grep -c '^BAD' "$T/verify.log") damaged archive(s), not counted by retention"
note "final $(basename "$F") = uninterrupted ($REF)"
echo "run damaged: all checks passed"
