#!/bin/sh
# tests/integration/test_kaggle_chain.sh — kaggle/chain.sh against the Kaggle
# simulator (tests/integration/kaggle_sim/kaggle): the demo job runs across
# sessions with a hard session limit, and ends byte-identical to a run that
# was never interrupted.
#
# The chain: session 1 runs its budget and publishes; session 2 is configured
# to overrun (budget 60 s, limit 20 s): Kaggle kills it and its output is lost
# entirely; session 3 must resume from session 1's published output (so only
# session 2's own work is lost); session 4 finishes: three sessions that count,
# the third finishing. Then: SHA-256 of model.safetensors in the final archive
# equals that of an uninterrupted run of the same job.
#
# Env: BATON, ROOT (tests/run.sh). KAGGLE_SIM_LIMIT (20) and
# KAGGLE_TEST_BUDGET (15s) scale the sessions; with the real runner, set
# KAGGLE_TEST_STEPS so that the job needs about 2.5 budgets of training.
set -u
. "$(dirname "$0")/kaggle_sim/lib.sh"
new_tmp test_kaggle_chain

export KAGGLE_SIM_HOME="$TMPD/sim" KAGGLE_SIM_USER=simuser
export KAGGLE_SIM_LIMIT=${KAGGLE_SIM_LIMIT:-20} KAGGLE_SIM_DATASET_DELAY=1
# Sizes (stand-in: 0.25 s a step): a session trains ~13 s of its 15 s budget,
# the job needs ~36 s, so the first three sessions do not finish it and the
# overrunning one (with ~23 s left to do, limit 20 s) cannot finish before
# the kill. For the real runner pick KAGGLE_TEST_STEPS the same way:
# 2 x (budget - overhead) < job time < 3 x (budget - overhead), and
# job time - (budget - overhead) > limit.
budget=${KAGGLE_TEST_BUDGET:-15s}
steps=${KAGGLE_TEST_STEPS:-146}
export BATON_STANDIN_STEP_S=0.25
# Session 2 overruns: its budget is longer than the session limit.
export KAGGLE_SIM_SESSION_ENV_2="'BATON_RUN_ARGS=-s runtime.budget=60s'"

