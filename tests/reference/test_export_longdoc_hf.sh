#!/bin/sh
# tests/reference/test_export_longdoc_hf.sh — a long-document classifier
# (task = classify_long, mean pooling) exported by `baton export` loads in HF
# Transformers as BertForSequenceClassification, and HF reproduces `baton
# predict`'s document logits by the documented recipe: the tokenizer's
# overflowing chunks (truncation, max_length, stride,
# return_overflowing_tokens) -> logits of every chunk -> their mean (the
# classifier is linear, so this equals classifying the mean-pooled vector).
# ≤ 1e-4 relative. Also checks the boundaries: documents of 1, exactly one,
# and many chunks.
set -u
. "$(dirname "$0")/env.sh"
need_python_module torch transformers
T=$(mktemp -d "${TMPDIR:-/tmp}/export-longdoc-hf.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$BATON" demo-init "$T/d" >/dev/null || fail "demo-init"
# documents: 1..40 consecutive sentences of one label
awk -F'\t' 'BEGIN { k = 3; print "text\tlabel" }
    NR > 1 { s[$2] = s[$2] (s[$2] == "" ? "" : " ") $1; n[$2]++
             if (n[$2] >= k) { print s[$2] "\t" $2; s[$2] = ""; n[$2] = 0; k = 1 + (k * 7) % 40 } }' \
    "$T/d/data/train.tsv" | head -n 201 >"$T/docs.tsv"
cat >"$T/job.ini" <<JOB
[job]
name = expld
output_dir = out
task = classify_long
[model]
path = d/model
pooling = mean
[data]
train = docs.tsv
text_column = text
label_column = label
max_seq_len = 24
stride = 5
chunk_batch = 3
[train]
max_steps = 15
batch_size = 4
lr = 2e-3
[runtime]
threads = 1
progress = none
JOB
"$BATON" run "$T/job.ini" >"$T/run.log" 2>&1 || { cat "$T/run.log"; fail "baton run exited $?"; }
A=$(ls "$T"/out/ckpt-*.tar | sort | tail -n 1)
"$BATON" export "$A" "$T/hf" >"$T/export.log" 2>&1 || { cat "$T/export.log"; fail "baton export"; }
tail -n +2 "$T/docs.tsv" | cut -f1 | head -n 30 >"$T/in.txt"
printf '%s\n' "good" "$(printf 'plot %.0s' $(seq 1 22))" "$(printf 'bad film %.0s' $(seq 1 200))" >>"$T/in.txt"
"$BATON" predict "$T/hf" --input "$T/in.txt" --threads 1 --format logits >"$T/ours.tsv" 2>"$T/predict.log" ||
    { cat "$T/predict.log"; fail "baton predict on the exported directory"; }
exec "$PY" - "$T/hf" "$T/in.txt" "$T/ours.tsv" <<'PY'
import sys, warnings
warnings.filterwarnings("ignore")
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
hf, inp, ours_path = sys.argv[1:4]
model = AutoModelForSequenceClassification.from_pretrained(hf).eval()
tok = AutoTokenizer.from_pretrained(hf)
ld = model.config.baton_long_document
assert ld["pooling"] == "mean" and ld["max_chunks"] == 0, ld
texts = [l.rstrip("\n") for l in open(inp, encoding="utf-8")]
ours = torch.tensor([[float(x) for x in l.split("\t")] for l in open(ours_path)])
refs, n_chunks = [], []
with torch.no_grad():
    for t in texts:
        enc = tok(t, truncation=True, max_length=ld["max_seq_len"], stride=ld["stride"],
                  return_overflowing_tokens=True, padding=True, return_tensors="pt")
        enc.pop("overflow_to_sample_mapping", None)
        refs.append(model(**enc).logits.mean(0))
        n_chunks.append(enc["input_ids"].shape[0])
ref = torch.stack(refs)
assert ours.shape == ref.shape, f"shape {tuple(ours.shape)} vs HF {tuple(ref.shape)}"
err = ((ours - ref).norm() / ref.norm()).item()
print(f"longdoc export -> HF: {len(texts)} documents of {min(n_chunks)}..{max(n_chunks)} chunks, "
      f"mean of chunk logits vs baton predict: relative error {err:.2e}")
assert max(n_chunks) >= 10 and min(n_chunks) == 1, n_chunks
assert err <= 1e-4, f"logits differ: relative error {err:.3e} > 1e-4"
print("export longdoc hf: ok")
PY
