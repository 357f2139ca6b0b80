#!/bin/sh
# tests/integration/test_run_longdoc.sh — `baton run` with task =
# classify_long: documents of 5..45 demo sentences (60..600 tokens, 3..30
# chunks of 32 tokens) are learned (eval accuracy >= 0.9), a job interrupted
# again and again (SIGTERM, SIGKILL, mid-commit SIGKILL) ends byte-identical
# to an uninterrupted one (attention pooling, chunk_batch 4, so most documents
# take the recomputing backward), the long-document keys are in the
# fingerprint, `baton predict` of the job / an export chunks documents as
# training did (same logits), a 50,000-token document trains in the peak
# memory of a 1,000-token one, and bad set-ups are refused with exit 78.
# CPU, the tiny demo model. BATON_TEST_SEED=N replays the interrupt moments.
. "$(dirname "$0")/run_lib.sh"
note "random seed $RL_SEED (BATON_TEST_SEED=$RL_SEED replays it)"

longdoc_docs "$T/d/data/train.tsv" "$T/docs-train.tsv"
longdoc_docs "$T/d/data/eval.tsv" "$T/docs-eval.tsv"
note "$(($(wc -l <"$T/docs-train.tsv") - 1)) training and $(($(wc -l <"$T/docs-eval.tsv") - 1)) evaluation documents"

ld_keys="job.task=classify_long data.train=docs-train.tsv data.eval=docs-eval.tsv data.text_column=text
 data.limit_train=160 data.limit_eval=0 data.max_seq_len=32 data.stride=8 data.chunk_batch=4 model.pooling=attention
 train.epochs=2 train.batch_size=4 train.lr=3e-3 train.eval_every=10 runtime.checkpoint_every=1 runtime.threads=1"

# ---- 1. uninterrupted reference: it learns
start=$(now)
# shellcheck disable=SC2086
write_job "$T/ld-ref.ini" $ld_keys job.output_dir=ld-ref-out
# shellcheck disable=SC2086
write_job "$T/ld.ini" $ld_keys job.output_dir=ld-out
brun "$T/ref.log" run "$T/ld-ref.ini"
expect_rc 0 "$T/ref.log" "uninterrupted classify_long run"
RA=$(newest_archive "$T/ld-ref-out")
is_complete "$RA" || fail "final archive $RA is not marked complete"
ref=$(member_sha "$RA")
grep -q "160 training documents" "$T/ref.log" || fail "expected 160 training documents: $(head -n 3 "$T/ref.log")"
acc=$(grep '"split":"eval"' "$T/ld-ref-out/metrics.jsonl" | tail -n 1 | sed -n 's/.*"accuracy":\([^,}]*\).*/\1/p')
awk -v a="$acc" 'BEGIN { exit !(a >= 0.9) }' || fail "final eval accuracy $acc < 0.9: $(grep eval "$T/ld-ref-out/metrics.jsonl" | cut -c1-160)"
note "reference: $(trainer_field "$RA" step) steps, final accuracy $acc, $(elapsed "$start")s"

# ---- 2. interrupted again and again: the same final weights and evaluations
start=$(now)
interrupt_runs "$T/ld.ini" "$T/ld-out" 6 "$T/ld.log"
note "$INTS interrupts ($TERMS SIGTERM, $KILLS SIGKILL, $COMMIT_KILLS of them mid-commit)"
[ $INTS -ge 4 ] || fail "only $INTS interrupts"
[ $TERMS -ge 1 ] && [ $KILLS -ge 1 ] || fail "want SIGTERM and SIGKILL interrupts (TERM $TERMS, KILL $KILLS)"
run_to_end "$T/ld.ini" "$T/ld.log"
A=$(newest_archive "$T/ld-out")
[ "$(member_sha "$A")" = "$ref" ] || fail "interrupted run's model.safetensors differs from the uninterrupted one's"
grep '"split":"eval"' "$T/ld-out/metrics.jsonl" | sed 's/"time":[^,}]*//' >"$T/ev-int"
grep '"split":"eval"' "$T/ld-ref-out/metrics.jsonl" | sed 's/"time":[^,}]*//' >"$T/ev-ref"
cmp -s "$T/ev-int" "$T/ev-ref" || fail "interrupted run's evaluations differ: $(diff "$T/ev-ref" "$T/ev-int" | head -n 4)"
note "interrupted run: model.safetensors and evaluations identical to the uninterrupted run ($(elapsed "$start")s)"

# ---- 3. the long-document keys are in the fingerprint
for kv in data.stride=4 data.chunk_batch=2 model.pooling=mean data.max_chunks=3; do
    brun "$T/fp.log" run "$T/ld.ini" -s "$kv"
    expect_rc 78 "$T/fp.log" "resume with $kv"
    grep -q "^${kv%%=*}: " "$T/fp.log" || fail "$kv: the change is not listed: $(cat "$T/fp.log")"
done
note "fingerprint: stride, chunk_batch, pooling, max_chunks changes refused"

