# tests/integration/kaggle_sim/lib.sh — helpers shared by the Kaggle tests
# (sourced). Sets SIM (this directory), puts the fake `kaggle` first on PATH,
# checks that $BATON has the segment runner (`baton run`), and writes the
# tiny demo job the simulated sessions train.
SIM=$(cd "$(dirname "$0")/kaggle_sim" && pwd)
ROOT=${ROOT:-$(cd "$SIM/../../.." && pwd)}
BATON=${BATON:-$ROOT/baton}
export PATH="$SIM:$PATH"
skip() { echo "SKIP: $*" >&2; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }

command -v python3 >/dev/null || skip "python3 not found (the kaggle simulator and the notebook need it)"
[ -x "$BATON" ] || fail "no baton binary at $BATON"
"$BATON" run --help >/dev/null 2>&1 || fail "$BATON has no working 'baton run'"

# new_tmp: a scratch directory removed at exit (sets TMPD).
new_tmp() {
    TMPD=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    trap 'kill_sessions; kill_bg; chmod -R u+w "$TMPD" 2>/dev/null; rm -rf "$TMPD"' EXIT
}
# Sessions are detached; stop any still running (only ours: by recorded pid).
kill_sessions() {
    [ -n "${KAGGLE_SIM_HOME:-}" ] || return 0
    for f in "$KAGGLE_SIM_HOME"/kernels/*/v*/state.json; do
        [ -f "$f" ] || continue
        grep -q '"running"\|"queued"' "$f" || continue
        v=$(dirname "$f")
        echo "note: stopping simulated session $v" >&2
        [ -f "$v/session.pid" ] && kill -KILL "$(cat "$v/session.pid")" 2>/dev/null
        [ -f "$v/notebook.pgid" ] && kill -KILL -- "-$(cat "$v/notebook.pgid")" 2>/dev/null
    done
    return 0
}
# Background jobs a test started itself (pids in $BG_PIDS).
BG_PIDS=""
kill_bg() {
    for p in $BG_PIDS; do kill "$p" 2>/dev/null; done
    return 0
}

# make_bundle_tarball OUT.tar.gz: a baton-bundle/ holding $BATON, served by
# the host's libraries (test_bundle.sh tests the real bundle and its
# libraries; packing 30 MB of them per session would only cost time here).
make_bundle_tarball() {
    d=$(mktemp -d "$TMPD/bundle.XXXXXX")
    mkdir -p "$d/baton-bundle/lib"
    cp "$BATON" "$d/baton-bundle/baton"
    chmod 755 "$d/baton-bundle/baton"
    echo "test bundle (the build's binary, host libraries)" >"$d/baton-bundle/BUNDLE-INFO"
    tar -C "$d" -czf "$1" baton-bundle
}

# write_demo_job FILE MAX_STEPS: the demo job (`baton demo-init` model and
# data) with @MODEL@/@TRAIN@/@EVAL@ left for the notebook to fill in, as a
# user's job.ini for Kaggle would be. One thread: exact resume needs the same
# thread count in every segment, and one core per run keeps the step rate
# steady on a shared machine.
write_demo_job() {
    cat >"$1" <<JOB
[job]
name = demo
seed = 7

[model]
path = @MODEL@

[data]
train = @TRAIN@
eval = @EVAL@
text_column = sentence
label_column = label
max_seq_len = 32

[train]
max_steps = $2
batch_size = 32
lr = 1e-3
warmup_ratio = 0.1

[runtime]
checkpoint_every = 50
margin = 1s
threads = 1
progress_every = 2s
JOB
}

# local_job JOB.ini OUT.ini DEMO_DIR: the job with the placeholders filled in
# with a local `baton demo-init` directory (for runs outside the simulator).
local_job() {
    sed -e "s|@MODEL@|$3/model|" -e "s|@TRAIN@|$3/data/train.tsv|" -e "s|@EVAL@|$3/data/eval.tsv|" "$1" >"$2"
}

# create_dataset USER/SLUG DIR: publish DIR's files as a new simulated dataset.
create_dataset() {
    python3 -c 'import json,sys; json.dump({"title": sys.argv[1].split("/")[1], "id": sys.argv[1],
        "licenses": [{"name": "CC0-1.0"}]}, open(sys.argv[2] + "/dataset-metadata.json", "w"))' "$1" "$2"
    kaggle datasets create -p "$2" -q >/dev/null || fail "kaggle datasets create $1"
}

# json_get FILE KEY: a top-level value of a JSON file.
json_get() {
    python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; print(json.dumps(v) if isinstance(v,bool) else v)' "$1" "$2"
}

# model_sha ARCHIVE: SHA-256 of model.safetensors inside a checkpoint archive.
model_sha() {
    python3 -c 'import hashlib,sys,tarfile
t=tarfile.open(sys.argv[1]); print(hashlib.sha256(t.extractfile("model.safetensors").read()).hexdigest())' "$1"
}

# ---- running kaggle/baton.ipynb's cells in a simulated /kaggle tree
# (test_kaggle_notebook.sh, test_kaggle_competition.sh)

# with_params OUT.ipynb PYTHON-LINES: the notebook $NB with a cell injected
# after the parameters cell, as kaggle/chain.sh does.
with_params() {
    python3 - "$NB" "$1" "$2" <<'EOF'
import json, sys
nb = json.load(open(sys.argv[1]))
i = next(i for i, c in enumerate(nb["cells"]) if "parameters" in c["metadata"].get("tags", []))
nb["cells"].insert(i + 1, {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                           "source": sys.argv[3]})
json.dump(nb, open(sys.argv[2], "w"))
EOF
}

# session NAME NOTEBOOK: runs the notebook in a /kaggle tree whose inputs the
# caller set up in $TMPD/NAME/kaggle/input. Like Kaggle's /kaggle, the tree
# runs at one fixed path ($TMPD/kaggle) in every session; afterwards it is
# moved back to $TMPD/NAME/kaggle for inspection.
session() {
    r="$TMPD/kaggle"
    mkdir -p "$TMPD/$1/kaggle/working" "$TMPD/$1/kaggle/input" "$TMPD/$1/tmp"
    mv "$TMPD/$1/kaggle" "$r"
    chmod -R a-w "$r/input"
    ( cd "$r/working" && BATON_KAGGLE_ROOT="$r" KAGGLE_KERNEL_RUN_TYPE=Batch TMPDIR="$TMPD/$1/tmp" \
        BATON_SESSION_START="$(date +%s)" python3 "$SIM/run_notebook.py" "$2" ) >"$TMPD/$1.log" 2>&1
    src=$?
    mv "$r" "$TMPD/$1/kaggle"
    sed 's/^/   | /' "$TMPD/$1.log" | tail -n 30
    return $src
}
attach() { # session-name dataset-name files...
    d="$TMPD/$1/kaggle/input/$2"; shift 2
    mkdir -p "$d"
    cp -r "$@" "$d/"
}
