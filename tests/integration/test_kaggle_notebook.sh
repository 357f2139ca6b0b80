#!/bin/sh
# tests/integration/test_kaggle_notebook.sh — kaggle/baton.ipynb, its code
# cells run in order under plain python3 (kaggle_sim/run_notebook.py) in a
# simulated /kaggle tree (BATON_KAGGLE_ROOT).
#
#   1. the notebook is valid nbformat 4 (nbformat's validator when installed);
#   2. session 1: bundle tarball + model + data attached; a short budget ends
#      the segment with 75 and the notebook still succeeds; /kaggle/working
#      then holds only the job's output directory, with an archive, a sidecar,
#      status.json and the plot;
#   3. session 2: the previous output attached, the bundle attached already
#      unpacked (as Kaggle may do) with its exec bits lost, the job as an
#      attached job.ini instead of injected text: resumes at session 1's step
#      and ends past it;
#   4. no model attached: the notebook fails with a message saying what to
#      attach; a bad budget (exit 78): the notebook fails, after tidying.
# Sessions 1 and 2 run the real `baton run` of the demo job (3 s budgets).
# Env: BATON, ROOT (tests/run.sh).
set -u
. "$(dirname "$0")/kaggle_sim/lib.sh"
new_tmp test_kaggle_notebook
NB="$ROOT/kaggle/baton.ipynb"

python3 - "$NB" <<'EOF' || fail "kaggle/baton.ipynb is not a valid notebook"
import json, sys
nb = json.load(open(sys.argv[1]))
try:
    import nbformat
    nbformat.validate(nbformat.reads(json.dumps(nb), as_version=4))
    print("nbformat.validate: ok")
except ImportError:
    sys.path.insert(0, sys.argv[1].rsplit("/", 2)[0] + "/tests/integration/kaggle_sim")
    from run_notebook import check_nbformat
    check_nbformat(nb)
    print("structural check: ok (nbformat not installed)")
code = [c for c in nb["cells"] if c["cell_type"] == "code"]
assert any("parameters" in c["metadata"].get("tags", []) for c in code), "no cell tagged 'parameters'"
for i, c in enumerate(code):
    compile("".join(c["source"]), f"cell {i + 1}", "exec")
EOF

"$BATON" demo-init "$TMPD/demo" >/dev/null || fail "baton demo-init"
make_bundle_tarball "$TMPD/baton-bundle.tar.gz"

# The demo job, long enough that two 3 s segments do not finish it.
write_demo_job "$TMPD/job.ini" 100000
params() { # BUDGET [with-job]: the injected cell's source
    python3 -c 'import sys
print(f"BUDGET = {sys.argv[1]!r}")
if len(sys.argv) > 2: print(f"JOB_INI = {open(sys.argv[2]).read()!r}")' "$@"
}
with_params "$TMPD/short.ipynb" "$(params 3s "$TMPD/job.ini")"
with_params "$TMPD/short-nojob.ipynb" "$(params 3s)"

