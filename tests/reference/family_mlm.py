"""tests/reference/family_mlm.py — Transformers' side of test_family_mlm.sh:
`task = mlm` trained by `baton run` on RoBERTa and DistilBERT (issue 22).

  python3 family_mlm.py make WORK SST2_TRAIN_TSV
      family_token.py's models and data, and for each family WORK/FAMILY-mlm:
      its head-less encoder loaded as AutoModelForMaskedLM (a fresh random
      lm_head / vocab_transform + vocab_layer_norm + vocab_projector, the
      decoder tied to the word embeddings) and saved with the tokenizer.
  python3 family_mlm.py check FAMILY WORK
      baton's blocks of WORK/sim.tsv's first column (lines tokenized without
      specials, concatenated, cut into S - 2 and wrapped in the tokenizer's
      cls/sep: <s>/</s> for RoBERTa) masked by baton's rule
      (test_mlm_masking.mask: epoch e for step e + 1, the blocks being one
      micro-batch; the fixed eval epoch for evaluation; specials
      cls/sep/pad never masked, <mask> the mask id, random ids over the whole
      vocabulary); a Transformers loop on them (family_train.adamw_loop):
      metrics.jsonl's mean train loss of steps 1-10 and 11-12 and the exported
      weights within TOL_TRAIN relative; the export reloads with
      AutoModelForMaskedLM (nothing missing, the decoder tied) and its loss on
      the eval masks is metrics.jsonl's last eval loss within TOL_TRAIN.
"""
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402
import torch  # noqa: E402

TOL_TRAIN = 1e-4
S, SEED, STEPS, WARMUP, LR, WD, CLIP = 16, 11, 12, 2, 2e-3, 0.01, 1.0
EVAL_EPOCH = 0xFFFFFFFF
FAMILIES = ("roberta", "distilbert")


def make(work, sst2):
    import family_token
    from transformers import AutoModelForMaskedLM, AutoTokenizer
    family_token.make(work, sst2)
    for fam in FAMILIES:
        torch.manual_seed(9)
        base = os.path.join(work, fam + "-base")
        AutoModelForMaskedLM.from_pretrained(base).save_pretrained(os.path.join(work, fam + "-mlm"))
        AutoTokenizer.from_pretrained(base).save_pretrained(os.path.join(work, fam + "-mlm"))


def blocks(tok, work):
    with open(os.path.join(work, "sim.tsv"), encoding="utf-8") as fh:
        lines = [ln.split("\t")[0] for ln in fh.read().split("\n")[1:] if ln]
    flat = sum((tok(ln, add_special_tokens=False)["input_ids"] for ln in lines), [])
    w = S - 2
    return [[tok.cls_token_id] + flat[k:k + w] + [tok.sep_token_id] for k in range(0, len(flat) - w + 1, w)]


def masked(tok, blks, epoch):
    from test_mlm_masking import mask
    specials = {tok.cls_token_id, tok.sep_token_id, tok.pad_token_id}
    pairs = [mask(SEED, epoch, e, b, None, len(tok), tok.mask_token_id, specials) for e, b in enumerate(blks)]
    ids = torch.tensor([p[0] for p in pairs])
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, torch.tensor([p[1] for p in pairs])


def check(family, work):
    from family_token import canonical_of
    from family_train import adamw_loop, rel
    from safetensors.numpy import load_file
    from transformers import AutoModelForMaskedLM, AutoTokenizer
    path = os.path.join(work, family + "-mlm")
    tok = AutoTokenizer.from_pretrained(path)
    blks = blocks(tok, work)
    model = AutoModelForMaskedLM.from_pretrained(path, attn_implementation="eager").train()
    def canonical(name):  # the MLM head's LayerNorm (lm_head.layer_norm, vocab_layer_norm) is not decayed
        return canonical_of(family)(name).replace("layer_norm.", "LayerNorm.")
    losses = adamw_loop(model, canonical, lambda step: masked(tok, blks, step), None, STEPS, WARMUP, LR, WD, CLIP)
    recs = [json.loads(ln) for ln in open(os.path.join(work, family + "-ref", "metrics.jsonl"))]
    train = {r["step"]: r["loss"] for r in recs if r.get("split") == "train"}
    ok, worst = True, 0.0
    for a, b in ((1, 10), (11, 12)):  # metrics.jsonl's train records: every 10 steps and the last
        ref = float(np.mean(losses[a - 1:b]))
        worst = max(worst, abs(train.get(b, float("inf")) - ref) / ref)
        print("      %-10s steps %2d-%2d: mean train loss baton %.7f, Transformers %.7f"
              % (family, a, b, train.get(b, float("nan")), ref))
    exp = os.path.join(work, family + "-export")
    ours = load_file(os.path.join(exp, "model.safetensors"))
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    common = [k for k in ours if k in sd and not canonical_of(family)(k).endswith("attention.self.key.bias")]
    werr, wname = max((rel(ours[k], sd[k]), k) for k in common)
    ok &= worst <= TOL_TRAIN and werr <= TOL_TRAIN and all(k in sd for k in ours)
    print("%-5s %-10s %d blocks x %d steps: train loss within %.1e of the Transformers loop, %d exported weights "
          "within %.1e (%s)" % ("ok" if ok else "FAIL", family, len(blks), STEPS, worst, len(common), werr, wname))
    hf, info = AutoModelForMaskedLM.from_pretrained(exp, attn_implementation="eager", output_loading_info=True)
    emb = hf.get_input_embeddings().weight
    tied = hf.get_output_embeddings().weight.data_ptr() == emb.data_ptr()
    x, y = masked(AutoTokenizer.from_pretrained(exp), blks, EVAL_EPOCH)
    with torch.no_grad():
        loss = hf.eval()(**x, labels=y).loss.item()
    last = [r for r in recs if r.get("split") == "eval"][-1]
    e = abs(last["loss"] - loss) / loss
    eok = (e <= TOL_TRAIN and tied and not info["missing_keys"] and not info["unexpected_keys"] and
           last["masked_tokens"] == int((y != -100).sum()))
    ok &= eok
    print("%-5s %-10s export -> %s (decoder tied: %s; loading %s): eval loss on %d masked tokens baton %.6f, "
          "Transformers %.6f (rel %.1e)" % ("ok" if eok else "FAIL", family, type(hf).__name__, tied, info,
                                            last["masked_tokens"], last["loss"], loss, e))
    return ok


if __name__ == "__main__":
    args = sys.argv[2:4]
    if sys.argv[1] == "make":
        make(*args)
    else:
        sys.exit(0 if check(*args) else 1)
