"""tests/reference/electra_parity.py — ELECTRA discriminators in baton against HF.

  python3 electra_parity.py parity BATON DRIVER WORKDIR SST2_TRAIN_TSV
      1. A WordPiece vocab.txt (specials, letters, ##letters and the 300 most
         frequent words of 400 SST-2 sentences) saved as ElectraTokenizerFast;
         two random ElectraForSequenceClassification models at odd sizes
         (hidden 36, 3 heads, 2 layers, intermediate 52, 2 token types, every
         parameter perturbed): "electra" with embedding_size == hidden_size
         (no embeddings_project), "electra-proj" with embedding_size 22 (the
         tables 22 wide, embeddings_project 22 -> 36) and hidden_act
         gelu_new (the head's GELU stays erf, as ElectraClassificationHead's
         get_activation("gelu")): `baton predict DIR --format logits` on
         singles and TAB pairs (token types 1 after the first [SEP]) within
         TOL_PREDICT relative of the reference.
      2. The engine driver's logits, loss and every gradient (embeddings_project
         included) on padded batches with token types, of the sequence
         classifier and of the generator (ElectraForMaskedLM: logits of the
         masked tokens), and 12 AdamW steps, within engine_parity.TOL.
      3. `baton inspect-model` (model_type, embedding_size, the head, the
         projection's tensors, support line); `baton predict` refuses an
         ElectraForTokenClassification directory holding the sequence head
         (similarity and classify_long: test_family_tasks.sh; mlm, the
         generator head: test_family_mlm.sh).
  python3 electra_parity.py make WORK SST2_TRAIN_TSV
      WORK/electra and WORK/electra-proj (as above, 2 labels), WORK/train.tsv
      (24 sentence pairs) and WORK/in.txt, for test_electra_parity.sh's
      `baton run` part (family_train.py's make, with these models).
  python3 electra_parity.py check FAMILY WORK
      family_train.py's check with ELECTRA's names: 30 steps of `baton run`
      against a Transformers loop (loss and weights within 1e-4), the export
      reloaded in Transformers with `baton predict`'s logits within 1e-5.
"""
import collections
import json
import re
import os
import shutil
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_parity  # noqa: E402
import roberta_parity  # noqa: E402  (installs hf_batch with a NO_TYPES switch)
import train_parity  # noqa: E402
from engine_parity import TOL, make_inputs, rel  # noqa: E402
from transformers import (ElectraConfig, ElectraForMaskedLM, ElectraForSequenceClassification,  # noqa: E402
                          ElectraTokenizerFast)

TOL_PREDICT = 1e-5
roberta_parity.NO_TYPES[0] = False  # ELECTRA reads token types, as BERT


def canonical(hf_name):
    """HF ELECTRA name -> baton's canonical name (engine/model_weights.h)."""
    s = hf_name[8:] if hf_name.startswith("electra.") else hf_name
    if s.startswith("classifier.dense."):
        return "pooler.dense." + s[len("classifier.dense."):]
    if s.startswith("classifier.out_proj."):
        return "classifier." + s[len("classifier.out_proj."):]
    for hf, ours in (("generator_predictions.", "cls.predictions.transform."),
                     ("generator_lm_head.bias", "cls.predictions.bias")):  # the generator's MLM head
        if s.startswith(hf):
            return ours + s[len(hf):]
    return s


engine_parity.canonical = canonical
train_parity.canonical = canonical

SIZES = {"electra": dict(embedding_size=36), "electra-proj": dict(embedding_size=22, hidden_act="gelu_new")}


def write_model(path, vocab, seed, num_labels, kind, cls=ElectraForSequenceClassification):
    torch.manual_seed(seed)
    cfg = ElectraConfig(vocab_size=vocab, hidden_size=36, num_hidden_layers=2, num_attention_heads=3,
                        intermediate_size=52, max_position_embeddings=40, type_vocab_size=2, pad_token_id=0,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, initializer_range=0.05,
                        num_labels=num_labels, **SIZES[kind])
    return roberta_parity.perturb_and_save(cls(cfg), path)


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
    tok = ElectraTokenizerFast(vocab_file=vf, model_max_length=38)
    tok.save_pretrained(path)
    return tok


def predict_case(baton, work, kind, path, tok):
    name = "predict (%s)" % kind
    ours = roberta_parity.baton_logits(baton, work, name, path, roberta_parity.PREDICT_LINES)
    if ours is None:
        return False, float("inf")
    model = ElectraForSequenceClassification.from_pretrained(path, attn_implementation="eager")
    ref, _ = roberta_parity.hf_logits(model, tok, roberta_parity.PREDICT_LINES, 38)
    err = rel(ours, ref)
    ok = ours.shape == ref.shape and err <= TOL_PREDICT
    print("%-5s %-26s %d lines (singles and pairs), max rel err %.2e (tolerance %.0e)"
          % ("ok" if ok else "FAIL", name, len(roberta_parity.PREDICT_LINES), err, TOL_PREDICT))
    return ok, err


