"""tests/reference/family_train.py — `baton run` of RoBERTa, XLM-R, DistilBERT and
DeBERTa-v2/v3 sequence classifiers against a Transformers training loop
(issue 22). Used by test_roberta_distilbert_train.sh and
test_deberta_train.sh, which run baton (and its kill/resume) between:

  python3 family_train.py make WORK SST2_TRAIN_TSV [FAMILY...]
      the model directories WORK/FAMILY (default roberta and distilbert):
      roberta, distilbert: random RobertaForSequenceClassification /
      DistilBertForSequenceClassification at odd sizes with a byte-level BPE
      resp. WordPiece tokenizer trained here on SST-2 (roberta_parity's and
      distilbert_parity's writers); xlmr: a random
      XLMRobertaForSequenceClassification with XLM-R's Unigram tokenizer.json
      (roberta_parity.write_xlmr_tokenizer); debv3, debv2: random
      DebertaV2ForSequenceClassification, deberta_parity's v3-like and
      v2-like variants with its Unigram tokenizer; WORK/train.tsv (24
      sentence pairs and labels) and WORK/in.txt (lines to predict);
      electra, electra-proj: electra_parity's models (embedding_size 36 / 22).
  python3 family_train.py dirs WORK SST2_TRAIN_TSV FAMILY...
      only the model directories (tests/gpu/proof.sh's families stage).
  python3 family_train.py check FAMILY WORK
      (electra_parity.py check runs it for ELECTRA, with its names)
      a Transformers loop on the same batches (the 24 pairs are one optimizer
      step: batch 8 x grad_accum 3, so the data order inside a step does not
      matter): AdamW with baton's decay rule, linear warmup, clipping;
      metrics.jsonl's mean train loss of steps 1-10, 11-20, 21-30 and the
      exported weights within TOL_TRAIN relative (attention key biases, whose
      gradient is exactly 0, within a bound of the summed learning rates, as
      train_parity.py checks them); the export reloaded with
      AutoModelForSequenceClassification + AutoTokenizer gives `baton
      predict`'s logits (singles and TAB pairs) within TOL_EXPORT.
  python3 family_train.py evalloss FAMILY WORK LOSS
      `baton eval`'s loss on the 24 pairs against the export's Transformers
      loss, within TOL_EXPORT.
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
STEPS, WARMUP, LR, WD, CLIP, MAX_LEN = 30, 3, 1e-3, 0.01, 1.0, 32


# FAMILY (the model directory's name) -> config.json's model_type
MODEL_TYPE = {"roberta": "roberta", "xlmr": "xlm-roberta", "distilbert": "distilbert", "debv3": "deberta-v2",
              "debv2": "deberta-v2"}


def make_model(work, sst2, family):
    path = os.path.join(work, family)
    if family == "roberta":
        import roberta_parity as rp
        from transformers import RobertaConfig, RobertaForSequenceClassification
        tok = rp.write_tokenizer(path, sst2)
        rp.write_model(path, RobertaForSequenceClassification, RobertaConfig, len(tok), 51, 2)
    elif family == "xlmr":
        import roberta_parity as rp
        from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification
        tok = rp.write_xlmr_tokenizer(path, sst2)
        rp.write_model(path, XLMRobertaForSequenceClassification, XLMRobertaConfig, len(tok), 55, 2)
    elif family.startswith("electra"):
        import electra_parity as ep
        tok = ep.write_tokenizer(path, sst2)
        ep.write_model(path, len(tok), 71 if family == "electra" else 72, 2, family)
    elif family == "distilbert":
        import distilbert_parity as dp
        tok = dp.write_tokenizer(path, sst2)
        dp.write_model(path, len(tok), 52, 2)
    else:
        import deberta_parity as dbp
        tok = dbp.write_tokenizer(path, sst2)
        dbp.write_model(path, family[3:], len(tok), 53 if family == "debv3" else 54, 2)


def make(work, sst2, families=None):
    for family in families or ["roberta", "distilbert"]:
        make_model(work, sst2, family)
    write_data(work, sst2)


def write_data(work, sst2):
    """WORK/train.tsv (24 SST-2 sentence pairs and labels) and WORK/in.txt
    (lines to predict: singles, pairs, Unicode, a long one)."""
    with open(sst2, encoding="utf-8") as fh:
        rows = [ln.split("\t") for ln in fh.read().split("\n")[1:] if ln]
    with open(os.path.join(work, "train.tsv"), "w", encoding="utf-8") as fh:
        fh.write("sentence\tsentence2\tlabel\n")
        for i in range(24):
            fh.write("%s\t%s\t%s\n" % (rows[1000 + i][0], rows[2000 + i][0], rows[1000 + i][1]))
    lines = ["a great movie", "terrible , awful film\twith a second part that goes on and on",
             "Ünïcode, émoji 🎬 and punctuation!?", "x " * 40, "short\tpair", rows[3000][0] + "\t" + rows[3001][0]]
    with open(os.path.join(work, "in.txt"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def canonical_of(family):
    if family.startswith("deb"):
        import deberta_parity as dbp
        return dbp.canonical
    import distilbert_parity as dp
    import roberta_parity as rp
    return rp.canonical if family in ("roberta", "xlmr") else dp.canonical


def zero_grad_key_bias(family):
    """Whether d(loss)/d(attention key bias) is exactly 0: softmax is
    shift-invariant and the key bias adds q_i.b_k to every score of row i
    (BERT's attention, DeBERTa's c2p term); DeBERTa's p2c term k_j.pq_r adds
    b_k.pq_r, which varies along the row (the v3-like model has it)."""
    return family != "debv3"


def hf_loop(family, work):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    path = os.path.join(work, family)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, attn_implementation="eager")
    model.train()  # dropout 0 in the config: deterministic
    with open(os.path.join(work, "train.tsv"), encoding="utf-8") as fh:
        rows = [ln.split("\t") for ln in fh.read().split("\n")[1:] if ln]
    enc = tok([r[0] for r in rows], [r[1] for r in rows], truncation=True, max_length=MAX_LEN, padding=True,
              return_tensors="pt")
    labels = torch.tensor([int(r[2]) for r in rows])
    return model, tok, adamw_loop(model, canonical_of(family), enc, labels)


def adamw_loop(model, canonical, enc, labels, steps=STEPS, warmup=WARMUP, lr=LR, wd=WD, clip=CLIP):
    """steps optimizer steps of model on one batch (enc, labels; enc may
    instead be a function of the 0-based step giving both, for batches that
    change by step): AdamW with baton's decay rule (none on biases and
    LayerNorm, by canonical name), linear warmup and decay, clipping; the
    losses of the steps."""
    from train_parity import lr_lambda
    groups = []
    for name, p in model.named_parameters():
        c = canonical(name)
        groups.append({"params": [p], "weight_decay": 0.0 if c.endswith(".bias") or "LayerNorm." in c else wd})
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda("linear", warmup, steps))
    losses = []
    for step in range(steps):
        opt.zero_grad(set_to_none=True)
        x, y = enc(step) if callable(enc) else (enc, labels)
        loss = model(**x, labels=y).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


def train_parity_lr():
    from train_parity import lr_lambda
    return lr_lambda("linear", WARMUP, STEPS)


def rel(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def check(family, work, model_type=None):
    from safetensors.numpy import load_file
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    ok = True
    model, _, losses = hf_loop(family, work)
    recs = [json.loads(ln) for ln in open(os.path.join(work, family + "-ref-out", "metrics.jsonl"))]
    train = {r["step"]: r["loss"] for r in recs if r.get("split") == "train"}
    worst = 0.0
    for s in (10, 20, 30):
        ref = float(np.mean(losses[s - 10:s]))
        e = abs(train.get(s, float("inf")) - ref) / abs(ref)
        worst = max(worst, e)
        print("      %-10s steps %2d-%2d: mean train loss baton %.7f, Transformers %.7f (rel %.1e)"
              % (family, s - 9, s, train.get(s, float("nan")), ref, e))
    ok &= worst <= TOL_TRAIN
    print("%-5s %-10s 30 steps: train loss within %.1e of the Transformers loop (tolerance %.0e)"
          % ("ok" if worst <= TOL_TRAIN else "FAIL", family, worst, TOL_TRAIN))
    exp = os.path.join(work, family + "-export")
    ours = load_file(os.path.join(exp, "model.safetensors"))
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    common = [k for k in ours if k in sd]
    canonical = canonical_of(family)
    # d(loss)/d(key bias) is exactly 0 (softmax is shift-invariant): both
    # sides feed rounding noise to AdamW; only a bound holds (train_parity.py)
    noise = [k for k in common if canonical(k).endswith("attention.self.key.bias") and zero_grad_key_bias(family)]
    werr, wname = max((rel(ours[k], sd[k]), k) for k in common if k not in noise)
    lr_sum = LR * sum(train_parity_lr()(s) for s in range(STEPS))
    ndev = max([float(np.abs(ours[k] - sd[k]).max()) for k in noise] + [0.0]) / lr_sum
    missing = [k for k in ours if k not in sd]
    # every parameter of the Transformers model is in the export (none left at its random init)
    missing += ["%s (Transformers')" % k for k, _ in model.named_parameters() if k not in ours]
    wok = werr <= TOL_TRAIN and not missing and len(common) > 10 and ndev <= 3 and \
        len(noise) == (2 if zero_grad_key_bias(family) else 0)
    ok &= wok
    print("%-5s %-10s exported weights: %d tensors under Transformers' names%s, largest relative difference to the "
          "loop's %.1e (%s); key.bias max |diff| %.2f x sum(lr)"
          % ("ok" if wok else "FAIL", family, len(common), (" (not Transformers': %s)" % missing[:3]) if missing else "",
             werr, wname, ndev))
    # the export reloads in Transformers with baton predict's logits
    cfg = json.load(open(os.path.join(exp, "config.json")))
    tok = AutoTokenizer.from_pretrained(exp)
    hf = AutoModelForSequenceClassification.from_pretrained(exp, attn_implementation="eager").eval()
    lines = [ln.rstrip("\n") for ln in open(os.path.join(work, "in.txt"), encoding="utf-8")]
    ref = []
    for ln in lines:
        a, _, b = ln.partition("\t")
        with torch.no_grad():  # truncation at the training length: tokenizer_config.json's model_max_length
            ref.append(hf(**tok(a, b if b else None, truncation=True, return_tensors="pt")).logits[0].numpy())
    ref = np.array(ref)
    pred = np.array([[float(x) for x in ln.split("\t")] for ln in open(os.path.join(work, family + "-pred.tsv"))])
    e = rel(pred, ref) if pred.shape == ref.shape else float("inf")
    eok = e <= TOL_EXPORT and tok.model_max_length == MAX_LEN and \
        cfg["model_type"] == (model_type or MODEL_TYPE[family])
    ok &= eok
    print("%-5s %-10s export -> %s + %s: %d lines (pairs too), logits within %.1e of baton predict; "
          "model_max_length %d" % ("ok" if eok else "FAIL", family, cfg["architectures"][0], type(tok).__name__,
                                   len(lines), e, tok.model_max_length))
    return ok


def evalloss(family, work, loss):
    """`baton eval`'s loss on the 24 training pairs (loss, as it printed it)
    against the export's in Transformers (eval mode, the same padding)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    exp = os.path.join(work, family + "-export")
    tok = AutoTokenizer.from_pretrained(exp)
    hf = AutoModelForSequenceClassification.from_pretrained(exp, attn_implementation="eager").eval()
    with open(os.path.join(work, "train.tsv"), encoding="utf-8") as fh:
        rows = [ln.split("\t") for ln in fh.read().split("\n")[1:] if ln]
    enc = tok([r[0] for r in rows], [r[1] for r in rows], truncation=True, max_length=MAX_LEN, padding=True,
              return_tensors="pt")
    with torch.no_grad():
        ref = hf(**enc, labels=torch.tensor([int(r[2]) for r in rows])).loss.item()
    e = abs(float(loss) - ref) / abs(ref)
    ok = e <= TOL_EXPORT
    print("%-5s %-10s baton eval loss %s, Transformers %.7f on the export (rel %.1e, tolerance %.0e)"
          % ("ok" if ok else "FAIL", family, loss, ref, e, TOL_EXPORT))
    return ok


def main():
    if sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3], sys.argv[4:])
        return
    if sys.argv[1] == "dirs":
        for family in sys.argv[4:]:
            make_model(sys.argv[2], sys.argv[3], family)
        return
    if sys.argv[1] == "evalloss":
        sys.exit(0 if evalloss(sys.argv[2], sys.argv[3], sys.argv[4]) else 1)
    sys.exit(0 if check(sys.argv[2], sys.argv[3]) else 1)


if __name__ == "__main__":
    main()
