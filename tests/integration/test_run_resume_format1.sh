#!/bin/sh
# tests/integration/test_run_resume_format1.sh — archives written before
# archives carried the tokenizer (format version 1, job fingerprint with
# "model.vocab.sha256" = SHA-256 of vocab.txt instead of
# "model.tokenizer.sha256") stay resumable: an archive of a run forged back
# into that form (tests/unit/test_archive_forge.c: format=1 and the old
# fingerprint field, every checksum recomputed) verifies, and `baton run`
# resumes from it to weights byte-identical to an uninterrupted run; a
# format-1 archive whose vocab.txt hash differs is refused naming
# model.vocab.sha256 (docs/checkpoints.md, "Format versions").
. "$(dirname "$0")/run_lib.sh"
FORGE="$BUILD/tests/test_archive_forge"
[ -x "$FORGE" ] || fail "$FORGE is not built (make test-unit)"

write_job "$T/ref.ini" train.max_steps=6 job.output_dir=ref-out runtime.checkpoint_every=1 runtime.keep_last=10 \
    runtime.threads=1 data.limit_train=96
write_job "$T/old.ini" train.max_steps=6 job.output_dir=old-out runtime.checkpoint_every=1 runtime.keep_last=10 \
    runtime.threads=1 data.limit_train=96
brun "$T/ref.log" run "$T/ref.ini"
expect_rc 0 "$T/ref.log" "uninterrupted run"
ref_sha=$(member_sha "$(newest_archive "$T/ref-out")")
A3=$(ls "$T"/ref-out/ckpt-*.tar | sort | sed -n 3p)
[ "$(archive_step "$A3")" = 3 ] || fail "expected the step-3 archive, got $A3"
tok=$(tar -xOf "$A3" MANIFEST.json | sed -n 's/.*"model.tokenizer.sha256": *"\([0-9a-f]*\)".*/\1/p')
[ -n "$tok" ] || fail "$A3: no model.tokenizer.sha256 in its fingerprint"
vocab=$(sha256sum <"$T/d/model/vocab.txt" | cut -d' ' -f1)

# the archive as the baton before format 2 wrote it
mkdir "$T/old-out"
"$FORGE" "$A3" "$T/old-out/$(basename "$A3")" format=1 fingerprint.model.tokenizer.sha256=- \
    "fingerprint.model.vocab.sha256=\"$vocab\"" || fail "forging a format-1 archive"
"$BATON" inspect "$T/old-out/$(basename "$A3")" >"$T/inspect.log" 2>&1 || fail "inspect: $(cat "$T/inspect.log")"
grep -q "version 1," "$T/inspect.log" || fail "the forgery is not format 1: $(head -n 3 "$T/inspect.log")"
grep -q "tokenizer.json" "$T/inspect.log" && fail "a format-1 archive lists tokenizer.json"
brun "$T/old.log" run "$T/old.ini"
expect_rc 0 "$T/old.log" "resuming a format-1 archive"
grep -q "resumed from .*ckpt-000000003.tar at step 3" "$T/old.log" || fail "did not resume at step 3: $(cat "$T/old.log")"
sha=$(member_sha "$(newest_archive "$T/old-out")")
[ "$sha" = "$ref_sha" ] || fail "resumed from format 1: weights $sha, the uninterrupted run's $ref_sha"
note "format-1 archive (model.vocab.sha256) resumed at step 3: final weights $sha = uninterrupted"
tar -xOf "$(newest_archive "$T/old-out")" MANIFEST.json | grep -q '"format_version": 2' ||
    fail "the archives after the resume are not format 2"

# a format-1 archive of another vocabulary: refused, naming the old field
rm -rf "$T/old-out"; mkdir "$T/old-out"
"$FORGE" "$A3" "$T/old-out/$(basename "$A3")" format=1 fingerprint.model.tokenizer.sha256=- \
    "fingerprint.model.vocab.sha256=\"$(printf '%064d' 0)\"" || fail "forging"
brun "$T/bad.log" run "$T/old.ini"
expect_rc 78 "$T/bad.log" "a format-1 archive of another vocab.txt"
grep -q "model.vocab.sha256: \"0000" "$T/bad.log" || fail "the refusal does not name model.vocab.sha256: $(cat "$T/bad.log")"
note "format-1 archive of another vocab.txt: exit 78, $(grep -m1 model.vocab "$T/bad.log")"
echo "resume format 1: ok"
