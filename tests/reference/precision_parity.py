"""tests/reference/precision_parity.py — baton's CPU engine in bf16 against
PyTorch CPU autocast bf16 (torch.autocast("cpu", dtype=torch.bfloat16), fp32
master weights, torch.optim.AdamW, clip_grad_norm_, LambdaLR warmup + linear
decay) on all-MiniLM-L6-v2 with a fresh 2-label head: the same examples in
the same order (SST-2 sentences tokenized by the model's own tokenizer when
the shared data is there, else random token ids), accumulation 2, dropout 0
on both sides. The loss of every step must be within 2% of PyTorch's (the
check uses 0.2%: ten times the difference measured, 1.8e-4).
The fp32 runs of both sides (within 1e-3 of each other) and baton's fp16 run
(dynamic loss scaling; torch 1.13 has no CPU fp16 autocast to compare with,
so it must stay within 0.2% of baton's fp32 run) are printed beside it.

  python3 precision_parity.py DRIVER WORKDIR MINILM_DIR [SST2_TSV]
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from engine_parity import canonical, hf_batch, load_hf, run_driver, write_minilm  # noqa: E402
from train_parity import lr_lambda  # noqa: E402

STEPS, ACCUM, MICRO, N = 12, 2, 4, 48
LR, HEAD_LR, WD, WARMUP, CLIP = 5e-5, 1e-3, 0.01, 2, 1.0
TOL = 2e-3  # the issue asks 2%; 10x the measured difference keeps the check able to fail


def sst2_inputs(minilm, tsv, rng):
    from transformers import BertTokenizerFast
    tok = BertTokenizerFast.from_pretrained(minilm)
    rows = [line.rstrip("\n").split("\t") for line in open(tsv, encoding="utf-8")][1:]
    pick = rng.choice(len(rows), N, replace=False)
    enc = [tok(rows[i][0], truncation=True, max_length=64)["input_ids"] for i in pick]
    smax = max(len(e) for e in enc)
    ids = np.zeros((N, smax), np.int32)
    for i, e in enumerate(enc):
        ids[i, :len(e)] = e
    return {"ids": ids, "len": np.array([len(e) for e in enc], np.int32),
            "type_ids": np.zeros((N, smax), np.int32),
            "label": np.array([int(rows[i][1]) for i in pick], np.int32)}


def torch_train(model_dir, d, autocast):
    torch.manual_seed(0)
    model = load_hf("seq", model_dir)
    model.train()  # dropout is 0 in this model's config
    groups = []
    for name, p in model.named_parameters():
        c = canonical(name)
        base = HEAD_LR if c.startswith("classifier.") else LR
        decay = 0.0 if (c.endswith(".bias") or "LayerNorm." in c) else WD
        groups.append({"params": [p], "lr": base, "weight_decay": decay})
    opt = torch.optim.AdamW(groups, lr=LR, betas=(0.9, 0.999), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda("linear", WARMUP, STEPS))
    chunks = N // MICRO
    losses = []
    for s in range(STEPS):
        opt.zero_grad(set_to_none=True)
        tot = 0.0
        for k in range(ACCUM):
            first = ((s * ACCUM + k) % chunks) * MICRO
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                loss = model(**hf_batch(d, first, MICRO)).loss / ACCUM
            loss.backward()
            tot += loss.item()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        sched.step()
        losses.append(tot)
    return np.array(losses)


def main():
    driver, work, minilm = sys.argv[1], sys.argv[2], sys.argv[3]
    tsv = sys.argv[4]  # SST-2 train.tsv (the shell script skips without it): the check that it learns needs it
    torch.set_num_threads(2)
    rng = np.random.default_rng(17)
    path = write_minilm(os.path.join(work, "minilm-seq"), minilm, "seq", 9, num_labels=2)
    d, what = sst2_inputs(minilm, tsv, rng), "SST-2 sentences"
    kw = dict(task="seq", problem="single", num_labels=2, steps=STEPS, accum=ACCUM, micro=MICRO, lr=LR,
              head_lr=HEAD_LR, wd=WD, warmup=WARMUP, total=STEPS, clip=CLIP, sched="linear", threads=2)
    ours = {}
    for p in ("fp32", "bf16", "fp16"):
        out = run_driver(driver, "train", path, d, os.path.join(work, p + ".safetensors"), precision=p, **kw)
        ours[p] = out["losses"].astype(np.float64)
        ours[p + "_skipped"] = int(out["skipped"].sum())
    ref = {"fp32": torch_train(path, d, False), "bf16": torch_train(path, d, True)}

    def worst(a, b):
        return float(np.max(np.abs(a / b - 1)))

    print("%d steps on %s, accumulation %d x %d, lr %g (head %g), warmup %d, clip %g" %
          (STEPS, what, ACCUM, MICRO, LR, HEAD_LR, WARMUP, CLIP))
    print("step  torch fp32  torch bf16  baton fp32  baton bf16  baton fp16")
    for s in range(STEPS):
        print("%4d  %10.5f  %10.5f  %10.5f  %10.5f  %10.5f" % (s + 1, ref["fp32"][s], ref["bf16"][s], ours["fp32"][s],
                                                             ours["bf16"][s], ours["fp16"][s]))
    w_bf16 = worst(ours["bf16"], ref["bf16"])
    w_fp32 = worst(ours["fp32"], ref["fp32"])
    w_fp16 = worst(ours["fp16"], ours["fp32"])
    w_torch = worst(ref["bf16"], ref["fp32"])
    print("max relative loss difference: baton bf16 vs torch autocast bf16 %.2e (tolerance %.0e); "
          "baton fp32 vs torch fp32 %.2e; torch bf16 vs torch fp32 %.2e; baton fp16 vs baton fp32 %.2e "
          "(%d steps skipped for overflow)" % (w_bf16, TOL, w_fp32, w_torch, w_fp16, ours["fp16_skipped"]))
    moved = ref["fp32"][-1] < ref["fp32"][0] - 0.01  # it learns
    ok = w_bf16 <= TOL and w_fp16 <= TOL and w_fp32 <= 1e-3 and moved
    print("precision parity: %s" % ("PASS" if ok else "FAIL"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
