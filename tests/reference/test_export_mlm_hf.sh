#!/bin/sh
# tests/reference/test_export_mlm_hf.sh — `baton export` of a task = mlm
# archive loads in HF Transformers as BertForMaskedLM and computes the same
# evaluation: a short `baton run` of an MLM job on the demo sentences, export
# of its final archive, then BertForMaskedLM.from_pretrained (no unexpected
# keys, nothing missing but the tied decoder, architectures BertForMaskedLM,
# no label map from baton) and, on the eval blocks masked with baton's fixed
# eval masks (the rule re-implemented in test_mlm_masking.py), HF's masked-LM
# loss equals the last eval loss of metrics.jsonl (≤ 1e-4 relative), and the
# perplexity there is exp of it.
set -u
. "$(dirname "$0")/env.sh"
need_python_module torch transformers
T=$(mktemp -d "${TMPDIR:-/tmp}/export-mlm-hf.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$BATON" demo-init "$T/d" >/dev/null || fail "demo-init"
cat >"$T/job.ini" <<JOB
[job]
name = mlmexp
output_dir = out
seed = 11
task = mlm
[model]
path = d/model
[data]
train = d/data/train.tsv
eval = d/data/eval.tsv
text_column = sentence
max_seq_len = 32
limit_train = 640
limit_eval = 120
[train]
max_steps = 20
batch_size = 16
lr = 3e-3
eval_every = 10
[runtime]
threads = 1
progress = none
JOB
"$BATON" run "$T/job.ini" >"$T/run.log" 2>&1 || { cat "$T/run.log"; fail "baton run exited $?"; }
A=$(ls "$T"/out/ckpt-*.tar | sort | tail -n 1)
"$BATON" export "$A" "$T/hf" >"$T/export.log" 2>&1 || { cat "$T/export.log"; fail "baton export"; }
exec "$PY" - "$T/hf" "$T/d/data/eval.tsv" "$T/out/metrics.jsonl" "$(dirname "$0")" <<'PY'
import json, math, sys, warnings
warnings.filterwarnings("ignore")
import torch
from transformers import BertForMaskedLM, BertTokenizerFast
hf, eval_tsv, metrics, here = sys.argv[1:5]
sys.path.insert(0, here)
from test_mlm_masking import mask  # the documented masking rule, checked against test_mlm.c

cfg = json.load(open(f"{hf}/config.json"))
assert cfg.get("architectures") == ["BertForMaskedLM"], f"architectures {cfg.get('architectures')}"
assert "id2label" not in cfg and "problem_type" not in cfg, "baton wrote a classification label map / problem type"
model, info = BertForMaskedLM.from_pretrained(hf, output_loading_info=True)
model.eval()
assert not info["unexpected_keys"], f"unexpected keys {info['unexpected_keys']}"
missing = [k for k in info["missing_keys"] if k != "cls.predictions.decoder.weight"]
assert not missing, f"missing keys {missing}"
assert torch.equal(model.cls.predictions.decoder.weight, model.bert.embeddings.word_embeddings.weight), "decoder not tied"
tok = BertTokenizerFast.from_pretrained(hf)

# eval blocks as baton builds them: lines (limit 120) tokenized, concatenated, cut into 30 + [CLS] [SEP]
S, seed, limit = 32, 11, 120
lines = [l.rstrip("\n").split("\t")[0] for l in list(open(eval_tsv, encoding="utf-8"))[1:] if l.strip()][:limit]
flat = [i for l in lines for i in tok(l, add_special_tokens=False)["input_ids"]]
W = S - 2
blocks = [[tok.cls_token_id] + flat[b * W:(b + 1) * W] + [tok.sep_token_id] for b in range(len(flat) // W)]
specials = {tok.cls_token_id, tok.sep_token_id, tok.pad_token_id}
ids, labels = [], []
for e, blk in enumerate(blocks):
    o, lab = mask(seed, 0xFFFFFFFF, e, blk, None, len(tok), tok.mask_token_id, specials)
    ids.append(o)
    labels.append(lab)
ids, labels = torch.tensor(ids), torch.tensor(labels)
n_masked = int((labels != -100).sum())
with torch.no_grad():
    loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss.item()

ev = [json.loads(l) for l in open(metrics) if '"split":"eval"' in l]
last = ev[-1]
assert last["masked_tokens"] == n_masked, f"masked tokens: baton {last['masked_tokens']}, rule {n_masked}"
rel = abs(last["loss"] - loss) / loss
assert abs(last["perplexity"] - math.exp(last["loss"])) <= 1e-9 * last["perplexity"], "perplexity != exp(loss)"
print(f"export mlm -> HF BertForMaskedLM: {len(blocks)} eval blocks, {n_masked} masked tokens, "
      f"loss baton {last['loss']:.6f} HF {loss:.6f} (relative {rel:.2e}), perplexity {last['perplexity']:.3f}")
assert rel <= 1e-4, f"eval loss differs: relative {rel:.3e} > 1e-4"
print("export mlm hf: ok")
PY
