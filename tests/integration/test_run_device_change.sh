#!/bin/sh
# tests/integration/test_run_device_change.sh — trainer.json records what
# trained (`device_model`: "cpu", or the GPU's name and compute capability),
# and a resume on another device says in one line that the continuation is
# valid but not byte-identical; on the same device it says nothing. The GPU
# is the self-check's CPU stand-in (BATON_FAKE_GPU=none), so this runs
# without one. CPU, the tiny demo model.
. "$(dirname "$0")/run_lib.sh"

write_job "$T/j.ini" runtime.threads=1 train.epochs=1 runtime.device=cpu
term_when "$T/a.log" 'newest_step_at_least "$T/out" 5' run "$T/j.ini"
expect_rc 75 "$T/a.log" "first segment on the CPU"
a=$(newest_archive "$T/out"); sa=$(archive_step "$a")
[ "$(trainer_field "$a" device_model)" = '"cpu"' ] || fail "device_model of a CPU run: $(trainer_field "$a" device_model)"

# the same device: no note
term_when "$T/b.log" "newest_step_at_least \"$T/out\" $((sa + 1))" run "$T/j.ini"
expect_rc 75 "$T/b.log" "second segment on the CPU"
grep -q "resumed from" "$T/b.log" || fail "no resume: $(head -n 3 "$T/b.log")"
grep -q "^device: " "$T/b.log" && fail "a note on the same device: $(grep '^device:' "$T/b.log")"

# the stand-in GPU, to the end: the note, and its archives record it
BATON_FAKE_GPU=none brun "$T/c.log" run "$T/j.ini" -s runtime.device=cuda
expect_rc 0 "$T/c.log" "resume on the stand-in GPU"
grep -q "^device: the archive trained on cpu, this segment on fake GPU (BATON_FAKE_GPU=none) (compute capability -): a valid continuation" "$T/c.log" ||
    fail "no device note: $(head -n 8 "$T/c.log")"
c=$(newest_archive "$T/out")
is_complete "$c" || fail "the stand-in run did not complete: $c"
tar -xOf "$c" trainer.json | grep -q '"device_model":"fake GPU (BATON_FAKE_GPU=none) (compute capability -)"' ||
    fail "device_model of the stand-in run: $(tar -xOf "$c" trainer.json | grep -o '"device_model":"[^"]*"')"
echo "device change: all checks passed"