def inspect_case(baton, kind, path):
    r = subprocess.run([baton, "inspect-model", path], capture_output=True, text=True)
    want = ["config: model_type electra, architecture ElectraForSequenceClassification",
            "embedding_size           %d" % SIZES[kind]["embedding_size"],
            "heads: classification head (classifier.dense, classifier.out_proj) yes",
            "masked-LM head (generator_predictions, generator_lm_head) no",
            "support: train (classify, similarity, classify_long, token_classify, mlm), predict, export"]
    missing = [w for w in want if w not in r.stdout]
    if kind == "electra-proj":  # the projection's tensors: [D,E] and [D], canonical names of their own
        for name, shape in (("weight", "[36,22]"), ("bias", "[36]")):
            if not re.search(r"electra\.embeddings_project\.%s +F32 +%s .* embeddings_project\.%s$"
                             % (name, re.escape(shape), name), r.stdout, re.M):
                missing.append("embeddings_project." + name)
    ok = r.returncode == 0 and not missing
    print("%-5s %-26s exit %d%s" % ("ok" if ok else "FAIL", "inspect-model (%s)" % kind, r.returncode,
                                    ("; missing: %s\n%s" % (missing, r.stdout + r.stderr)) if missing else ""))
    return ok, 0.0


def refusal_case(baton, work, path):
    """a token classifier whose weights hold the sequence head is refused by
    predict (exit 78), never read as its classifier (every task trains:
    task = mlm, the generator head, is test_family_mlm.sh's)."""
    ok = True
    tc = os.path.join(work, "electra-token")
    shutil.copytree(path, tc)
    with open(os.path.join(tc, "config.json")) as fh:
        cfg = json.load(fh)
    cfg["architectures"] = ["ElectraForTokenClassification"]
    with open(os.path.join(tc, "config.json"), "w") as fh:
        json.dump(cfg, fh)
    inp = os.path.join(work, "one.txt")
    with open(inp, "w") as fh:
        fh.write("good\n")
    r = subprocess.run([baton, "predict", tc, "--input", inp], capture_output=True, text=True)
    good = r.returncode == 78 and "holds a sequence-classification head" in r.stderr
    ok &= good
    print("%-5s %-26s exit %d: %s" % ("ok" if good else "FAIL", "predict token classifier", r.returncode,
                                     r.stderr.strip()))
    return ok, 0.0


def parity(baton, driver, work, sst2):
    rng = np.random.default_rng(24)
    ok_all, worst = True, 0.0

    def note(res):
        nonlocal ok_all, worst
        ok_all &= res[0]
        worst = max(worst, res[1])

    for seed, kind in ((61, "electra"), (62, "electra-proj")):
        path = os.path.join(work, kind)
        tok = write_tokenizer(path, sst2)
        write_model(path, len(tok), seed, 3, kind)
        note(predict_case(baton, work, kind, path, tok))
        note(inspect_case(baton, kind, path))
    note(refusal_case(baton, work, os.path.join(work, "electra-proj")))

    engine_parity.CLASSES["seq"] = ElectraForSequenceClassification
    lens = [12, 5, 9, 16, 3, 7, 14, 10]
    for seed, kind in ((63, "electra"), (64, "electra-proj")):
        path = write_model(os.path.join(work, "tiny-" + kind), 99, seed, 3, kind)
        d = make_inputs(rng, lens, 99, "seq", 3, "single")
        note(engine_parity.grad_case(driver, work, kind + "-grad-single", "seq", path, d, problem="single"))
    # the generator's MLM head (dense [E,D], gelu whatever hidden_act says, LayerNorm over E, tied decoder)
    engine_parity.CLASSES["mlm"] = ElectraForMaskedLM
    for seed, kind in ((66, "electra"), (67, "electra-proj")):
        path = write_model(os.path.join(work, "tiny-gen-" + kind), 99, seed, 3, kind, ElectraForMaskedLM)
        note(engine_parity.grad_case(driver, work, kind + "-grad-mlm", "mlm", path, make_inputs(rng, lens, 99, "mlm")))
    path1 = write_model(os.path.join(work, "tiny1"), 99, 65, 1, "electra-proj")
    dr = make_inputs(rng, lens, 99, "seq", 1, "regression")
    note(engine_parity.grad_case(driver, work, "electra-proj-grad-regr", "seq", path1, dr, problem="regression",
                                 num_labels=1))
    dt = make_inputs(rng, [12, 5, 9, 16, 3, 7, 14, 10, 4, 8, 11, 6, 15, 2, 13, 9], 99, "seq", 3, "single")
    note(train_parity.train_case(driver, work, "electra-proj-train", "seq", os.path.join(work, "tiny-electra-proj"),
                                 dt, lr=1e-3, head_lr=0, layer_decay=1.0, freeze_layers=0, freeze_emb=0,
                                 sched="linear", problem="single", steps=12, accum=2, micro=4, wd=0.01, warmup=3,
                                 total=12, clip=1.0))
    print("electra parity: %s, max relative error %.2e" % ("PASS" if ok_all else "FAIL", worst))
    return ok_all


def make(work, sst2):
    import family_train
    family_train.make(work, sst2, ["electra", "electra-proj"])


def main():
    mode = sys.argv[1]
    if mode == "parity":
        sys.exit(0 if parity(*sys.argv[2:6]) else 1)
    if mode == "make":
        make(sys.argv[2], sys.argv[3])
        return
    import family_train
    family_train.canonical_of = lambda family: canonical
    sys.exit(0 if family_train.check(sys.argv[2], sys.argv[3], model_type="electra") else 1)


if __name__ == "__main__":
    main()
