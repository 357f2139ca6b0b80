#!/bin/sh
# tests/integration/test_kaggle_competition.sh — a competition from one
# notebook: kaggle/baton.ipynb in a simulated /kaggle tree with a
# competition-shaped dataset (train.csv: id, text, target and an extra
# column; test.csv: id and text, no labels, some texts quoted with commas and
# line breaks), no job file and no eval file, two chained sessions:
#
#   1. session 1 (budget 3 s): the notebook holds 10% of train out for
#      evaluation (test.csv is not used as eval), trains, stops with 75, and
#      writes no submission (the job is not complete); /kaggle/working holds
#      only the output directory;
#   2. session 2 (previous output attached, no budget): resumes, completes,
#      and the prediction cell writes /kaggle/working/submission.csv, which
#      the clean-up keeps: header id,target; the ids of test.csv in its order,
#      one row each; labels from the job's label set; and equal to `baton
#      predict` on the best archive of the output, run here.
# Env: BATON, ROOT (tests/run.sh).
set -u
. "$(dirname "$0")/kaggle_sim/lib.sh"
new_tmp test_kaggle_competition
NB="$ROOT/kaggle/baton.ipynb"

"$BATON" demo-init "$TMPD/demo" >/dev/null || fail "baton demo-init"
make_bundle_tarball "$TMPD/baton-bundle.tar.gz"

# The competition's files, from the demo's sentences.
mkdir -p "$TMPD/comp"
python3 - "$TMPD/demo/data/train.tsv" "$TMPD/comp" <<'EOF' || fail "building the competition data"
import csv, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
with open(sys.argv[2] + "/train.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["id", "keyword", "text", "target"])
    for i, (text, label) in enumerate(rows[:1200]):
        w.writerow([1000 + i, "kw%d" % (i % 5), text, 1 if label == "positive" else 0])
with open(sys.argv[2] + "/test.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["id", "text"])
    for i, (text, _) in enumerate(rows[1200:1240]):
        if i % 7 == 3:
            text = text.replace(" ", ", ", 1)           # a comma: quoted
        if i % 9 == 4:
            text = text.replace(" ", "\n", 1)           # a line break inside the field
        w.writerow(["t%03d" % (997 - 13 * i), text])   # ids in no sorted order
EOF

# The default job template (no columns, no eval), sized to outlast a 3 s session; one thread.
with_params "$TMPD/s1.ipynb" 'BUDGET = "3s"
RUN_ARGS = ["-s", "train.max_steps=1500", "-s", "train.batch_size=16", "-s", "data.max_seq_len=32", "-s", "runtime.threads=1", "-s", "runtime.margin=1s"]'
with_params "$TMPD/s2.ipynb" 'BUDGET = None
RUN_ARGS = ["-s", "train.max_steps=1500", "-s", "train.batch_size=16", "-s", "data.max_seq_len=32", "-s", "runtime.threads=1", "-s", "runtime.margin=1s"]'

echo "== session 1: bundle, model, competition data; budget 3 s"
attach s1 baton-bundle "$TMPD/baton-bundle.tar.gz"
attach s1 demo-model "$TMPD"/demo/model/*
attach s1 competition "$TMPD"/comp/*
session s1 "$TMPD/s1.ipynb"; rc=$?
[ $rc = 0 ] || fail "session 1 notebook failed (exit $rc)"
grep -q "baton run exited 75" "$TMPD/s1.log" || fail "session 1: want 'baton run exited 75'"
grep -q "^eval:  0.1 of train held out" "$TMPD/s1.log" || fail "session 1: test.csv must not be the eval file"
grep -q "^evaluation: 120 examples held out of .*/train.csv (eval_split = 0.1, stratified)" "$TMPD/s1.log" ||
    fail "session 1: no held-out evaluation set of 120"
grep -q "no submission this session: the job is not complete" "$TMPD/s1.log" || fail "session 1: want 'no submission this session'"
[ "$(ls -A "$TMPD/s1/kaggle/working")" = kaggle-job ] || fail "session 1: working holds $(ls -A "$TMPD/s1/kaggle/working")"
out1="$TMPD/s1/kaggle/working/kaggle-job"
step1=$(json_get "$out1/status.json" step)
[ "$step1" -gt 0 ] && [ "$step1" -lt 1500 ] || fail "session 1 ended at step $step1"

echo "== session 2: previous output attached; runs to the end and predicts"
attach s2 baton-bundle "$TMPD/baton-bundle.tar.gz"
attach s2 demo-model "$TMPD"/demo/model/*
attach s2 competition "$TMPD"/comp/*
attach s2 previous-output "$out1"
session s2 "$TMPD/s2.ipynb"; rc=$?
[ $rc = 0 ] || fail "session 2 notebook failed (exit $rc)"
grep -q "resumed from .*/input/previous-output/kaggle-job/$(printf 'ckpt-%09d.tar' "$step1") at step $step1 " "$TMPD/s2.log" ||
    fail "session 2 did not resume at step $step1"
grep -q "baton run exited 0" "$TMPD/s2.log" || fail "session 2: want 'baton run exited 0'"
w="$TMPD/s2/kaggle/working"
sub="$w/submission.csv"
[ -f "$sub" ] || fail "no submission.csv in /kaggle/working (clean-up must keep it): $(ls -A "$w")"
[ "$(ls -A "$w" | sort | tr '\n' ' ')" = "kaggle-job submission.csv " ] || fail "working holds: $(ls -A "$w")"

# The same predictions from `baton predict` on the output's best archive, here.
out2="$w/kaggle-job"
latest=$(ls "$out2"/ckpt-*.tar | sort | tail -n 1)
best=$(tar -xOf "$latest" trainer.json | python3 -c 'import json,sys; print(json.load(sys.stdin)["best"]["archive"])')
[ -n "$best" ] && [ -f "$out2/$best" ] || fail "the best archive ($best) is not in the output: $(ls "$out2")"
"$BATON" predict "$out2/$(basename "$best")" --input "$TMPD/comp/test.csv" --output "$TMPD/here.csv" 2>"$TMPD/here.log" ||
    fail "baton predict on the best archive: $(cat "$TMPD/here.log")"
python3 - "$sub" "$TMPD/comp/test.csv" "$TMPD/here.csv" <<'EOF' || fail "submission.csv"
import csv, sys
sub = list(csv.reader(open(sys.argv[1], newline="")))
test = list(csv.reader(open(sys.argv[2], newline="")))
here = list(csv.reader(open(sys.argv[3], newline="")))
assert sub[0] == ["id", "target"], f"header {sub[0]}"
assert [r[0] for r in sub[1:]] == [r[0] for r in test[1:]], "ids differ from test.csv's, or their order"
assert all(len(r) == 2 and r[1] in ("0", "1") for r in sub[1:]), f"labels outside the job's set: {sub[1:4]}"
assert sub == here, "the notebook's submission differs from baton predict on the best archive"
print(f"submission.csv: {len(sub) - 1} rows, ids in test.csv's order, labels {sorted(set(r[1] for r in sub[1:]))}")
EOF
echo "test_kaggle_competition: ok"