echo "== session 1: bundle tarball, model, data; budget 3 s"
attach s1 baton-bundle "$TMPD/baton-bundle.tar.gz"
attach s1 demo-model "$TMPD"/demo/model/*
attach s1 demo-data "$TMPD"/demo/data/*
session s1 "$TMPD/short.ipynb"; rc=$?
[ $rc = 0 ] || fail "session 1 notebook failed (exit $rc): exit 75 must not fail the notebook"
grep -q "baton run exited 75" "$TMPD/s1.log" || fail "session 1: want 'baton run exited 75' in the log"
w="$TMPD/s1/kaggle/working"
ls -A "$w" >"$TMPD/ls1"
[ "$(wc -l <"$TMPD/ls1")" = 1 ] || { cat "$TMPD/ls1"; fail "/kaggle/working holds more than the output directory"; }
out="$w/$(cat "$TMPD/ls1")"
ls "$out"/ckpt-*.tar >/dev/null 2>&1 || fail "no archive in $out"
ls "$out"/ckpt-*.tar.sha256 >/dev/null 2>&1 || fail "no sidecar in $out"
[ -f "$out/status.json" ] || fail "no status.json in $out"
ls "$out"/*.svg >/dev/null 2>&1 || fail "no plot (SVG) in $out"
ls "$out"/*.partial >/dev/null 2>&1 && fail "partial files left in $out"
step1=$(json_get "$out/status.json" step)
[ "$step1" -gt 0 ] || fail "session 1 made no progress"
# The status cell (baton status --json) and the plot cell (baton plot).
grep -q "^step  *$step1\$" "$TMPD/s1.log" || fail "status cell: want 'step $step1'"
grep -q "^complete  *False\$" "$TMPD/s1.log" || fail "status cell: want 'complete False'"
grep -q "^output_dir  *.*/kaggle/working/demo\$" "$TMPD/s1.log" || fail "status cell: want output_dir .../kaggle/working/demo"
grep -q "^plot: .*/kaggle/working/demo/metrics.svg\$" "$TMPD/s1.log" || fail "plot cell: want 'plot: .../metrics.svg'"
grep -q "<svg" "$out/metrics.svg" || fail "metrics.svg is not an SVG"
echo "session 1: step $step1, working holds only $(cat "$TMPD/ls1")"

echo "== session 2: previous output attached, bundle already unpacked by 'Kaggle' (no exec bits), job.ini attached"
mkdir -p "$TMPD/unpacked" && tar -C "$TMPD/unpacked" -xzf "$TMPD/baton-bundle.tar.gz"
chmod -R a-x "$TMPD/unpacked/baton-bundle/baton"
attach s2 baton-bundle "$TMPD/unpacked/baton-bundle"
attach s2 demo-model "$TMPD"/demo/model/*
attach s2 demo-data "$TMPD"/demo/data/*
attach s2 previous-output "$out"
attach s2 my-job "$TMPD/job.ini"
session s2 "$TMPD/short-nojob.ipynb"; rc=$?
[ $rc = 0 ] || fail "session 2 notebook failed (exit $rc)"
grep -q "bundle (unpacked by Kaggle)" "$TMPD/s2.log" || fail "session 2 did not use the unpacked bundle"
grep -q "^job file: .*/input/my-job/job.ini\$" "$TMPD/s2.log" || fail "session 2 did not use the attached job.ini"
grep -q "resumed from .*/input/previous-output/demo/$(printf 'ckpt-%09d.tar' "$step1") at step $step1 " "$TMPD/s2.log" ||
    fail "session 2 did not resume from session 1's archive (step $step1)"
out2=$(ls -d "$TMPD"/s2/kaggle/working/*)
step2=$(json_get "$out2/status.json" step)
[ "$step2" -gt "$step1" ] || fail "session 2 ended at step $step2, not past session 1's $step1"
echo "session 2: resumed at $step1, ended at $step2"

echo "== session 3: no model attached"
attach s3 baton-bundle "$TMPD/baton-bundle.tar.gz"
attach s3 demo-data "$TMPD"/demo/data/*
session s3 "$TMPD/short.ipynb"; rc=$?
[ $rc != 0 ] || fail "the notebook should fail without a model"
grep -q "needs model but none is attached" "$TMPD/s3.log" || fail "no clear message about the missing model"

echo "== session 4: bad budget (exit 78 from baton run)"
with_params "$TMPD/bad.ipynb" "$(params bogus "$TMPD/job.ini")"
attach s4 baton-bundle "$TMPD/baton-bundle.tar.gz"
attach s4 demo-model "$TMPD"/demo/model/*
attach s4 demo-data "$TMPD"/demo/data/*
session s4 "$TMPD/bad.ipynb"; rc=$?
[ $rc != 0 ] || fail "the notebook should fail when baton run exits 78"
grep -q "baton run exited 78" "$TMPD/s4.log" || fail "want 'baton run exited 78' in the log"
grep -q "budget.*bogus" "$TMPD/s4.log" || fail "want baton's message about the bad budget in the log"
echo "test_kaggle_notebook: ok"
