"""tests/reference/engine_parity.py — baton's CPU engine against HF Transformers.

For each case a model directory is written by transformers (save_pretrained,
safetensors, all dropout 0), padded batches of different lengths are run
through the C driver (engine_driver grad) and through the HF model (eager
attention, fp32, CPU), and logits, loss and EVERY parameter gradient must
agree to <= TOL relative (||ours - ref|| / ||ref||, max over tensors).

  python3 engine_parity.py DRIVER WORKDIR [MINILM_DIR]

Cases: a random tiny BERT (2 layers, hidden 64, 4 heads, intermediate 128,
vocab 99) for single-label, multi-label, regression, MLM and token
classification (gelu, gelu_new and relu activations among them); with
MINILM_DIR, all-MiniLM-L6-v2 with a fresh head for single-label and MLM.
Imported by train_parity.py for the shared helpers.
"""
import ctypes
import os
import subprocess
import sys

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from transformers import (BertConfig, BertForMaskedLM, BertForSequenceClassification,
                          BertForTokenClassification)

TOL = 1e-4
torch.set_num_threads(2)

CLASSES = {"seq": BertForSequenceClassification, "token": BertForTokenClassification,
           "mlm": BertForMaskedLM}


_CT = {torch.float32: ctypes.c_float, torch.int64: ctypes.c_int64}
_NT = {torch.float32: np.float32, torch.int64: np.int64}


def t2np(t):
    """torch -> numpy through ctypes, independent of the numpy ABI torch was
    built against (torch 1.13 cannot exchange arrays with numpy 2)."""
    t = t.detach().contiguous()
    if t.dtype not in _CT:
        t = t.float()
    n = t.numel()
    a = np.ctypeslib.as_array((_CT[t.dtype] * max(n, 1)).from_address(t.data_ptr()))[:n]
    return a.astype(_NT[t.dtype]).reshape(tuple(t.shape))


def np2t(a, dtype):
    a = np.ascontiguousarray(a, {torch.float32: np.float32, torch.int64: np.int64}[dtype])
    return torch.frombuffer(bytearray(a.tobytes()), dtype=dtype).reshape(a.shape)


def tiny_config(act="gelu", **kw):
    return BertConfig(vocab_size=99, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=128, max_position_embeddings=64, type_vocab_size=2,
                      hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, hidden_act=act,
                      pad_token_id=0, initializer_range=0.05, **kw)


def write_tiny(path, task, seed, act="gelu", **kw):
    """A random tiny model of the task's class, every parameter perturbed so
    LayerNorm weights/biases and heads are not at their init values."""
    torch.manual_seed(seed)
    model = CLASSES[task](tiny_config(act, **kw))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(path, safe_serialization=True)
    return path


def write_minilm(path, minilm, task, seed, **kw):
    torch.manual_seed(seed)
    model = CLASSES[task].from_pretrained(minilm, hidden_dropout_prob=0.0,
                                          attention_probs_dropout_prob=0.0, **kw)
    model.save_pretrained(path, safe_serialization=True)
    return path


def make_inputs(rng, lens, vocab, task, num_labels=2, problem="single", mask_frac=0.3):
    n, smax = len(lens), max(lens)
    ids = np.zeros((n, smax), np.int32)
    tt = np.zeros((n, smax), np.int32)
    for i, L in enumerate(lens):
        ids[i, :L] = rng.integers(1, vocab, L)
        ids[i, 0] = 2
        cut = rng.integers(1, L + 1)
        tt[i, cut:L] = 1
    d = {"ids": ids, "len": np.array(lens, np.int32), "type_ids": tt}
    if task == "seq":
        if problem == "single":
            d["label"] = rng.integers(0, num_labels, n).astype(np.int32)
        elif problem == "multi":
            d["target"] = rng.integers(0, 2, (n, num_labels)).astype(np.float32)
        else:
            d["target"] = rng.standard_normal((n, num_labels)).astype(np.float32)
    elif task == "token":
        tl = np.full((n, smax), -100, np.int32)
        for i, L in enumerate(lens):
            tl[i, :L] = rng.integers(0, num_labels, L)
            tl[i, 0] = -100  # [CLS] ignored, as a tokenizer-aligned dataset does
        d["token_labels"] = tl
    else:
        tl = np.full((n, smax), -100, np.int32)
        for i, L in enumerate(lens):
            pick = rng.random(L) < mask_frac
            pick[min(1, L - 1)] = True
            tl[i, :L][pick] = rng.integers(1, vocab, pick.sum())
        d["token_labels"] = tl
    return d