# ---- 4. predict chunks documents as training did; an export predicts the same
tail -n 8 "$T/docs-eval.tsv" | cut -f1 >"$T/in.txt"
brun "$T/p1.log" predict "$A" --input "$T/in.txt" --format logits --output "$T/p-archive.txt"
expect_rc 0 "$T/p1.log" "predict with the archive"
brun "$T/ex.log" export "$A" "$T/hf"
expect_rc 0 "$T/ex.log" "export"
grep -q '"baton_long_document"' "$T/hf/config.json" || fail "export: config.json has no baton_long_document settings"
brun "$T/p2.log" predict "$T/hf" --input "$T/in.txt" --format logits --output "$T/p-export.txt"
expect_rc 0 "$T/p2.log" "predict with the export"
cmp -s "$T/p-archive.txt" "$T/p-export.txt" || fail "export predicts other logits than its archive"
[ "$(wc -l <"$T/p-export.txt")" = 8 ] || fail "predict: $(wc -l <"$T/p-export.txt") lines for 8 documents"
brun "$T/p3.log" predict "$T/hf" --input "$T/in.txt"
expect_rc 0 "$T/p3.log" "predict tsv"
tail -n 8 "$T/docs-eval.tsv" | cut -f2 >"$T/gold"
right=$(tail -n 8 "$T/p3.log" | cut -f1 | paste - "$T/gold" | awk '$1 == $2' | wc -l)
[ "$right" -ge 7 ] || fail "predict: $right of 8 documents right: $(cat "$T/p3.log")"
note "predict: archive and export give the same logits; $right of 8 documents right"

# ---- 5. memory: a 50,000-token document trains in the peak memory of a 1,000-token one
awk -F'\t' -v n=100 'NR > 1 && NR <= n + 1 { s = s (s == "" ? "" : " ") $1 } END { print "text\tlabel"; print s "\tnegative"; print "short\tpositive" }' \
    "$T/d/data/train.tsv" >"$T/small.tsv"
awk -F'\t' -v n=5200 'NR > 1 && NR <= n + 1 { s = s (s == "" ? "" : " ") $1 } END { print "text\tlabel"; print s "\tnegative"; print "short\tpositive" }' \
    "$T/d/data/train.tsv" >"$T/big.tsv"
ntok() { tail -n 2 "$1" | head -n 1 | cut -f1 | "$BATON" tokenize "$T/d/model" | wc -w; }
small_tok=$(ntok "$T/small.tsv"); big_tok=$(ntok "$T/big.tsv")
[ "$big_tok" -ge 50000 ] || fail "the big document has only $big_tok tokens"
peak() { # FILE — peak resident MB of one training step on FILE (runs in $(...))
    # AddressSanitizer's quarantine keeps up to 256 MB of freed blocks resident,
    # so a sanitized build's peak would track the bytes allocated over the run,
    # not the bytes live at once: measure with the quarantine off
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0"
    write_job "$T/mem.ini" job.task=classify_long "data.train=$(basename "$1")" data.eval= data.text_column=text \
        data.limit_train=0 data.max_seq_len=64 data.stride=16 data.chunk_batch=8 model.pooling=attention \
        train.max_steps=1 train.batch_size=2 runtime.checkpoint_every=0 "job.output_dir=mem-$(basename "$1" .tsv)"
    brun "$T/mem.log" -v run "$T/mem.ini"
    expect_rc 0 "$T/mem.log" "memory run on $1"
    sed -n 's/.*peak resident memory \([0-9.]*\) MB.*/\1/p' "$T/mem.log" | tail -n 1
}
small_mb=$(peak "$T/small.tsv"); big_mb=$(peak "$T/big.tsv")
[ -n "$small_mb" ] && [ -n "$big_mb" ] || fail "no peak memory line in the -v log: $(tail -n 5 "$T/mem.log")"
# the document's own data (text, ids, [chunks, D] vectors) is < 2 MB; activations
# scaling with the document would need ~50x the 8-chunk arena
awk -v s="$small_mb" -v b="$big_mb" 'BEGIN { exit !(b <= s * 1.05 + 4) }' \
    || fail "peak memory grows with the document: $small_tok tokens $small_mb MB, $big_tok tokens $big_mb MB"
note "peak memory: $small_tok-token document $small_mb MB, $big_tok-token document $big_mb MB"

# ---- 6. refused set-ups (exit 78, the key named)
write_job "$T/bad1.ini" $ld_keys data.text_pair_column=text job.output_dir=bad1-out
brun "$T/bad1.log" run "$T/bad1.ini"
expect_rc 78 "$T/bad1.log" "classify_long with a pair column"
grep -q "text_pair_column" "$T/bad1.log" || fail "pair column error does not name the key: $(cat "$T/bad1.log")"
write_job "$T/bad2.ini" $ld_keys model.problem_type=multi_label_classification job.output_dir=bad2-out
brun "$T/bad2.log" run "$T/bad2.ini"
expect_rc 78 "$T/bad2.log" "classify_long multi-label"
grep -q "problem_type" "$T/bad2.log" || fail "multi-label error does not name the key: $(cat "$T/bad2.log")"
write_job "$T/bad3.ini" $ld_keys data.stride=30 job.output_dir=bad3-out
brun "$T/bad3.log" run "$T/bad3.ini"
expect_rc 78 "$T/bad3.log" "stride >= max_seq_len - 2"
note "pair column, multi-label and stride >= max_seq_len - 2 refused with exit 78"
echo "PASS test_run_longdoc"
