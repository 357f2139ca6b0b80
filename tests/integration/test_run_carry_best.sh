#!/bin/sh
# tests/integration/test_run_carry_best.sh — a run that resumes from another
# directory (a previous Kaggle session's output under /kaggle/input) carries
# the best archive into its own output, so keep_best keeps it across
# sessions: copied byte for byte with its sidecar, and verified; a best
# archive missing from the other directory is a warning, not a failure;
# keep_best = 0 carries nothing. CPU, the tiny demo model.
. "$(dirname "$0")/run_lib.sh"

write_job "$T/j.ini" train.lr=3e-3 train.eval_every=20 runtime.checkpoint_every=20 runtime.keep_last=1 runtime.keep_best=1 job.output_dir=A
brun "$T/a.log" run "$T/j.ini"
expect_rc 0 "$T/a.log" "first run"
last=$(newest_archive "$T/A")
best=$(tar -xOf "$last" trainer.json | sed -n 's/.*"best":{[^}]*"archive":"\([^"]*\)".*/\1/p')
[ -n "$best" ] || fail "no best archive recorded in $last"
[ "$best" != "$(basename "$last")" ] || fail "the best archive is the last one here: the test needs a job whose best is earlier"

brun "$T/b.log" run "$T/j.ini" -s job.output_dir=$T/B -s job.resume_from=$T/A
expect_rc 0 "$T/b.log" "run into B resuming from A"
grep -q "carried the best archive $best (step [0-9]*) into $T/B" "$T/b.log" || fail "no 'carried' line: $(cat "$T/b.log")"
cmp -s "$T/A/$best" "$T/B/$best" || fail "B/$best differs from A/$best"
cmp -s "$T/A/$best.sha256" "$T/B/$best.sha256" || fail "the sidecar was not carried"
ls "$T/B"/*.partial >/dev/null 2>&1 && fail "a .partial was left in B"
brun "$T/v.log" verify "$T/B/$best"
expect_rc 0 "$T/v.log" "verify the carried archive"

# keep_best = 0: nothing to carry
brun "$T/c.log" run "$T/j.ini" -s job.output_dir=$T/C -s job.resume_from=$T/A -s runtime.keep_best=0
expect_rc 0 "$T/c.log" "keep_best = 0"
grep -q "carried" "$T/c.log" && fail "keep_best = 0 carried an archive"
[ -e "$T/C/$best" ] && fail "keep_best = 0: $best is in C"

# the best archive gone from A: a warning, the run goes on
rm -f "$T/A/$best" "$T/A/$best.sha256"
brun "$T/d.log" run "$T/j.ini" -s job.output_dir=$T/D -s job.resume_from=$T/A
expect_rc 0 "$T/d.log" "best archive missing from A"
grep -q "the best archive (step [0-9]*) is not carried into $T/D" "$T/d.log" || fail "no warning: $(cat "$T/d.log")"
[ -e "$T/D/$best" ] && fail "D has $best"
echo "carry best: all checks passed ($best)"
