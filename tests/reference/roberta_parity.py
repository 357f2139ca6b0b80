"""tests/reference/roberta_parity.py — RoBERTa / XLM-R in baton against HF.

  python3 roberta_parity.py BATON DRIVER WORKDIR SST2_TRAIN_TSV

1. A byte-level BPE tokenizer (RobertaProcessing) trained with `tokenizers`
   on 400 SST-2 sentences, saved as RobertaTokenizerFast; random
   {Roberta,XLMRoberta}ForSequenceClassification models (hidden 36, 3 heads,
   2 layers, intermediate 52, type_vocab_size 1, pad_token_id 1, every
   parameter perturbed) beside it: `baton predict DIR --format logits` on
   singles and TAB pairs (whose RoBERTa type ids are all 0) equals the
   reference's logits within TOL.
2. The engine driver's logits, loss and every gradient (grad mode) on padded
   batches whose type ids are NOT zero (RoBERTa ignores them) and that hold
   pad ids inside the text (position = cumsum(id != pad) * (id != pad) + pad).
3. 12 AdamW steps (train mode) through engine_parity / train_parity's helpers.
"""
import os
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_parity  # noqa: E402
import train_parity  # noqa: E402
from engine_parity import TOL, make_inputs, rel, t2np  # noqa: E402
from transformers import (RobertaConfig, RobertaForSequenceClassification, RobertaTokenizerFast,  # noqa: E402
                          XLMRobertaConfig, XLMRobertaForSequenceClassification)


def canonical(hf_name):
    """HF RoBERTa name -> baton's canonical name (engine/model_weights.h)."""
    s = hf_name[8:] if hf_name.startswith("roberta.") else hf_name
    if s.startswith("classifier.dense."):
        return "pooler.dense." + s[len("classifier.dense."):]
    if s.startswith("classifier.out_proj."):
        return "classifier." + s[len("classifier.out_proj."):]
    return s


NO_TYPES = [True]  # the model under test reads no type ids (RobertaTokenizerFast returns none: all 0)


def hf_batch(d, first=0, count=None):
    b = ORIG_HF_BATCH(d, first, count)
    if NO_TYPES[0]:
        del b["token_type_ids"]
    return b


ORIG_HF_BATCH = engine_parity.hf_batch
engine_parity.hf_batch = hf_batch
train_parity.hf_batch = hf_batch
engine_parity.canonical = canonical
train_parity.canonical = canonical


def write_model(path, cls, cfg_cls, vocab, seed, num_labels):
    torch.manual_seed(seed)
    cfg = cfg_cls(vocab_size=vocab, hidden_size=36, num_hidden_layers=2, num_attention_heads=3,
                  intermediate_size=52, max_position_embeddings=40, type_vocab_size=1, pad_token_id=1,
                  bos_token_id=0, eos_token_id=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                  initializer_range=0.05, num_labels=num_labels)
    return perturb_and_save(cls(cfg), path)


# ---- helpers the other families' parity scripts share (distilbert_parity, deberta_parity)

def perturb_and_save(model, path, rounds=1):
    """Every parameter + rounds x N(0, 0.05^2) (random-init heads are too
    regular to catch a transposed weight), saved as safetensors."""
    with torch.no_grad():
        for p in model.parameters():
            for _ in range(rounds):
                p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(path, safe_serialization=True)
    return path


def sst2_texts(sst2, lower=False):
    """The first 400 sentences of SST-2's train.tsv (tokenizer training data)."""
    with open(sst2, encoding="utf-8") as fh:
        lines = [ln.split("\t")[0] for ln in fh.read().split("\n")[1:401] if ln]
    return [ln.lower() for ln in lines] if lower else lines


PREDICT_LINES = ["a great movie", "terrible , awful film\twith a second part that goes on and on",
                 "Ünïcode, émoji 🎬 and punctuation!?", "x " * 30, "short", "the end\tof it"]


