# tests/integration/kaggle_sim/lib.sh — helpers shared by the Kaggle tests
# (sourced). Sets SIM (this directory), puts the fake `kaggle` first on PATH,
# and picks the baton the simulated sessions run:
#   the real $BATON when `$BATON run --help` works (the segment runner exists),
#   else baton-standin (which passes other commands to $BATON).
# KAGGLE_TEST_STANDIN=1 forces the stand-in; =0 forbids it (skip instead).
SIM=$(cd "$(dirname "$0")/kaggle_sim" && pwd)
ROOT=${ROOT:-$(cd "$SIM/../../.." && pwd)}
BATON=${BATON:-$ROOT/baton}
export PATH="$SIM:$PATH"
skip() { echo "SKIP: $*" >&2; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }

command -v python3 >/dev/null || skip "python3 not found (the kaggle simulator and the notebook need it)"
[ -x "$BATON" ] || fail "no baton binary at $BATON"

if [ "${KAGGLE_TEST_STANDIN:-}" != 1 ] && "$BATON" run --help >/dev/null 2>&1; then
    RUN_BATON=$BATON; STANDIN=0
    echo "using the real runner: $BATON"
else
    [ "${KAGGLE_TEST_STANDIN:-}" = 0 ] && skip "'baton run' does not exist yet and KAGGLE_TEST_STANDIN=0"
    RUN_BATON=$SIM/baton-standin; STANDIN=1
    export BATON_STANDIN_REAL=$BATON
    echo "note: 'baton run' not in $BATON yet: sessions run tests/integration/kaggle_sim/baton-standin"
fi

# new_tmp: a scratch directory removed at exit (sets TMPD).
new_tmp() {
    TMPD=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    trap 'kill_sessions; chmod -R u+w "$TMPD" 2>/dev/null; rm -rf "$TMPD"' EXIT
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

# make_bundle_tarball OUT.tar.gz: a baton-bundle/ holding the baton the
# sessions run (the stand-in, or the real binary; host libraries serve it —
# test_bundle.sh tests the real bundle's libraries).
make_bundle_tarball() {
    d=$(mktemp -d "$TMPD/bundle.XXXXXX")
    mkdir -p "$d/baton-bundle/lib"
    cp "$RUN_BATON" "$d/baton-bundle/baton"
    chmod 755 "$d/baton-bundle/baton"
    echo "test bundle ($([ $STANDIN = 1 ] && echo stand-in || echo real))" >"$d/baton-bundle/BUNDLE-INFO"
    tar -C "$d" -czf "$1" baton-bundle
}

# create_dataset USER/SLUG DIR: publish DIR's files as a new simulated dataset.
create_dataset() {
    python3 -c 'import json,sys; json.dump({"title": sys.argv[1].split("/")[1], "id": sys.argv[1],
        "licenses": [{"name": "CC0-1.0"}]}, open(sys.argv[2] + "/dataset-metadata.json", "w"))' "$1" "$2"
    kaggle datasets create -p "$2" -q >/dev/null || fail "kaggle datasets create $1"
}

# model_sha ARCHIVE: SHA-256 of model.safetensors inside a checkpoint archive.
model_sha() {
    python3 -c 'import hashlib,sys,tarfile
t=tarfile.open(sys.argv[1]); print(hashlib.sha256(t.extractfile("model.safetensors").read()).hexdigest())' "$1"
}
