#!/bin/sh
# tests/reference/test_family_mlm.sh — `task = mlm` on RoBERTa and DistilBERT
# (issue 22): random encoders at odd sizes given a random MLM head
# (AutoModelForMaskedLM: lm_head.* resp. vocab_transform / vocab_layer_norm /
# vocab_projector, the decoder tied to the word embeddings; family_mlm.py),
# 12 steps on the blocks of 24 SST-2 sentences (one micro-batch):
#  - train loss and final weights within 1e-4 of a Transformers loop on the
#    same blocks and masks (baton's rule; <s>/</s>/<pad> never masked, <mask>
#    the mask token for RoBERTa's byte-level BPE);
#  - killed and resumed, byte-identical to the uninterrupted run;
#  - the export reloads as RobertaForMaskedLM / DistilBertForMaskedLM with
#    nothing missing, the decoder tied, and the eval loss of metrics.jsonl;
#  - refused (exit 78): whole_word_mask with RoBERTa's tokenizer (no "##"
#    pieces), and task = mlm on ELECTRA.
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

for fam in roberta distilbert; do
    mlm_job "$T/$fam-ref.ini" $fam-mlm $fam-ref
    mlm_job "$T/$fam-out.ini" $fam-mlm $fam-out
    resume_identical "$fam mlm" "$T/$fam-ref.ini" "$T/$fam-ref" "$T/$fam-out.ini" "$T/$fam-out"
    "$BATON" export "$REF_ARCHIVE" "$T/$fam-export" >"$T/export.log" 2>&1 || fail "$fam: export: $(cat "$T/export.log")"
    "$PY" "$REF/family_mlm.py" check $fam "$T" || fail "$fam: against Transformers (above)"
done

mlm_job "$T/wwm.ini" roberta-mlm wwm-out "whole_word_mask = true"
brun "$T/wwm.log" run "$T/wwm.ini"
expect_rc 78 "$T/wwm.log" "whole_word_mask with RoBERTa"
grep -q 'whole_word_mask = true needs a WordPiece vocabulary' "$T/wwm.log" || fail "whole_word_mask: $(cat "$T/wwm.log")"
note "whole_word_mask on RoBERTa: exit 78: $(tail -n 1 "$T/wwm.log")"
mlm_job "$T/el.ini" e/electra-base el-out
brun "$T/el.log" run "$T/el.ini"
expect_rc 78 "$T/el.log" "task = mlm on ELECTRA"
grep -q 'task = mlm with model_type "electra"' "$T/el.log" || fail "ELECTRA mlm refusal: $(cat "$T/el.log")"
note "task = mlm on ELECTRA: exit 78: $(head -n 1 "$T/el.log")"
echo "family mlm: ok"
