#!/bin/sh
# tests/reference/test_family_mlm.sh — `task = mlm` on RoBERTa, DistilBERT,
# DeBERTa-v3-like and v2-like models and ELECTRA generators (embedding_size
# == and != hidden_size) (issue 22): random encoders at odd sizes given a
# random MLM head (AutoModelForMaskedLM: lm_head.* resp. vocab_transform /
# vocab_layer_norm / vocab_projector, cls.predictions.*,
# generator_predictions.* + generator_lm_head, the decoder tied to the word
# embeddings; family_mlm.py), 12 steps on the blocks of 24 SST-2 sentences
# (one micro-batch):
#  - train loss and final weights within 1e-5 of a Transformers loop on the
#    same blocks and masks (baton's rule; <s>/</s>/<pad> never masked, <mask>
#    the mask token for RoBERTa's byte-level BPE);
#  - killed and resumed, byte-identical to the uninterrupted run;
#  - the export reloads as RobertaForMaskedLM / DistilBertForMaskedLM /
#    DebertaV2ForMaskedLM / ElectraForMaskedLM with nothing missing, the
#    decoder tied, and the eval loss of metrics.jsonl, which `baton eval` of
#    the archive prints too;
#  - DeBERTa's head under the original names of microsoft/deberta-v3-*
#    (lm_predictions.lm_head.*, with an RTD head mask_predictions.* beside
#    it) trains to the same bytes as under cls.predictions.*; a checkpoint
#    holding both spellings is refused;
#  - refused (exit 78): whole_word_mask with RoBERTa's tokenizer (no "##"
#    pieces); an ELECTRA generator whose config says tie_word_embeddings
#    false.
set -u
REF=$(cd "$(dirname "$0")" && pwd)
. "$REF/env.sh"
need_python_module torch transformers tokenizers safetensors numpy
need_data
. "$REF/../integration/run_lib.sh" # $T, fail, note, brun, resume_identical, ...
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
"$PY" "$REF/family_mlm.py" make "$T" "$BATON_DATA/sst2/train.tsv" >"$T/make.log" 2>&1 ||
    fail "making the models and data: $(tail -n 5 "$T/make.log")"

# mlm_job FILE MODEL OUTDIR [EXTRA DATA LINE]
mlm_job() {
    printf '[job]\ntask = mlm\noutput_dir = %s\nseed = 11\n[model]\npath = %s\n[data]\n%s\n%s\n' "$3" "$2" \
        "train = sim.tsv
eval = sim.tsv
text_column = sentence1
max_seq_len = 16" "${4:-}
[train]
max_steps = 12
batch_size = 128
lr = 2e-3
warmup_steps = 2
weight_decay = 0.01
max_grad_norm = 1.0
eval_every = 12
[runtime]
threads = 1
checkpoint_every = 1
keep_last = 2
progress = none" >"$1"
}

for fam in roberta distilbert debv3 debv2 electra electra-proj; do
    mlm_job "$T/$fam-ref.ini" $fam-mlm $fam-ref
    mlm_job "$T/$fam-out.ini" $fam-mlm $fam-out
    resume_identical "$fam mlm" "$T/$fam-ref.ini" "$T/$fam-ref" "$T/$fam-out.ini" "$T/$fam-out"
    "$BATON" export "$REF_ARCHIVE" "$T/$fam-export" >"$T/export.log" 2>&1 || fail "$fam: export: $(cat "$T/export.log")"
    "$PY" "$REF/family_mlm.py" check $fam "$T" || fail "$fam: against Transformers (above)"
    # baton eval of the job's archive: the run's last eval loss (printed to 6 decimals)
    "$BATON" eval "$T/$fam-ref.ini" >"$T/eval.log" 2>&1 || fail "$fam: baton eval: $(cat "$T/eval.log")"
    got=$(awk '$1 == "loss" { print $2 }' "$T/eval.log")
    want=$(tail -n 1 "$T/$fam-ref/metrics.jsonl" | sed -n 's/.*"split":"eval","loss":\([^,]*\),.*/\1/p')
    awk -v a="$got" -v b="$want" 'BEGIN { d = a - b; exit !(b != "" && (d < 0 ? -d : d) <= 1e-6 * b) }' ||
        fail "$fam: baton eval's loss '$got', the run's last eval loss '$want'"
done

mlm_job "$T/wwm.ini" roberta-mlm wwm-out "whole_word_mask = true"
brun "$T/wwm.log" run "$T/wwm.ini"
expect_rc 78 "$T/wwm.log" "whole_word_mask with RoBERTa"
grep -q 'whole_word_mask = true needs a WordPiece vocabulary' "$T/wwm.log" || fail "whole_word_mask: $(cat "$T/wwm.log")"
note "whole_word_mask on RoBERTa: exit 78: $(tail -n 1 "$T/wwm.log")"

# DeBERTa's original head names: the same training, byte for byte; both spellings: refused
mlm_job "$T/lmp.ini" debv3-lmp lmp-out
brun "$T/lmp.log" run "$T/lmp.ini"
expect_rc 0 "$T/lmp.log" "debv3 with lm_predictions.lm_head.*"
[ "$(member_sha "$(newest_archive "$T/lmp-out")")" = "$(member_sha "$(newest_archive "$T/debv3-ref")")" ] ||
    fail "debv3: the lm_predictions.lm_head.* checkpoint trains to other weights than the cls.predictions.* one"
note "debv3: lm_predictions.lm_head.* (and mask_predictions.* ignored) = cls.predictions.*, byte for byte"
mlm_job "$T/both.ini" debv3-both both-out
brun "$T/both.log" run "$T/both.ini"
[ "$RC" != 0 ] && grep -q "spelled twice" "$T/both.log" ||
    fail "debv3 with both head spellings: not refused: $(cat "$T/both.log")"
note "debv3 with cls.predictions.* and lm_predictions.lm_head.*: exit $RC: $(grep -m1 'spelled twice' "$T/both.log")"

# an untied generator: refused, not silently tied
cp -r "$T/electra-mlm" "$T/el-untied"
sed -i 's/^{/{"tie_word_embeddings": false, /' "$T/el-untied/config.json"
mlm_job "$T/el.ini" el-untied el-out
brun "$T/el.log" run "$T/el.ini"
expect_rc 78 "$T/el.log" "task = mlm on an untied ELECTRA generator"
grep -q 'tie_word_embeddings is false' "$T/el.log" || fail "untied ELECTRA refusal: $(cat "$T/el.log")"
note "task = mlm on an untied ELECTRA generator: exit 78: $(grep -m1 tie_word_embeddings "$T/el.log")"
echo "family mlm: ok"
