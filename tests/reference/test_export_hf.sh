#!/bin/sh
# tests/reference/test_export_hf.sh — what `baton export` writes loads in HF
# Transformers and gives the same logits as `baton predict`: a short `baton
# run` of the demo job (string labels), `baton export` of its final archive,
# then AutoModelForSequenceClassification + AutoTokenizer.from_pretrained on
# the directory (id2label, tokenizer_config.json, vocab) and a comparison with
# `baton predict` on the eval texts and pairs-free lines: ≤ 1e-4 relative,
# the same for `baton predict` on the job, and pipeline("text-classification")
# agrees with `baton predict --format jsonl` (labels and probabilities).
set -u
. "$(dirname "$0")/env.sh"
need_python_module torch transformers
T=$(mktemp -d "${TMPDIR:-/tmp}/export-hf.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$BATON" demo-init "$T/d" >/dev/null || fail "demo-init"
cat >"$T/job.ini" <<JOB
[job]
name = exp
output_dir = out
[model]
path = d/model
[data]
train = d/data/train.tsv
eval = d/data/eval.tsv
text_column = sentence
label_column = label
max_seq_len = 32
limit_train = 640
limit_eval = 64
[train]
max_steps = 20
batch_size = 32
lr = 1e-3
[runtime]
threads = 1
progress = none
JOB
"$BATON" run "$T/job.ini" >"$T/run.log" 2>&1 || { cat "$T/run.log"; fail "baton run exited $?"; }
A=$(ls "$T"/out/ckpt-*.tar | sort | tail -n 1)
"$BATON" export "$A" "$T/hf" >"$T/export.log" 2>&1 || { cat "$T/export.log"; fail "baton export"; }
# inputs: the eval sentences (first column after the header) and a few edge lines
tail -n +2 "$T/d/data/eval.tsv" | cut -f1 | head -n 40 >"$T/in.txt"
printf '%s\n' "A" "UPPER case and accents: café naïve" "$(printf 'word %.0s' $(seq 1 60))" >>"$T/in.txt"
"$BATON" predict "$T/hf" --input "$T/in.txt" --threads 1 --format logits >"$T/ours.tsv" 2>"$T/predict.log" ||
    { cat "$T/predict.log"; fail "baton predict on the exported directory"; }
"$BATON" predict "$T/job.ini" --input "$T/in.txt" --threads 1 --format logits >"$T/ours_job.tsv" 2>"$T/predict.log" ||
    { cat "$T/predict.log"; fail "baton predict on the job"; }
"$BATON" predict "$T/hf" --input "$T/in.txt" --threads 1 --format jsonl >"$T/ours.jsonl" 2>"$T/predict.log" ||
    { cat "$T/predict.log"; fail "baton predict --format jsonl on the exported directory"; }
exec "$PY" - "$T/hf" "$T/in.txt" "$T/ours.tsv" "$T/d/data/train.tsv" "$T/ours_job.tsv" "$T/ours.jsonl" <<'PY'
import json, sys, warnings
warnings.filterwarnings("ignore")
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
from transformers.utils import logging as hf_logging
hf_logging.set_verbosity_error()
hf, inp, ours_path, train, job_path, jsonl_path = sys.argv[1:7]
model = AutoModelForSequenceClassification.from_pretrained(hf).eval()
tok = AutoTokenizer.from_pretrained(hf)
assert tok.is_fast, "tokenizer_config.json should give BertTokenizerFast"
labels = sorted({l.rstrip("\n").split("\t")[1] for l in list(open(train, encoding="utf-8"))[1:]})
id2label = [model.config.id2label[i] for i in range(model.config.num_labels)]
assert id2label == labels, f"id2label {id2label} != the data's labels {labels}"
texts = [l.rstrip("\n") for l in open(inp, encoding="utf-8")]
read = lambda p: torch.tensor([[float(x) for x in l.split("\t")] for l in open(p)])
ours, ours_job = read(ours_path), read(job_path)
# The exported model predicts at the training length (docs/model-directories.md):
# config.json keeps it for baton, tokenizer_config.json's model_max_length for
# Transformers, so truncation=True needs no max_length (the 60-word line is cut).
assert model.config.baton_inference == {"max_seq_len": 32}, f"baton_inference {getattr(model.config, 'baton_inference', None)}"
assert tok.model_max_length == 32, f"tokenizer model_max_length {tok.model_max_length}, expected the training length 32"
rel = lambda a, b: ((a - b).norm() / b.norm()).item()
with torch.no_grad():
    enc = tok(texts, padding=True, truncation=True, return_tensors="pt")
    ref = model(**enc).logits
assert ours.shape == ref.shape, f"shape {tuple(ours.shape)} vs HF {tuple(ref.shape)}"
err, err_job = rel(ours, ref), rel(ours_job, ref)
agree = (ours.argmax(1) == ref.argmax(1)).float().mean().item()
print(f"export -> HF: {len(texts)} texts, {model.config.num_labels} labels {id2label}, "
      f"logits relative error {err:.2e} (predict on the job: {err_job:.2e}), argmax agreement {agree:.3f}")
assert err <= 1e-4, f"logits differ: relative error {err:.3e} > 1e-4"
assert err_job <= 1e-4, f"predict on the job differs from HF on its export: {err_job:.3e} > 1e-4"
# pipeline("text-classification"): every label's score, truncating where the tokenizer says
clf = pipeline("text-classification", model=hf, tokenizer=hf, top_k=None, truncation=True)
ours_p = [json.loads(l) for l in open(jsonl_path, encoding="utf-8")]
worst = 0.0
for t, res, o in zip(texts, clf(texts), ours_p):
    best = max(res, key=lambda r: r["score"])
    assert best["label"] == o["label"], f"{t!r}: pipeline says {best['label']}, baton {o['label']}"
    for r in res:
        worst = max(worst, abs(r["score"] - o["probs"][r["label"]]))
print(f"pipeline(text-classification): same label on all {len(texts)} texts, probabilities within {worst:.1e}")
assert worst <= 1e-5, f"pipeline probabilities differ from baton predict by {worst:.2e}"
# Transformers' plain defaults (no truncation) agree wherever no cut is needed
short = [t for t in texts if len(tok(t)["input_ids"]) <= 32]
with torch.no_grad():
    refd = model(**tok(short, padding=True, return_tensors="pt")).logits
idx = [i for i, t in enumerate(texts) if t in short]
errd = rel(ours[idx], refd)
print(f"defaults without truncation: {len(short)} texts that fit 32 tokens, relative error {errd:.2e}")
assert errd <= 1e-4
print("export hf: ok")
PY
