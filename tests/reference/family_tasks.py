"""tests/reference/family_tasks.py — Transformers' side of
test_family_tasks.sh: `task = similarity` and `task = classify_long` trained
by `baton run` on RoBERTa, DistilBERT, ELECTRA and DeBERTa-v3 (issue 22).

  python3 family_tasks.py data WORK SST2_TRAIN_TSV MODEL_DIR...
      each MODEL_DIR copied to MODEL_DIR-base without its classification head
      (classifier.*, pre_classifier.*, DeBERTa's pooler.*: a pre-trained encoder, whose head baton
      initialises for the task's labels), WORK/sim.tsv (24 sentence pairs with a 0..5 score), WORK/docs.tsv (24
      documents of 1..40 sentences with a label), WORK/sim-in.txt and
      WORK/docs-in.txt (lines to predict: pairs resp. documents of 1 to many
      chunks).
  python3 family_tasks.py check TASK EXPORT_DIR IN_TXT PRED_TSV MODEL_TYPE
      the export reloads with AutoModelForSequenceClassification +
      AutoTokenizer as the family's class; for similarity its logits of the
      pairs (one output, problem_type regression) are `baton predict`'s, for
      classify_long the mean of its logits over the tokenizer's overflowing
      chunks (truncation, max_length, stride, return_overflowing_tokens: the
      recipe of test_export_longdoc_hf.sh) is `baton predict`'s document
      logits; within TOL relative.
"""
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")
import numpy as np  # noqa: E402
import torch  # noqa: E402

TOL = 1e-5


def strip_head(src):
    import shutil
    from safetensors.numpy import load_file, save_file
    dst = src.rstrip("/") + "-base"
    shutil.copytree(src, dst)
    w = load_file(os.path.join(src, "model.safetensors"))
    save_file({k: v for k, v in w.items() if not k.startswith(("classifier.", "pre_classifier.", "pooler."))},
              os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})


def data(work, sst2, *models):
    for m in models:
        strip_head(m)
    with open(sst2, encoding="utf-8") as fh:
        rows = [ln.split("\t") for ln in fh.read().split("\n")[1:] if ln]
    with open(os.path.join(work, "sim.tsv"), "w", encoding="utf-8") as fh:
        fh.write("sentence1\tsentence2\tscore\n")
        for i in range(24):
            fh.write("%s\t%s\t%.1f\n" % (rows[1000 + i][0], rows[2000 + i][0], ((i * 7) % 11) / 2))
    with open(os.path.join(work, "sim-in.txt"), "w", encoding="utf-8") as fh:
        fh.write("a great movie\tan awful film\nshort\tpair\n%s\t%s\n" % (rows[3000][0], rows[3001][0]))
    docs, k, at = [], 3, 0
    for i in range(24):
        docs.append((" ".join(rows[at + j][0] for j in range(k)), rows[at][1]))
        at += k
        k = 1 + (k * 7) % 40
    with open(os.path.join(work, "docs.tsv"), "w", encoding="utf-8") as fh:
        fh.write("text\tlabel\n" + "".join("%s\t%s\n" % d for d in docs))
    with open(os.path.join(work, "docs-in.txt"), "w", encoding="utf-8") as fh:
        fh.write("good\n" + "\n".join(d[0] for d in docs[:6]) + "\n" + "bad film " * 120 + "\n")


def check(task, exp, inp, pred, model_type):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    cfg = json.load(open(os.path.join(exp, "config.json")))
    tok = AutoTokenizer.from_pretrained(exp)
    model = AutoModelForSequenceClassification.from_pretrained(exp, attn_implementation="eager").eval()
    lines = [ln.rstrip("\n") for ln in open(inp, encoding="utf-8")]
    ours = np.array([[float(x) for x in ln.split("\t")] for ln in open(pred)])
    ref, chunks = [], []
    with torch.no_grad():
        for ln in lines:
            if task == "similarity":
                a, _, b = ln.partition("\t")
                ref.append(model(**tok(a, b, truncation=True, return_tensors="pt")).logits[0].numpy())
                continue
            ld = cfg["baton_long_document"]
            enc = tok(ln, truncation=True, max_length=ld["max_seq_len"], stride=ld["stride"],
                      return_overflowing_tokens=True, padding=True, return_tensors="pt")
            enc.pop("overflow_to_sample_mapping", None)
            ref.append(model(**enc).logits.mean(0).numpy())
            chunks.append(enc["input_ids"].shape[0])
    ref = np.array(ref)
    err = float(np.linalg.norm(ours - ref) / np.linalg.norm(ref)) if ours.shape == ref.shape else float("inf")
    ok = err <= TOL and cfg["model_type"] == model_type and cfg["architectures"][0] == type(model).__name__
    if task == "similarity":
        ok &= cfg.get("problem_type") == "regression" and ref.shape[1] == 1
        what = "%d pairs, one output (%s)" % (len(lines), cfg.get("problem_type"))
    else:
        ok &= min(chunks) == 1 and max(chunks) >= 10
        what = "%d documents of %d..%d chunks, mean of chunk logits" % (len(lines), min(chunks), max(chunks))
    print("%-5s %-11s %-13s export -> %s + %s: %s within %.1e of baton predict (tolerance %.0e)"
          % ("ok" if ok else "FAIL", model_type, task, type(model).__name__, type(tok).__name__, what, err, TOL))
    return ok


def main():
    if sys.argv[1] == "data":
        data(*sys.argv[2:])
        return
    sys.exit(0 if check(*sys.argv[2:7]) else 1)


if __name__ == "__main__":
    main()
