"""tests/reference/distilbert_parity.py — DistilBERT in baton against HF.

  python3 distilbert_parity.py BATON DRIVER WORKDIR SST2_TRAIN_TSV

1. A WordPiece vocab.txt (specials, letters, ##letters and the 300 most
   frequent words of 400 SST-2 sentences) saved as DistilBertTokenizerFast;
   a random DistilBertForSequenceClassification (dim 36, 3 heads, 2 layers,
   hidden_dim 52, every parameter perturbed): `baton predict DIR --format
   logits` on singles and TAB pairs equals the reference within TOL.
2. The engine driver's logits, loss and every gradient (grad mode), on
   batches whose type ids are NOT zero (DistilBERT has none: ignored).
3. 12 AdamW steps (train mode); inspect-model; `baton run` trains it and
   its predict of a token classifier (roberta_parity.cli_case).
Shares roberta_parity's helpers (predict_case, cli_case, hf_batch).
"""
import collections
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_parity  # noqa: E402
import roberta_parity  # noqa: E402  (installs the hf_batch without token types)
import train_parity  # noqa: E402
from engine_parity import TOL, make_inputs  # noqa: E402
from transformers import DistilBertConfig, DistilBertForSequenceClassification, DistilBertTokenizerFast  # noqa: E402

LAYER = {"attention.q_lin.": "attention.self.query.", "attention.k_lin.": "attention.self.key.",
         "attention.v_lin.": "attention.self.value.", "attention.out_lin.": "attention.output.dense.",
         "sa_layer_norm.": "attention.output.LayerNorm.", "ffn.lin1.": "intermediate.dense.",
         "ffn.lin2.": "output.dense.", "output_layer_norm.": "output.LayerNorm."}


def canonical(hf_name):
    """HF DistilBERT name -> baton's canonical name (engine/model_weights.h)."""
    s = hf_name[11:] if hf_name.startswith("distilbert.") else hf_name
    if s.startswith("pre_classifier."):
        return "pooler.dense." + s[len("pre_classifier."):]
    if s.startswith("transformer.layer."):
        n, rest = s[len("transformer.layer."):].split(".", 1)
        for k, v in LAYER.items():
            if rest.startswith(k):
                return "encoder.layer.%s.%s%s" % (n, v, rest[len(k):])
    return s


engine_parity.canonical = canonical
train_parity.canonical = canonical


def write_model(path, vocab, seed, num_labels):
    torch.manual_seed(seed)
    cfg = DistilBertConfig(vocab_size=vocab, dim=36, n_layers=2, n_heads=3, hidden_dim=52,
                           max_position_embeddings=40, dropout=0.0, attention_dropout=0.0,
                           seq_classif_dropout=0.0, initializer_range=0.05, pad_token_id=0, num_labels=num_labels)
    return roberta_parity.perturb_and_save(DistilBertForSequenceClassification(cfg), path)


def write_tokenizer(path, sst2):
    lines = roberta_parity.sst2_texts(sst2, lower=True)
    words = collections.Counter(w for ln in lines for w in ln.split() if w.isalpha())
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ",", ".", "!", "?", "'"] + letters + \
        ["##" + c for c in letters] + [w for w, _ in words.most_common(300) if len(w) > 1]
    os.makedirs(path, exist_ok=True)
    vf = os.path.join(path, "vocab.txt")
    with open(vf, "w", encoding="utf-8") as fh:
        fh.write("\n".join(vocab) + "\n")
    tok = DistilBertTokenizerFast(vocab_file=vf, model_max_length=38)
    tok.save_pretrained(path)
    return tok


def main():
    baton, driver, work, sst2 = sys.argv[1:5]
    rng = np.random.default_rng(23)
    ok_all, worst = True, 0.0

    def note(res):
        nonlocal ok_all, worst
        ok_all &= res[0]
        worst = max(worst, res[1])

    path = os.path.join(work, "distilbert")
    tok = write_tokenizer(path, sst2)
    write_model(path, len(tok), 41, 3)
    note(roberta_parity.predict_case(baton, work, "predict (distilbert)", path, tok,
                                     DistilBertForSequenceClassification))
    note(roberta_parity.cli_case(baton, work, path, "distilbert"))

    engine_parity.CLASSES["seq"] = DistilBertForSequenceClassification
    path = write_model(os.path.join(work, "tiny"), 99, 43, 3)
    lens = [12, 5, 9, 16, 3, 7, 14, 10]
    d = make_inputs(rng, lens, 99, "seq", 3, "single")
    note(engine_parity.grad_case(driver, work, "distilbert-grad-single", "seq", path, d, problem="single"))
    path1 = write_model(os.path.join(work, "tiny1"), 99, 44, 2)
    dm = make_inputs(rng, lens, 99, "seq", 2, "multi")
    note(engine_parity.grad_case(driver, work, "distilbert-grad-multi", "seq", path1, dm, problem="multi"))
    dt = make_inputs(rng, [12, 5, 9, 16, 3, 7, 14, 10, 4, 8, 11, 6, 15, 2, 13, 9], 99, "seq", 3, "single")
    note(train_parity.train_case(driver, work, "distilbert-train", "seq", path, dt, lr=1e-3, head_lr=0,
                                 layer_decay=1.0, freeze_layers=0, freeze_emb=0, sched="linear", problem="single",
                                 steps=12, accum=2, micro=4, wd=0.01, warmup=3, total=12, clip=1.0))
    print("distilbert parity: %s, max relative error %.2e (tolerance %.0e)"
          % ("PASS" if ok_all else "FAIL", worst, TOL))
    sys.exit(0 if ok_all else 1)


if __name__ == "__main__":
    main()