# Inputs, published the way a user would: bundle, model, data.
"$BATON" demo-init "$TMPD/demo" >/dev/null || fail "baton demo-init"
mkdir -p "$TMPD/ds-bundle" "$TMPD/ds-model" "$TMPD/ds-data"
make_bundle_tarball "$TMPD/ds-bundle/baton-bundle.tar.gz"
cp "$TMPD"/demo/model/* "$TMPD/ds-model/"
cp "$TMPD"/demo/data/* "$TMPD/ds-data/"
create_dataset simuser/baton-bundle "$TMPD/ds-bundle"
create_dataset simuser/demo-model "$TMPD/ds-model"
create_dataset simuser/demo-data "$TMPD/ds-data"

# The job (@MODEL@/@TRAIN@/@EVAL@ are filled in by the notebook on "Kaggle").
# Keys as in runner/job.h (docs/jobs.md).
cat >"$TMPD/job.ini" <<EOF
[job]
name = demo
seed = 7

[model]
path = @MODEL@

[data]
train = @TRAIN@
eval = @EVAL@

[train]
max_steps = $steps

[runtime]
checkpoint_every = 10
margin = 1s
EOF

start=$(date +%s)
bash "$ROOT/kaggle/chain.sh" --kernel simuser/baton-demo --state simuser/baton-demo-state \
    --dataset simuser/baton-bundle --dataset simuser/demo-model --dataset simuser/demo-data \
    --job "$TMPD/job.ini" --budget "$budget" --no-gpu --poll 1 --max-sessions 8 --max-failures 2 \
    --work "$TMPD/chain" >"$TMPD/chain.out" 2>&1
rc=$?
cat "$TMPD/chain.out"
echo "chain.sh exited $rc after $(( $(date +%s) - start )) s"
for v in "$KAGGLE_SIM_HOME"/kernels/simuser__baton-demo/v*; do
    echo "== $(basename "$v"): $(cat "$v/state.json" | tr -d '\n ')"
    tail -n 4 "$v/notebook.log" | sed 's/^/   | /'
done
[ $rc = 0 ] || fail "chain.sh exited $rc (want 0: complete)"

k="$KAGGLE_SIM_HOME/kernels/simuser__baton-demo"
nsess=$(ls -d "$k"/v* | wc -l)
[ "$nsess" -ge 3 ] || fail "only $nsess sessions: the job should have needed several"
python3 - "$k" "$STANDIN" <<'EOF' || fail "session records"
import json, sys, glob, os
k, standin = sys.argv[1], sys.argv[2] == "1"
st = {int(os.path.basename(v)[1:]): json.load(open(v + "/state.json")) for v in glob.glob(k + "/v*")}
pushes = [json.loads(l) for l in open(os.path.join(k, "../../pushes.log"))]
assert "simuser/baton-demo-state" not in pushes[0]["dataset_sources"], "session 1 must start without state"
assert all("simuser/baton-demo-state" in p["dataset_sources"] for p in pushes[1:]), "later sessions attach the state"
assert st[2].get("output_lost"), f"session 2 should have overrun the limit and lost its output: {st[2]}"
m2 = st[2]["mounted"].get("simuser/baton-demo-state")
m3 = st[3]["mounted"].get("simuser/baton-demo-state")
assert m2 == 1 and m3 == 1, f"session 3 must mount the state session 1 published (v1), got {m3}"
assert all(st[n]["status"] == "complete" for n in st if n != 2), f"sessions other than 2 complete: {st}"
if standin:
    assert len(st) == 4, f"stand-in chain: want 4 sessions (1, overrun, 3, 4 finishing), got {len(st)}"
print("session records ok:", {n: st[n]["status"] for n in sorted(st)})
EOF

# Session 3 resumed from session 1's step, not from anything session 2 did.
s1=$(python3 -c 'import json,sys,glob; print(json.load(open(glob.glob(sys.argv[1]+"/**/status.json",recursive=True)[0]))["step"])' "$TMPD/chain/sessions/1")
grep -q "step $s1\b\|step=$s1\b\|($s1)\|$s1" "$k/v3/notebook.log" || fail "session 3's log does not mention resuming at step $s1"
[ $STANDIN = 1 ] && { grep -q "resuming from .*(step $s1)" "$k/v3/notebook.log" || fail "session 3 did not resume from step $s1"; }
echo "session 1 ended at step $s1; session 3 resumed there"

# The published final state, and the uninterrupted reference.
final=$(ls "$TMPD"/chain/latest/ckpt-*.tar | tail -n 1)
[ -n "$final" ] || fail "no final archive in the published state"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["complete"] is True, s' "$TMPD/chain/latest/status.json" ||
    fail "published status.json is not complete"
sed -e "s|@MODEL@|$TMPD/demo/model|" -e "s|@TRAIN@|$TMPD/demo/data/train.tsv|" -e "s|@EVAL@|$TMPD/demo/data/eval.tsv|" \
    "$TMPD/job.ini" >"$TMPD/ref.ini"
BATON_STANDIN_STEP_S=0.02 "$RUN_BATON" run "$TMPD/ref.ini" -s job.output_dir="$TMPD/ref" -s runtime.budget=10m >"$TMPD/ref.log" 2>&1
rc=$?
[ $rc = 0 ] || { cat "$TMPD/ref.log"; fail "uninterrupted run exited $rc"; }
ref=$(ls "$TMPD"/ref/ckpt-*.tar | tail -n 1)
[ "$(basename "$final")" = "$(basename "$ref")" ] || fail "final step differs: $(basename "$final") vs $(basename "$ref")"
a=$(model_sha "$final"); b=$(model_sha "$ref")
echo "chained:       $a  $(basename "$final")"
echo "uninterrupted: $b  $(basename "$ref")"
[ "$a" = "$b" ] || fail "weights differ between the chained and the uninterrupted run"
echo "test_kaggle_chain: ok"
