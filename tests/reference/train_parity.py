"""tests/reference/train_parity.py — 30 optimizer steps of baton's CPU engine
against torch.optim.AdamW + LambdaLR (HF's warmup schedules) +
clip_grad_norm_, the way HF Trainer runs them: gradient accumulation 2 (each
micro-batch loss / 2), padding to the longest sequence of each micro-batch,
weight decay except on biases and LayerNorm weights, a head learning rate
apart from the encoder's, layer-wise LR decay, and frozen parts. Every weight
must agree to <= 1e-4 relative after the 30 steps. Then, with dropout on, the
same seed must give byte-identical weights and a different seed must not.

  python3 train_parity.py DRIVER WORKDIR [MINILM_DIR]
"""
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from engine_parity import (TOL, canonical, hf_batch, load_hf, make_inputs, rel, run_driver,  # noqa: E402
                           t2np, write_minilm, write_tiny)


def lr_lambda(kind, warmup, total):
    def f(step):
        if step < warmup:
            return float(step) / float(max(1, warmup))
        progress = float(step - warmup) / float(max(1, total - warmup))
        if kind == "linear":
            return max(0.0, float(total - step) / float(max(1, total - warmup)))
        if kind == "cosine":
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))
        return 1.0
    return f


def hf_train(task, model_dir, d, steps, accum, micro, lr, head_lr, layer_decay, wd, warmup, total, clip,
             freeze_layers, freeze_emb, sched):
    model = load_hf(task, model_dir)
    L = model.config.num_hidden_layers
    groups = []
    for name, p in model.named_parameters():
        c = canonical(name)
        if c.startswith("embeddings."):
            if freeze_emb:
                p.requires_grad_(False)
                continue
            base = lr * layer_decay ** (L + 1)
        elif c.startswith("encoder.layer."):
            layer = int(c.split(".")[2])
            if layer < freeze_layers:
                p.requires_grad_(False)
                continue
            base = lr * layer_decay ** (L - layer)
        elif c.startswith("pooler."):
            base = lr
        else:
            base = head_lr if head_lr > 0 else lr
        decay = 0.0 if (c.endswith(".bias") or "LayerNorm." in c) else wd
        groups.append({"params": [p], "lr": base, "weight_decay": decay})
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(sched, warmup, total))
    chunks = len(d["len"]) // micro
    trainable = [p for p in model.parameters() if p.requires_grad]
    losses = []
    for s in range(steps):
        opt.zero_grad(set_to_none=True)
        tot = 0.0
        for k in range(accum):
            first = ((s * accum + k) % chunks) * micro
            loss = model(**hf_batch(d, first, micro)).loss / accum
            loss.backward()
            tot += loss.item()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(trainable, clip)
        opt.step()
        schedule.step()
        losses.append(tot)
    return model, losses


def train_case(driver, work, name, task, model_dir, d, **kw):
    out = run_driver(driver, "train", model_dir, d, os.path.join(work, name + ".safetensors"), task=task, **kw)
    model, losses = hf_train(task, model_dir, d, kw["steps"], kw["accum"], kw["micro"], kw["lr"], kw["head_lr"],
                             kw["layer_decay"], kw["wd"], kw["warmup"], kw["total"], kw["clip"],
                             kw["freeze_layers"], kw["freeze_emb"], kw["sched"])
    errs, moved, noise_ok, noise_worst = {}, 0, True, 0.0
    init = load_hf(task, model_dir)
    init_params = dict(init.named_parameters())
    f = lr_lambda(kw["sched"], kw["warmup"], kw["total"])
    lr_sum = max(kw["lr"], kw["head_lr"]) * sum(f(s) for s in range(kw["steps"]))
    for pn, p in model.named_parameters():
        key = canonical(pn)
        if key not in out:
            sys.exit("%s: driver output lacks %s" % (name, key))
        moved += int(not torch.equal(p, init_params[pn]))
        if key.endswith("attention.self.key.bias"):
            # d(loss)/d(key bias) is exactly 0 (softmax is shift-invariant per
            # query row); both sides feed rounding noise to AdamW, which turns
            # it into steps of up to ~lr of random sign. Only the bound holds.
            dev = float(np.abs(out[key] - t2np(p)).max())
            noise_worst = max(noise_worst, dev / lr_sum)
            noise_ok &= dev <= 3 * lr_sum
            continue
        errs[pn] = rel(out[key], t2np(p))
    errs["losses"] = rel(out["losses"], losses)
    worst_name = max(errs, key=errs.get)
    worst = errs[worst_name]
    ok = worst <= TOL and moved > 0 and noise_ok
    print("%-5s %-22s %d steps, %d tensors moved, last loss %.5f (ref %.5f), max rel err %.2e (%s); "
          "key.bias max |diff| %.2f x sum(lr)"
          % ("ok" if ok else "FAIL", name, kw["steps"], moved, float(out["losses"][-1]), losses[-1],
             worst, worst_name, noise_worst))
    if not ok:
        for k, v in sorted(errs.items(), key=lambda kv: -kv[1])[:8]:
            print("      %-60s %.3e" % (k, v))
    return ok, worst


