#!/bin/sh
# tests/integration/test_archive_cli.sh — baton verify / inspect / export on
# archives written by the archive writer (via build/tests/test_archive_tool:
# a tiny BERT whose contents pass the judgement of `baton verify`; the
# synthetic archives of `commit` do not): exit codes, OK/BAD lines, sha256sum
# and tar interoperability, export layout.
set -eu
TOOL="$BUILD/tests/test_archive_tool"
[ -x "$TOOL" ] || { echo "FAIL: $TOOL not built"; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/baton-cli-XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$TOOL" commit-bert "$T/out" 100 >/dev/null
"$TOOL" commit-bert "$T/out" 200 >/dev/null
A="$T/out/ckpt-000000200.tar"

# verify: files, directories, exit 0 only when all are valid
"$BATON" verify "$A" >"$T/v1" || fail "verify of a good archive failed"
grep -q "^OK   $A: step 200" "$T/v1" || fail "no OK line: $(cat "$T/v1")"
"$BATON" verify "$T/out" >"$T/v2" || fail "verify of a directory failed"
[ "$(grep -c '^OK ' "$T/v2")" = 2 ] || fail "directory: expected 2 OK lines: $(cat "$T/v2")"
(cd "$T/out" && sha256sum -c --status ckpt-000000200.tar.sha256) || fail "sha256sum -c rejects the sidecar"
[ "$(tar tf "$A" | head -1)" = model.safetensors ] || fail "tar does not list model.safetensors first"
[ "$(tar tf "$A" | tail -1)" = MANIFEST.json ] || fail "tar does not list MANIFEST.json last"

# damage one byte in the middle: BAD, exit 65, the other still OK
cp "$A" "$T/good.tar"
size=$(stat -c %s "$A")
printf '\377' | dd of="$A" bs=1 seek=$((size / 2)) conv=notrunc status=none
set +e
"$BATON" verify "$T/out" >"$T/v3" 2>"$T/e3"; rc=$?
set -e
[ $rc = 65 ] || fail "damaged archive: exit $rc, expected 65"
grep -q "^BAD  $A: " "$T/v3" || fail "no BAD line: $(cat "$T/v3")"
grep -q "^OK   $T/out/ckpt-000000100.tar" "$T/v3" || fail "the intact archive is not OK"
cp "$T/good.tar" "$A"

# missing path: 66; empty directory: 66; usage: 64
set +e
"$BATON" verify "$T/nope.tar" >/dev/null 2>&1; rc=$?
[ $rc = 66 ] || fail "missing path: exit $rc, expected 66"
mkdir "$T/empty"
"$BATON" verify "$T/empty" >/dev/null 2>&1; rc=$?
[ $rc = 66 ] || fail "empty directory: exit $rc, expected 66"
"$BATON" verify >/dev/null 2>&1; rc=$?
[ $rc = 64 ] || fail "no arguments: exit $rc, expected 64"
"$BATON" verify --fingerprint '{"lr": 1}' "$A" >"$T/v4" 2>&1; rc=$?
set -e
[ $rc = 65 ] || fail "fingerprint mismatch: exit $rc"
grep -q "lr (archive 2e-5, job 1)" "$T/v4" || fail "fingerprint message: $(cat "$T/v4")"

# inspect
"$BATON" inspect "$A" >"$T/i1" || fail "inspect failed"
grep -q "^step           200" "$T/i1" || fail "inspect: no step: $(cat "$T/i1")"
grep -q "^epoch          1" "$T/i1" || fail "inspect: no epoch"
grep -q "metrics\[1\], last" "$T/i1" || fail "inspect: no metrics"
"$BATON" inspect --json "$A" | grep -q '"format": "baton-checkpoint"' || fail "inspect --json"

# export: an HF model directory; refuses to overwrite without --force
"$BATON" export "$A" "$T/model" >/dev/null || fail "export failed"
for f in config.json model.safetensors vocab.txt tokenizer_config.json; do
    [ -s "$T/model/$f" ] || fail "export: $f missing"
done
grep -q '"0": "neg"' "$T/model/config.json" || fail "export: no id2label"
grep -q '"do_lower_case": true' "$T/model/tokenizer_config.json" || fail "export: do_lower_case"
tar xOf "$A" model.safetensors | cmp -s - "$T/model/model.safetensors" || fail "export: model.safetensors differs from the member"
set +e
"$BATON" export "$A" "$T/model" >/dev/null 2>&1; rc=$?
set -e
[ $rc = 64 ] || fail "export over existing files: exit $rc, expected 64"
"$BATON" export --force "$A" "$T/model" >/dev/null || fail "export --force failed"
if command -v python3 >/dev/null 2>&1 && python3 -c 'import safetensors' 2>/dev/null; then
    python3 -c "
from safetensors.numpy import load_file
import sys
t = load_file(sys.argv[1]); assert len(t) == 25, t.keys()" "$T/model/model.safetensors" || fail "python safetensors cannot load the export"
fi
# the synthetic archives of `commit` pass the checksums but are no model:
# verify judges them as `baton run` would (issue 15)
"$TOOL" commit "$T/syn" 7 2000 >/dev/null
set +e
"$BATON" verify "$T/syn/ckpt-000000007.tar" >"$T/v5" 2>&1; rc=$?
set -e
[ $rc = 65 ] || fail "a synthetic archive (no model): exit $rc, expected 65"
grep -q "^BAD  $T/syn/ckpt-000000007.tar: trainer.json" "$T/v5" || fail "synthetic archive: $(cat "$T/v5")"
echo "archive CLI: all checks passed"
