# tests/reference/env.sh — sourced by reference tests: finds the Python with
# the references and the real model, or skips (exit 77) with a clear reason.
PY=${BATON_PYTHON:-/usr/bin/python3}
MINILM="$BATON_MODELS/all-MiniLM-L6-v2"
skip() { echo "SKIP: $*" >&2; exit 77; }
need_python_module() { # module...
    for m in "$@"; do
        "$PY" -c "import $m" 2>/dev/null || skip "python module '$m' missing for $PY (run .ci/run's install steps, or: $PY -m pip install $m)"
    done
}
need_minilm() {
    [ -f "$MINILM/model.safetensors" ] || skip "all-MiniLM-L6-v2 not found at $MINILM (run: sh tests/reference/fetch_models.sh)"
}
need_data() {
    [ -f "$BATON_DATA/sst2/train.tsv" ] || skip "shared data not found at $BATON_DATA (expected ../shared/data beside the checkout)"
}
