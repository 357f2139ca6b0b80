"""tests/reference/family_token.py — Transformers' side of
test_family_token.sh: `task = token_classify` trained by `baton run` on
RoBERTa, DistilBERT, ELECTRA and DeBERTa-v3 (issue 22).

  python3 family_token.py make WORK SST2_TRAIN_TSV
      family_train.py's, electra_parity.py's and family_tasks.py's models and
      data (WORK/roberta-base, WORK/distilbert-base, WORK/e/electra-base,
      WORK/debv3-base (deberta_parity's v3-like model, Unigram + Metaspace):
      head-less encoders), WORK/train.conll (16 SST-2 sentences of at most 6 words, none longer than one window, tags O /
      B-LONG / I-LONG by word length) and WORK/in.conll (those and edge
      cases: accents, hyphens, a word of several pieces); for each family
      WORK/FAMILY-tok: its head-less encoder loaded as AutoModelForTokenClassification with a fresh
      random classifier for the labels in baton's order ("O" first, then
      sorted) and saved with the tokenizer.
  python3 family_token.py check FAMILY WORK
      a Transformers loop on the same batch (the 16 sentences are one
      micro-batch: one mean over the labelled first sub-tokens, as baton's)
      with AdamW (baton's decay rule), linear warmup and clipping; the
      words are encoded with is_split_into_words=True (RoBERTa:
      add_prefix_space=True, the leading "Ġ" baton gives each word; DeBERTa:
      Metaspace's "▁" before each word);
      metrics.jsonl's mean train loss of steps 1-10 and 11-20 and the
      exported weights within TOL_TRAIN relative; the export reloads with
      AutoModelForTokenClassification, and its logits at each word's first
      sub-token are `baton predict --format logits`'s within TOL_EXPORT.
"""
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402
import torch  # noqa: E402

TOL_TRAIN, TOL_EXPORT = 1e-4, 1e-5
STEPS, WARMUP, LR, WD, CLIP, MAX_LEN = 20, 2, 2e-3, 0.01, 1.0, 32
LABELS = ["O", "B-LONG", "I-LONG"]


def tags_of(words):
    out = []
    for i, w in enumerate(words):
        if len(w) < 6:
            out.append("O")
        else:
            out.append("I-LONG" if i and out[-1] != "O" else "B-LONG")
    return out


def make(work, sst2):
    import electra_parity
    import family_tasks
    import family_train
    from transformers import AutoModelForTokenClassification, AutoTokenizer
    family_train.make(work, sst2, ["roberta", "distilbert", "debv3"])
    electra_parity.make(os.path.join(work, "e"), sst2)
    bases = {"roberta": "roberta", "distilbert": "distilbert", "electra": os.path.join("e", "electra"),
             "debv3": "debv3"}
    family_tasks.data(work, sst2, *(os.path.join(work, b) for b in bases.values()))
    with open(sst2, encoding="utf-8") as fh:
        rows = [ln.split("\t") for ln in fh.read().split("\n")[1:] if ln]
    # at most 6 words of at most 28 characters: at most 30 pieces with the specials, one window of 32
    sents = [s for s in (r[0].split()[:6] for r in rows[4000:4100]) if s and len("".join(s)) <= 28][:16]
    with open(os.path.join(work, "train.conll"), "w", encoding="utf-8") as fh:
        fh.write("".join("".join("%s %s\n" % wt for wt in zip(s, tags_of(s))) + "\n" for s in sents))
    edge = [["Café", "very-good", "filmmusic", "zzzz", "film"], ["a"]]
    with open(os.path.join(work, "in.conll"), "w", encoding="utf-8") as fh:
        fh.write("".join("".join("%s O\n" % w for w in s) + "\n" for s in sents[:6] + edge))
    for fam, b in bases.items():
        base = os.path.join(work, b + "-base")
        torch.manual_seed(7)
        m = AutoModelForTokenClassification.from_pretrained(base, num_labels=len(LABELS),
                                                            id2label=dict(enumerate(LABELS)),
                                                            label2id={k: i for i, k in enumerate(LABELS)})
        dst = os.path.join(work, fam + "-tok")
        m.save_pretrained(dst, safe_serialization=True)
        AutoTokenizer.from_pretrained(base).save_pretrained(dst)


def canonical_of(family):
    if family == "electra":
        import electra_parity
        return electra_parity.canonical
    import family_train
    return family_train.canonical_of(family)


def conll(path):
    out, cur = [], []
    for ln in open(path, encoding="utf-8"):
        p = ln.split()
        if not p:
            if cur:
                out.append(cur)
            cur = []
        else:
            cur.append(p)
    return out + ([cur] if cur else [])


def tokenizer(path, family):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(path, **({"add_prefix_space": True} if family == "roberta" else {}))


