#!/bin/sh
# tests/reference/test_export_token_hf.sh — `baton export` of a task =
# token_classify archive loads in HF Transformers as
# BertForTokenClassification and gives the same logits as `baton predict`: a
# short `baton run` on the demo's CoNLL sentences, export of its final
# archive, then BertForTokenClassification.from_pretrained (no missing or
# unexpected keys, architectures and id2label as trained: "O" first, then
# sorted) and BertTokenizerFast with is_split_into_words=True on the words of
# CoNLL sentences (eval sentences plus edge cases: multi-piece words, unknown
# and accented words, sentences longer than the model's 64 positions). Long
# sentences are cut by predict into windows of whole words overlapping by
# --stride sub-tokens (the rule of docs/tasks.md, re-derived here in Python);
# for every word, HF's logits at its first sub-token in the window that owns
# it equal `baton predict --format logits` (≤ 1e-4 relative; the maximum
# absolute difference is printed); the predicted tags are the argmax.
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
    # one sentence of ~200 words: the words of 12 eval sentences run together
    awk 'BEGIN { RS = ""; FS = "\n" } NR > 41 && NR <= 53 { for (i = 1; i <= NF; i++) print $i }' "$T/d/data/eval.conll"
    echo
} >>"$T/in.conll"
"$BATON" predict "$T/hf" --input "$T/in.conll" --threads 1 --stride 12 --format logits >"$T/ours.tsv" 2>"$T/predict.log" ||
    { cat "$T/predict.log"; fail "baton predict --format logits on the exported directory"; }
"$BATON" predict "$T/hf" --input "$T/in.conll" --threads 1 --stride 12 >"$T/tags.tsv" 2>"$T/predict.log" ||
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
# predict takes the training length from config.json (the job's max_seq_len
# 32) and the stride from --stride; the job's own (the default 64 capped at
# half a window) travels there too
assert model.config.baton_inference == {"max_seq_len": 32, "stride": 15}, f"baton_inference {getattr(model.config, 'baton_inference', None)}"
maxlen = 32
STRIDE = 12

def windows(pieces, max_len, overlap):
    """docs/tasks.md: windows of whole words fitting max_len - 2 pieces; the next
    starts at the earliest word repeating at most `overlap` pieces (one word of
    progress at least) after which the next new word fits; repeated words go
    to the earlier window for the first half (rounded up)."""
    room, n = max(max_len - 2, 1), len(pieces)
    if n == 0:
        return [(0, 0, 0, 0)]
    out, start, own = [], 0, 0
    while True:
        end, used = start, 0
        while end < n and (end == start or used + pieces[end] <= room):
            used += pieces[end]; end += 1
        if end >= n:
            out.append((start, end, own, end))
            return out
        nxt, rep = end, 0
        while nxt - 1 > start and rep + pieces[nxt - 1] <= overlap:
            nxt -= 1; rep += pieces[nxt]
        while nxt < end and rep + pieces[end] > room:
            rep -= pieces[nxt]; nxt += 1
        split = nxt + (end - nxt + 1) // 2
        out.append((start, end, own, split))
        own, start = split, nxt

num = den = 0.0
max_abs, n_words, n_multi, n_windowed, n_win = 0.0, 0, 0, 0, 0
for words, o, ot in zip(sents, ours, ours_tags):
    assert [r[0] for r in o] == words and [r[0] for r in ot] == words, "words differ"
    enc = tok(words, is_split_into_words=True, truncation=False, add_special_tokens=False)
    wid = enc.word_ids()
    ids_all = enc["input_ids"]
    pieces = [0] * len(words)
    first_piece = [None] * len(words)
    for p, w in enumerate(wid):
        if first_piece[w] is None: first_piece[w] = p
        pieces[w] += 1
    wins = windows(pieces, maxlen, STRIDE)
    if len(wins) > 1:
        n_windowed += 1; n_win += len(wins)
    for (b, e, ob, oe) in wins:
        p0 = next((first_piece[w] for w in range(b, e) if first_piece[w] is not None), 0)
        np_ = min(sum(pieces[b:e]), maxlen - 2)
        x = torch.tensor([[tok.cls_token_id] + ids_all[p0:p0 + np_] + [tok.sep_token_id]])
        with torch.no_grad():
            lg = model(input_ids=x, attention_mask=torch.ones_like(x)).logits[0]
        for i in range(ob, oe):
            row, w = o[i][1:], words[i]
            assert len(row) == len(id2label), f"{len(row)} logits for {w}"
            if pieces[i] == 0:
                assert all(v == "nan" for v in row), f"word {i} '{w}' (no pieces) has logits {row}"
                assert ot[i][1] == "O", f"word {i} '{w}' (no pieces) tagged {ot[i][1]}"
                continue
            n_multi += pieces[i] > 1
            bb = torch.tensor([float(v) for v in row])
            r = lg[1 + first_piece[i] - p0]
            num += float(((bb - r) ** 2).sum()); den += float((r ** 2).sum())
            max_abs = max(max_abs, float((bb - r).abs().max()))
            assert ot[i][1] == id2label[int(r.argmax())], f"word '{w}': baton tag {ot[i][1]}, HF argmax {id2label[int(r.argmax())]}"
            n_words += 1
rel = math.sqrt(num / den)
print(f"export token -> HF BertForTokenClassification: {len(sents)} sentences, {n_words} words compared "
      f"({n_multi} of several pieces; {n_windowed} sentences cut into {n_win} windows in all), labels {id2label}, "
      f"logits relative error {rel:.2e}, max abs difference {max_abs:.2e}")
assert n_windowed >= 2 and n_multi >= 2, "the edge cases did not happen"
assert rel <= 1e-4, f"logits differ: relative error {rel:.3e} > 1e-4"
print("export token hf: ok")
PY