def dropout_determinism(driver, work, rng):
    path = write_tiny(os.path.join(work, "tiny-dropout"), "seq", seed=300, num_labels=2)
    cfg_path = os.path.join(path, "config.json")
    cfg = json.load(open(cfg_path))
    cfg["hidden_dropout_prob"] = 0.1
    cfg["attention_probs_dropout_prob"] = 0.1
    json.dump(cfg, open(cfg_path, "w"))
    d = make_inputs(rng, [9, 4, 13, 6, 11, 8, 5, 12], 99, "seq", 2, "single")
    kw = dict(task="seq", steps=30, accum=2, micro=2, lr=1e-3, warmup=5, total=30, clip=1.0)
    outs = []
    for i, seed in enumerate([11, 11, 12]):
        f = os.path.join(work, "dropout-%d.safetensors" % i)
        run_driver(driver, "train", path, d, f, seed=seed, **kw)
        outs.append(open(f, "rb").read())
    same = outs[0] == outs[1]
    differ = outs[0] != outs[2]
    # and dropout really acts: the dropout-0 run differs from both
    cfg["hidden_dropout_prob"] = 0.0
    cfg["attention_probs_dropout_prob"] = 0.0
    json.dump(cfg, open(cfg_path, "w"))
    f = os.path.join(work, "dropout-off.safetensors")
    run_driver(driver, "train", path, d, f, seed=11, **kw)
    active = open(f, "rb").read() != outs[0]
    ok = same and differ and active
    print("%-5s dropout determinism: same seed byte-identical %s, other seed differs %s, dropout active %s"
          % ("ok" if ok else "FAIL", same, differ, active))
    return ok


def main():
    driver, work = sys.argv[1], sys.argv[2]
    minilm = sys.argv[3] if len(sys.argv) > 3 else None
    rng = np.random.default_rng(99)
    ok_all, worst = True, 0.0
    common = dict(steps=30, accum=2, micro=4, wd=0.01, warmup=5, total=30, clip=1.0)

    path = write_tiny(os.path.join(work, "tiny-seq"), "seq", seed=201, num_labels=3)
    d = make_inputs(rng, [12, 5, 9, 16, 3, 7, 14, 10, 4, 8, 11, 6, 15, 2, 13, 9], 99, "seq", 3, "single")
    ok, w = train_case(driver, work, "tiny-seq-linear", "seq", path, d, lr=1e-3, head_lr=3e-3, layer_decay=0.9,
                       freeze_layers=1, freeze_emb=0, sched="linear", problem="single", **common)
    ok_all &= ok
    worst = max(worst, w)

    path = write_tiny(os.path.join(work, "tiny-mlm"), "mlm", seed=202)
    d = make_inputs(rng, [12, 5, 9, 16, 3, 7, 14, 10], 99, "mlm")
    ok, w = train_case(driver, work, "tiny-mlm-cosine", "mlm", path, d, lr=2e-3, head_lr=0, layer_decay=1.0,
                       freeze_layers=0, freeze_emb=1, sched="cosine", **dict(common, micro=2))
    ok_all &= ok
    worst = max(worst, w)

    if minilm:
        path = write_minilm(os.path.join(work, "minilm-seq"), minilm, "seq", 9, num_labels=2)
        d = make_inputs(rng, [14, 6, 11, 19, 8, 12, 5, 16], 30522, "seq", 2, "single")
        ok, w = train_case(driver, work, "minilm-seq-linear", "seq", path, d, lr=5e-5, head_lr=1e-3,
                           layer_decay=1.0, freeze_layers=1, freeze_emb=0, sched="linear", problem="single",
                           **dict(common, micro=2))
        ok_all &= ok
        worst = max(worst, w)

    ok_all &= dropout_determinism(driver, work, rng)
    print("train parity: %s, max relative error %.2e (tolerance %.0e)" % ("PASS" if ok_all else "FAIL", worst, TOL))
    sys.exit(0 if ok_all else 1)


if __name__ == "__main__":
    main()