def encode(tok, sents, tags=None):
    enc = tok([[w[0] for w in s] for s in sents], is_split_into_words=True, truncation=True, max_length=MAX_LEN,
              padding=True, return_tensors="pt")
    if tags is None:
        return enc, None
    labels = torch.full(enc["input_ids"].shape, -100)
    for b, s in enumerate(sents):
        prev = None
        for p, w in enumerate(enc.word_ids(b)):
            if w is not None and w != prev:
                labels[b, p] = LABELS.index(s[w][-1])
            prev = w
    return enc, labels


def hf_loop(family, work):
    from family_train import adamw_loop
    from transformers import AutoModelForTokenClassification
    path = os.path.join(work, family + "-tok")
    model = AutoModelForTokenClassification.from_pretrained(path, attn_implementation="eager")
    model.train()  # dropout 0 in the configs: deterministic
    enc, labels = encode(tokenizer(path, family), conll(os.path.join(work, "train.conll")), True)
    assert int(enc["attention_mask"].sum(1).max()) < MAX_LEN, "a sentence does not fit one window"
    return model, adamw_loop(model, canonical_of(family), enc, labels, STEPS, WARMUP, LR, WD, CLIP)


def check(family, work):
    from family_train import rel, zero_grad_key_bias
    from safetensors.numpy import load_file
    from transformers import AutoModelForTokenClassification
    ok = True
    model, losses = hf_loop(family, work)
    recs = [json.loads(ln) for ln in open(os.path.join(work, family + "-ref", "metrics.jsonl"))]
    train = {r["step"]: r["loss"] for r in recs if r.get("split") == "train"}
    worst = 0.0
    for s in (10, 20):
        ref = float(np.mean(losses[s - 10:s]))
        worst = max(worst, abs(train.get(s, float("inf")) - ref) / abs(ref))
        print("      %-10s steps %2d-%2d: mean train loss baton %.7f, Transformers %.7f"
              % (family, s - 9, s, train.get(s, float("nan")), ref))
    ok &= worst <= TOL_TRAIN
    print("%-5s %-10s %d steps: train loss within %.1e of the Transformers loop (tolerance %.0e)"
          % ("ok" if worst <= TOL_TRAIN else "FAIL", family, STEPS, worst, TOL_TRAIN))
    exp = os.path.join(work, family + "-export")
    ours = load_file(os.path.join(exp, "model.safetensors"))
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    canonical = canonical_of(family)
    # d(loss)/d(key bias) is exactly 0 but for DeBERTa's p2c term: only a bound holds (family_train.py)
    skip = "attention.self.key.bias" if zero_grad_key_bias(family) else "\0"
    common = [k for k in ours if k in sd and not canonical(k).endswith(skip)]
    werr, wname = max((rel(ours[k], sd[k]), k) for k in common)
    missing = [k for k in ours if k not in sd]
    wok = werr <= TOL_TRAIN and not missing and len(common) > 10
    ok &= wok
    print("%-5s %-10s exported weights: %d tensors under Transformers' names%s, largest relative difference to the "
          "loop's %.1e (%s)" % ("ok" if wok else "FAIL", family, len(common),
                                (" (not Transformers': %s)" % missing[:3]) if missing else "", werr, wname))
    cfg = json.load(open(os.path.join(exp, "config.json")))
    hf, info = AutoModelForTokenClassification.from_pretrained(exp, attn_implementation="eager",
                                                               output_loading_info=True)
    hf.eval()
    sents = conll(os.path.join(work, "in.conll"))
    enc, _ = encode(tokenizer(exp, family), sents)
    with torch.no_grad():
        lg = hf(**enc).logits.numpy()
    ref, pred = [], []
    pred_blocks = conll(os.path.join(work, family + "-pred.tsv"))
    for b, s in enumerate(sents):
        first = {}
        for p, w in enumerate(enc.word_ids(b)):
            if w is not None and w not in first:
                first[w] = p
        assert [r[0] for r in pred_blocks[b]] == [w[0] for w in s], "words differ"
        for w in range(len(s)):
            ref.append(lg[b, first[w]])
            pred.append([float(x) for x in pred_blocks[b][w][1:]])
    e = rel(np.array(pred), np.array(ref))
    eok = (e <= TOL_EXPORT and not info["missing_keys"] and not info["unexpected_keys"] and
           [cfg["id2label"][str(i)] for i in range(len(LABELS))] == LABELS)
    ok &= eok
    print("%-5s %-10s export -> %s: %d words, logits at first sub-tokens within %.1e of baton predict; "
          "loading %s" % ("ok" if eok else "FAIL", family, cfg["architectures"][0], len(ref), e, info))
    return ok


def main():
    mode, args = sys.argv[1], sys.argv[2:4]
    if mode == "make":
        return make(*args)
    sys.exit(0 if check(*args) else 1)


if __name__ == "__main__":
    main()
