#!/bin/sh
# tests/reference/test_export_token_hf.sh — `baton export` of a task =
# token_classify archive loads in HF Transformers as
# BertForTokenClassification and gives the same logits as `baton predict`: a
# short `baton run` on the demo's CoNLL sentences, export of its final
# archive, then BertForTokenClassification.from_pretrained (no missing or
# unexpected keys, architectures and id2label as trained: "O" first, then
# sorted) and BertTokenizerFast with is_split_into_words=True on the words of
# CoNLL sentences (eval sentences plus edge cases: multi-piece words, unknown
# and accented words, a sentence longer than the model's 64 positions). For
# every word, HF's logits at its first sub-token equal `baton predict
# --format logits` (≤ 1e-4 relative; the maximum absolute difference is
# printed); words cut by baton's whole-word truncation print nan and are
# exactly those beyond the words that fit; the predicted tags are the argmax.
set -u
. "$(dirname "$0")/env.sh"
need_python_module torch transformers
T=$(mktemp -d "${TMPDIR:-/tmp}/export-token-hf.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$BATON" demo-init "$T/d" >/dev/null || fail "demo-init"
cat >"$T/job.ini" <<JOB
[job]
name = tokexp
output_dir = out
seed = 5
task = token_classify
[model]
path = d/model
[data]
train = d/data/train.conll
eval = d/data/eval.conll
max_seq_len = 32
limit_train = 640
limit_eval = 100
[train]
max_steps = 30
batch_size = 16
lr = 3e-3
eval_every = 15
[runtime]
threads = 1
progress = none
JOB
"$BATON" run "$T/job.ini" >"$T/run.log" 2>&1 || { cat "$T/run.log"; fail "baton run exited $?"; }
A=$(ls "$T"/out/ckpt-*.tar | sort | tail -n 1)
"$BATON" export "$A" "$T/hf" >"$T/export.log" 2>&1 || { cat "$T/export.log"; fail "baton export"; }
# inputs: 40 eval sentences (CoNLL, the tags are ignored) and edge cases
awk 'BEGIN { RS = ""; FS = "\n" } NR > 1 && NR <= 41 { print $0 "\n" }' "$T/d/data/eval.conll" >"$T/in.conll"
{
    printf 'very-good X O\nCafé X O\nFILM X O\nthe X O\nfilmmusic X O\nzzzz X O\n\n'
    i=0; while [ $i -lt 70 ]; do echo "good X O"; i=$((i + 1)); done; echo
    printf 'a X O\nvery,good,film X O\n\n'
} >>"$T/in.conll"
"$BATON" predict "$T/hf" --input "$T/in.conll" --threads 1 --format logits >"$T/ours.tsv" 2>"$T/predict.log" ||
    { cat "$T/predict.log"; fail "baton predict --format logits on the exported directory"; }
"$BATON" predict "$T/hf" --input "$T/in.conll" --threads 1 >"$T/tags.tsv" 2>"$T/predict.log" ||
    { cat "$T/predict.log"; fail "baton predict on the exported directory"; }
exec "$PY" - "$T/hf" "$T/in.conll" "$T/ours.tsv" "$T/tags.tsv" "$T/d/data/train.conll" <<'PY'
import json, math, sys, warnings
warnings.filterwarnings("ignore")
import torch
from transformers import BertForTokenClassification, BertTokenizerFast
hf, inp, ours_path, tags_path, train = sys.argv[1:6]

def blocks(path, split=None):
    out, cur = [], []
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if not line.strip():
            if cur: out.append(cur)
            cur = []
        elif not line.startswith("-DOCSTART-"):
            cur.append(line.split(split) if split else line)
    if cur: out.append(cur)
    return out

cfg = json.load(open(f"{hf}/config.json"))
assert cfg.get("architectures") == ["BertForTokenClassification"], f"architectures {cfg.get('architectures')}"
tags = sorted({t[-1] for s in blocks(train, " ") for t in s} - {"O"})
want = ["O"] + tags
model, info = BertForTokenClassification.from_pretrained(hf, output_loading_info=True)
model.eval()
assert not info["unexpected_keys"] and not info["missing_keys"], f"loading: {info}"
id2label = [model.config.id2label[i] for i in range(model.config.num_labels)]
assert id2label == want, f"id2label {id2label} != the data's tags {want}"
tok = BertTokenizerFast.from_pretrained(hf)
assert tok.is_fast

sents = [[t[0] for t in s] for s in blocks(inp, " ")]
ours = [[l.split("\t") for l in s] for s in blocks(ours_path)]
ours_tags = [[l.split("\t") for l in s] for s in blocks(tags_path)]
assert len(ours) == len(sents) == len(ours_tags), f"{len(ours)} / {len(ours_tags)} sentences out, {len(sents)} in"
maxlen = min(512, tok.model_max_length, model.config.max_position_embeddings)
num = den = 0.0
max_abs, n_words, n_cut, n_multi = 0.0, 0, 0, 0
for words, o, ot in zip(sents, ours, ours_tags):
    assert [r[0] for r in o] == words and [r[0] for r in ot] == words, "words differ"
    enc = tok(words, is_split_into_words=True, truncation=False, return_tensors="pt")
    wid = enc.word_ids()
    # baton keeps whole words while all their pieces fit in maxlen - 2
    fit, used = 0, 0
    pieces = [sum(1 for w in wid if w == i) for i in range(len(words))]
    for k in pieces:
        if used + k > maxlen - 2: break
        used += k; fit += 1
    ids = enc["input_ids"][0].tolist()
    keep = 1 + used
    x = torch.tensor([ids[:keep] + [tok.sep_token_id]])
    with torch.no_grad():
        lg = model(input_ids=x, attention_mask=torch.ones_like(x)).logits[0]
    first = {}
    for p, w in enumerate(wid[:keep]):
        if w is not None and w not in first: first[w] = p
    for i, w in enumerate(words):
        row = o[i][1:]
        assert len(row) == len(id2label), f"{len(row)} logits for {w}"
        if i >= fit or pieces[i] == 0:
            assert all(v == "nan" for v in row), f"word {i} '{w}' (not kept) has logits {row}"
            assert ot[i][1] == "O", f"word {i} '{w}' (not kept) tagged {ot[i][1]}"
            n_cut += 1
            continue
        n_multi += pieces[i] > 1
        b = torch.tensor([float(v) for v in row])
        r = lg[first[i]]
        num += float(((b - r) ** 2).sum()); den += float((r ** 2).sum())
        max_abs = max(max_abs, float((b - r).abs().max()))
        assert ot[i][1] == id2label[int(r.argmax())], f"word '{w}': baton tag {ot[i][1]}, HF argmax {id2label[int(r.argmax())]}"
        n_words += 1
rel = math.sqrt(num / den)
print(f"export token -> HF BertForTokenClassification: {len(sents)} sentences, {n_words} words compared "
      f"({n_multi} of several pieces, {n_cut} cut by truncation), labels {id2label}, "
      f"logits relative error {rel:.2e}, max abs difference {max_abs:.2e}")
assert n_cut >= 8 and n_multi >= 2, "the edge cases did not happen"
assert rel <= 1e-4, f"logits differ: relative error {rel:.3e} > 1e-4"
print("export token hf: ok")
PY
