#!/bin/sh
# tests/reference/test_deberta_train.sh — `baton run` trains, resumes, exports
# and predicts DeBERTa-v2/v3 (model_type "deberta-v2") sequence classifiers
# (issue 22): random DebertaV2ForSequenceClassification models at odd sizes
# (deberta_parity.py's writer: hidden 40, 5 heads, 2 layers, intermediate
# 52), a v3-like one (debv3: log position buckets 16 over 32, p2c|c2p, no
# absolute positions, no token types, rel LayerNorm) and a v2-like one
# (debv2: absolute positions, 2 token types, max_relative_positions 12, c2p
# only), with a Unigram tokenizer trained here on SST-2, on 24 sentence pairs
# (family_train_lib.sh's job and round of proofs, as for RoBERTa):
#  - 30 steps (batch 8 x grad_accum 3, warmup, weight decay, clipping): the
#    train loss and the final weights within 1e-4 of a Transformers loop on
#    the same batches (family_train.py);
#  - the same job killed (SIGTERM, SIGKILL, SIGKILL mid-commit) and resumed
#    again and again ends with model.safetensors byte-identical to the
#    uninterrupted run; with [train] dropout = 0.1 too (v3-like);
#  - archives carry tokenizer.json (format 2); `baton export` writes
#    DeBERTa's tensor names (deberta.*, *_proj) and the tokenizer files, which
#    Transformers reloads (AutoModelForSequenceClassification + AutoTokenizer)
#    with `baton predict`'s logits within 1e-5; predict from the archive and
#    from the export agree exactly; `baton eval` of the job's archive on the
#    24 pairs gives the exported model's Transformers loss within 1e-5
#    (similarity and classify_long: test_family_tasks.sh; token_classify:
#    test_family_token.sh; mlm: test_family_mlm.sh).
set -u
. "$(dirname "$0")/env.sh"
need_python_module torch transformers tokenizers safetensors numpy
need_data
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
. "$(dirname "$0")/../integration/run_lib.sh" # $T, fail, note, brun, interrupt_runs, member_sha, ...
REF=$(cd "$(dirname "$0")" && pwd)
"$PY" "$REF/family_train.py" make "$T" "$BATON_DATA/sst2/train.tsv" debv3 debv2 >"$T/make.log" 2>&1 ||
    fail "making the models: $(tail -n 5 "$T/make.log")"

. "$REF/family_train_lib.sh" # family_job, train_family
for fam in debv3 debv2; do
    train_family $fam
done

# with dropout (hidden, attention probabilities, relative embeddings, pooler,
# classifier): killed and resumed, still byte-identical (the masks are keyed
# by seed, step, micro-batch, layer and site)
family_job "$T/drop-ref.ini" debv3 drop-ref-out "[train]
dropout = 0.1"
family_job "$T/drop.ini" debv3 drop-out "[train]
dropout = 0.1"
brun "$T/drop-ref.log" run "$T/drop-ref.ini"
expect_rc 0 "$T/drop-ref.log" "debv3 with dropout: uninterrupted run"
drop_sha=$(member_sha "$(newest_archive "$T/drop-ref-out")")
[ "$drop_sha" != "$(member_sha "$(newest_archive "$T/debv3-ref-out")")" ] ||
    fail "dropout = 0.1 trained the same weights as dropout 0"
interrupt_runs "$T/drop.ini" "$T/drop-out" 3 "$T/drop.log"
run_to_end "$T/drop.ini" "$T/drop.log"
sha=$(member_sha "$(newest_archive "$T/drop-out")")
[ "$sha" = "$drop_sha" ] || fail "debv3 with dropout: after $INTS interrupts the weights are $sha, the " \
    "uninterrupted run's $drop_sha"
note "debv3 with dropout 0.1: $INTS interrupts ($TERMS SIGTERM, $KILLS SIGKILL, $COMMIT_KILLS mid-commit): = uninterrupted"

# baton eval of the job's archive: the training rows scored (no eval split)
"$BATON" eval "$T/debv3-ref.ini" -s data.eval="$T/train.tsv" >"$T/eval.log" 2>"$T/eval.err" ||
    fail "baton eval debv3-ref.ini: $(cat "$T/eval.log" "$T/eval.err")"
loss=$(awk '$1 == "loss" { print $2 }' "$T/eval.log")
grep -q "^accuracy " "$T/eval.log" && [ -n "$loss" ] || fail "baton eval printed no loss or accuracy: $(cat "$T/eval.log")"
"$PY" "$REF/family_train.py" evalloss debv3 "$T" "$loss" || fail "baton eval's loss against Transformers (above)"

echo "deberta train: ok"