def baton_logits(baton, work, name, path, lines):
    """`baton predict PATH --format logits` of lines (a TAB makes a pair):
    the logits [len(lines), C], or None after printing the failure."""
    inp = os.path.join(work, name.replace(" ", "_").replace("(", "").replace(")", "") + ".txt")
    with open(inp, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    env = dict(os.environ, OMP_NUM_THREADS="2")
    r = subprocess.run([baton, "predict", path, "--input", inp, "--batch-size", "4", "--format", "logits"],
                       capture_output=True, text=True, env=env)
    if r.returncode != 0:
        print("FAIL  %-26s exit %d: %s" % (name, r.returncode, r.stderr.strip()))
        return None
    return np.array([[float(x) for x in ln.split("\t")] for ln in r.stdout.strip().split("\n")])


def hf_logits(model, tok, lines, max_length):
    """The reference's logits of the same lines, and the longest encoding."""
    model.eval()
    ref, longest = [], 0
    for ln in lines:
        a, _, b = ln.partition("\t")
        enc = tok(a, b if b else None, truncation=True, max_length=max_length, return_tensors="pt")
        longest = max(longest, enc["input_ids"].shape[1])
        with torch.no_grad():
            ref.append(t2np(model(**enc).logits)[0])
    return np.array(ref), longest


def write_tokenizer(path, sst2):
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing
    lines = sst2_texts(sst2)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(lines, vocab_size=420, min_frequency=2,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], show_progress=False)
    bpe._tokenizer.post_processor = RobertaProcessing(("</s>", 2), ("<s>", 0))
    tok = RobertaTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>",
                               sep_token="</s>", cls_token="<s>", unk_token="<unk>", pad_token="<pad>",
                               mask_token="<mask>", model_max_length=38)
    tok.save_pretrained(path)
    return tok


def write_xlmr_tokenizer(path, sst2, vocab_size=1000):
    """XLM-R's tokenizer files as XLMRobertaTokenizerFast saves them: a
    Unigram model trained on SST-2's train text, shaped by tokjson_fixtures'
    xlmr_shape (Precompiled char map + Replace, Metaspace, <mask> the model's
    last piece) with the hub file's RobertaProcessing and Metaspace decoder."""
    import base64
    import json
    import make_charsmap
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from tokjson_fixtures import read_tsv, xlmr_shape
    from transformers import XLMRobertaTokenizerFast
    uni = Tokenizer(models.Unigram())
    uni.pre_tokenizer = pre_tokenizers.Metaspace()
    uni.train_from_iterator(read_tsv(sst2, True), trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], unk_token="<unk>",
        show_progress=False))
    blob = base64.b64encode(make_charsmap.build(make_charsmap.rules())).decode()
    tk = Tokenizer.from_str(json.dumps(xlmr_shape(json.loads(uni.to_str()), blob, mask_in_vocab=True)))
    tk.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True,
                                                     add_prefix_space=True)
    tk.decoder = decoders.Metaspace()
    tok = XLMRobertaTokenizerFast(tokenizer_object=tk, model_max_length=38)
    tok.save_pretrained(path)
    return tok


def run_tiny_job(baton, work, path, rows="good\t1\nbad\t0\n", train="", out="out", job=""):
    """`baton run` of a tiny classify job on the model at path (rows: the
    TSV's lines after its header; train and job: extra [train] and [job]
    lines): the completed process and the data file."""
    data = os.path.join(work, "train.tsv")
    with open(data, "w") as fh:
        fh.write("sentence\tlabel\n" + rows)
    job_path = os.path.join(work, "job.ini")
    with open(job_path, "w") as fh:
        fh.write("[model]\npath = %s\n[data]\ntrain = %s\nmax_seq_len = 16\n[job]\noutput_dir = %s\n%s\n[train]\n%s\n"
                 % (path, data, os.path.join(work, out), job, train))
    return subprocess.run([baton, "run", job_path], capture_output=True, text=True), data


def predict_case(baton, work, name, path, tok, cls):
    ours = baton_logits(baton, work, name, path, PREDICT_LINES)
    if ours is None:
        return False, float("inf")
    ref, _ = hf_logits(cls.from_pretrained(path, attn_implementation="eager"), tok, PREDICT_LINES, 38)
    err = rel(ours, ref)
    ok = ours.shape == ref.shape and err <= TOL
    print("%-5s %-26s %d lines, max rel err %.2e" % ("ok" if ok else "FAIL", name, len(PREDICT_LINES), err))
    return ok, err