def hf_batch(d, first=0, count=None):
    count = len(d["len"]) - first if count is None else count
    sl = slice(first, first + count)
    lens = d["len"][sl]
    S = int(lens.max())
    ids = np2t(d["ids"][sl, :S], torch.long)
    mask = (torch.arange(S)[None, :] < np2t(lens, torch.long)[:, None]).long()
    out = {"input_ids": ids * mask, "attention_mask": mask,
           "token_type_ids": np2t(d["type_ids"][sl, :S], torch.long) * mask}
    if "label" in d:
        out["labels"] = np2t(d["label"][sl], torch.long)
    if "target" in d:
        t = np2t(d["target"][sl], torch.float32)
        out["labels"] = t.squeeze(-1) if t.shape[1] == 1 else t
    if "token_labels" in d:
        out["labels"] = np2t(d["token_labels"][sl, :S], torch.long)
    return out


def load_hf(task, path):
    m = CLASSES[task].from_pretrained(path, attn_implementation="eager")
    m.eval()  # dropout is 0 anyway
    return m


def canonical(hf_name):
    return hf_name[5:] if hf_name.startswith("bert.") else hf_name


def run_driver(driver, mode, model_dir, inputs, out, **kw):
    inp = out + ".inputs.safetensors"
    save_file(inputs, inp)
    cmd = [driver, mode, model_dir, inp, out] + ["%s=%s" % kv for kv in kw.items()]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("driver failed (%s): %s\n%s" % (" ".join(cmd), r.stdout, r.stderr))
    return load_file(out)


def rel(a, b, floor=0.0):
    """||a - b|| / max(||b||, floor)."""
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        return float("inf")
    nb = max(np.linalg.norm(b), floor)
    return np.linalg.norm(a - b) / nb if nb > 0 else np.linalg.norm(a)


def grad_case(driver, work, name, task, model_dir, d, problem="auto", num_labels=0):
    out = run_driver(driver, "grad", model_dir, d, os.path.join(work, name + ".safetensors"), task=task,
                     problem=problem, num_labels=num_labels)
    model = load_hf(task, model_dir)
    b = hf_batch(d)
    res = model(**b)
    res.loss.backward()
    logits = t2np(res.logits)
    mask = t2np(b["attention_mask"]).astype(bool)
    if task == "token":
        logits = logits[mask]
    elif task == "mlm":
        logits = logits[t2np(b["labels"]) != -100]
    worst, worst_name, n = 0.0, "", 0
    errs = {"loss": rel(out["loss"], [res.loss.item()]), "logits": rel(out["logits"], logits)}
    params = dict(model.named_parameters())
    for pn, p in params.items():
        key = "grad." + canonical(pn)
        if key not in out:
            sys.exit("%s: driver output lacks %s" % (name, key))
        g = t2np(p.grad) if p.grad is not None else np.zeros(p.shape, np.float32)
        floor = 0.0
        if canonical(pn).endswith("attention.self.key.bias"):
            # softmax is shift-invariant per query row, so d(loss)/d(key bias)
            # is exactly 0 and both sides hold rounding noise: measure it
            # against the scale of the same layer's query-bias gradient
            qn = canonical(pn).replace(".key.", ".query.")
            floor = np.linalg.norm(t2np([p for q, p in params.items() if canonical(q) == qn][0].grad))
        errs[pn] = rel(out[key], g, floor)
        n += 1
    for k, v in errs.items():
        if v > worst:
            worst, worst_name = v, k
    ok = worst <= TOL and n > 0
    print("%-5s %-26s loss %.6f (ref %.6f)  %d grads  max rel err %.2e (%s)"
          % ("ok" if ok else "FAIL", name, float(out["loss"][0]), res.loss.item(), n, worst, worst_name))
    if not ok:
        for k, v in sorted(errs.items(), key=lambda kv: -kv[1])[:8]:
            print("      %-60s %.3e" % (k, v))
    return ok, worst