def cli_case(baton, work, path, family="roberta"):
    """`baton inspect-model` names the family's head and says it trains;
    `baton run` trains a sequence classifier of it (exit 0; the training
    itself is proven by test_roberta_distilbert_train.sh; its other tasks by
    test_family_tasks/token/mlm.sh); a RoBERTa token
    classifier whose weights hold the sequence head (classifier.out_proj) is
    refused by predict (exit 78), never read as its classifier."""
    r = subprocess.run([baton, "inspect-model", path], capture_output=True, text=True)
    head = {"roberta": "classifier.dense, classifier.out_proj", "distilbert": "pre_classifier, classifier",
            "deberta-v2": "pooler.dense, classifier"}[family]
    support = "support: train (classify, similarity, classify_long, token_classify, mlm), predict, export"
    ok = r.returncode == 0 and ("model_type %s," % family) in r.stdout and \
        ("classification head (%s) yes" % head) in r.stdout and support in r.stdout
    rows = "good\t1\nbad\t0\nmeh\t2\n"  # the models' 3 labels
    r2, data = run_tiny_job(baton, work, path, rows, "max_steps = 2", "out-" + family)
    ok2 = r2.returncode == 0
    # a token classifier of the family with the sequence head's weights: refused, not predicted through them
    import json
    import shutil
    tc = os.path.join(work, family + "-token")
    shutil.copytree(path, tc)
    with open(os.path.join(tc, "config.json")) as fh:
        cfg = json.load(fh)
    cfg["architectures"] = [cfg["architectures"][0].replace("SequenceClassification", "TokenClassification")]
    with open(os.path.join(tc, "config.json"), "w") as fh:
        json.dump(cfg, fh)
    r3 = subprocess.run([baton, "predict", tc, "--input", data], capture_output=True, text=True)
    # DistilBERT's and DeBERTa's token classifiers are their classifier.* (the sequence head's last layer, as
    # Transformers loads it): predict takes it for a token classifier, which tags sentences, not this table
    # (64); RoBERTa's sequence head (classifier.out_proj) is refused (78)
    refusal = {"distilbert": (64, "a token-classification model"),
               "deberta-v2": (64, "a token-classification model")}.get(
                   family, (78, "holds a sequence-classification head"))
    ok2 = ok2 and r3.returncode == refusal[0] and refusal[1] in r3.stderr
    print("%-5s %-26s inspect-model exit %d; run exit %d%s"
          % ("ok" if ok and ok2 else "FAIL", "cli (%s)" % family, r.returncode, r2.returncode,
             (" (" + r2.stderr.strip()[-300:] + ")") if r2.returncode else ""))
    print("      token classifier: predict exit %d: %s" % (r3.returncode, r3.stderr.strip()))
    return ok and ok2, 0.0


def main():
    baton, driver, work, sst2 = sys.argv[1:5]
    rng = np.random.default_rng(22)
    ok_all, worst = True, 0.0

    def note(res):
        nonlocal ok_all, worst
        ok_all &= res[0]
        worst = max(worst, res[1])

    for name, cls, cfg_cls, arch in (("roberta", RobertaForSequenceClassification, RobertaConfig, "roberta"),
                                     ("xlm-roberta", XLMRobertaForSequenceClassification, XLMRobertaConfig,
                                      "xlm-roberta")):
        path = os.path.join(work, name)
        tok = write_tokenizer(path, sst2)
        write_model(path, cls, cfg_cls, len(tok), 31 if arch == "roberta" else 32, 3)
        note(predict_case(baton, work, "predict (%s)" % name, path, tok, cls))
    note(cli_case(baton, work, os.path.join(work, "roberta")))

    engine_parity.CLASSES["seq"] = RobertaForSequenceClassification
    path = write_model(os.path.join(work, "tiny"), RobertaForSequenceClassification, RobertaConfig, 99, 33, 3)
    lens = [12, 5, 9, 16, 3, 7, 14, 10]
    d = make_inputs(rng, lens, 99, "seq", 3, "single")
    for i, L in enumerate(lens):  # pad ids inside the text: HF gives them position pad_token_id
        if L > 4:
            d["ids"][i, L // 2] = 1
    note(engine_parity.grad_case(driver, work, "roberta-grad-single", "seq", path, d, problem="single"))
    path1 = write_model(os.path.join(work, "tiny1"), RobertaForSequenceClassification, RobertaConfig, 99, 34, 1)
    dr = make_inputs(rng, lens, 99, "seq", 1, "regression")
    note(engine_parity.grad_case(driver, work, "roberta-grad-regression", "seq", path1, dr, problem="regression",
                                 num_labels=1))
    dt = make_inputs(rng, [12, 5, 9, 16, 3, 7, 14, 10, 4, 8, 11, 6, 15, 2, 13, 9], 99, "seq", 3, "single")
    note(train_parity.train_case(driver, work, "roberta-train", "seq", path, dt, lr=1e-3, head_lr=0,
                                 layer_decay=1.0, freeze_layers=0, freeze_emb=0, sched="linear", problem="single",
                                 steps=12, accum=2, micro=4, wd=0.01, warmup=3, total=12, clip=1.0))
    print("roberta parity: %s, max relative error %.2e (tolerance %.0e)" % ("PASS" if ok_all else "FAIL", worst,
                                                                            TOL))
    sys.exit(0 if ok_all else 1)


if __name__ == "__main__":
    main()