def predict_case(baton, work, model_dir, minilm):
    """`baton predict` against HF: tokenizer files copied beside the model,
    texts (one a TAB pair) of different lengths, logits within TOL."""
    import shutil
    from transformers import BertTokenizerFast
    for f in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"):
        if os.path.exists(os.path.join(minilm, f)):
            shutil.copy(os.path.join(minilm, f), model_dir)
    lines = ["a great movie", "terrible, awful film\twith a second part that goes on",
             "Ünïcode and punctuation!?", "x " * 40, "short"]
    inp = os.path.join(work, "predict.txt")
    with open(inp, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    env = dict(os.environ, OMP_NUM_THREADS="2")
    r = subprocess.run([baton, "predict", model_dir, "--input", inp, "--batch-size", "2", "--format", "logits"], capture_output=True,
                       text=True, env=env)
    if r.returncode != 0:
        print("FAIL  predict: exit %d: %s" % (r.returncode, r.stderr.strip()))
        return False, float("inf")
    ours = np.array([[float(x) for x in ln.split("\t")] for ln in r.stdout.strip().split("\n")])
    tok = BertTokenizerFast.from_pretrained(model_dir)
    model = load_hf("seq", model_dir)
    ref = []
    for ln in lines:
        a, _, b = ln.partition("\t")
        enc = tok(a, b if b else None, truncation=True, max_length=512, return_tensors="pt")
        with torch.no_grad():
            ref.append(t2np(model(**enc).logits)[0])
    err = rel(ours, np.array(ref))
    ok = ours.shape == (len(lines), 3) and err <= TOL
    print("%-5s %-26s %d lines, max rel err %.2e" % ("ok" if ok else "FAIL", "predict (minilm-single)",
                                                     len(lines), err))
    return ok, err


def main():
    driver, work = sys.argv[1], sys.argv[2]
    minilm = sys.argv[3] if len(sys.argv) > 3 else None
    rng = np.random.default_rng(1234)
    lens = [12, 5, 9, 16, 3, 7]
    ok_all, worst = True, 0.0
    cases = [
        ("tiny-single", "seq", dict(act="gelu", num_labels=3), dict(problem="single", num_labels=3)),
        ("tiny-multi", "seq", dict(act="relu", num_labels=4, problem_type="multi_label_classification"),
         dict(problem="multi", num_labels=4)),
        ("tiny-regression", "seq", dict(act="gelu_new", num_labels=1), dict(problem="regression", num_labels=1)),
        ("tiny-mlm", "mlm", dict(act="gelu"), dict()),
        ("tiny-token", "token", dict(act="gelu_new", num_labels=5), dict(problem="single", num_labels=5)),
    ]
    for i, (name, task, mk, inp) in enumerate(cases):
        path = write_tiny(os.path.join(work, name), task, seed=100 + i, **mk)
        d = make_inputs(rng, lens, 99, task, inp.get("num_labels", 2), inp.get("problem", "single"))
        # regression goes through the AUTO rule (num_labels == 1), like HF with problem_type unset
        prob = "auto" if name == "tiny-regression" else inp.get("problem", "auto")
        ok, w = grad_case(driver, work, name, task, path, d, problem=prob, num_labels=inp.get("num_labels", 0))
        ok_all &= ok
        worst = max(worst, w)
    if minilm:
        mlens = [24, 9, 17, 31]
        p = write_minilm(os.path.join(work, "minilm-single"), minilm, "seq", 7, num_labels=3)
        d = make_inputs(rng, mlens, 30522, "seq", 3, "single")
        ok, w = grad_case(driver, work, "minilm-single", "seq", p, d, problem="single", num_labels=3)
        ok_all &= ok
        worst = max(worst, w)
        if os.environ.get("BATON"):
            ok, w = predict_case(os.environ["BATON"], work, p, minilm)
            ok_all &= ok
            worst = max(worst, w)
        p = write_minilm(os.path.join(work, "minilm-mlm"), minilm, "mlm", 8)
        d = make_inputs(rng, mlens, 30522, "mlm", mask_frac=0.15)
        ok, w = grad_case(driver, work, "minilm-mlm", "mlm", p, d)
        ok_all &= ok
        worst = max(worst, w)
    print("engine parity: %s, max relative error %.2e (tolerance %.0e)" % ("PASS" if ok_all else "FAIL", worst, TOL))
    sys.exit(0 if ok_all else 1)


if __name__ == "__main__":
    main()
