"""tests/gpu/proof_lib.py — the Python half of tests/gpu/proof.sh.

Owns: what the shell does badly: GPU facts from nvidia-smi, where cuBLASLt
is, random models of a given shape (BERT layout, Hugging Face names, F32
safetensors), synthetic text, comparing two checkpoint archives, two
metrics.jsonl files and two predict logits files, throughput from metrics.jsonl, the PyTorch +
Transformers peer, FLOPs and MFU, and the final proof.json / proof.md.
Must not: run baton (proof.sh does), or need anything but the standard
library for the parts a GPU-less dry run uses; torch or numpy only speed up
the tensor arithmetic, and torch + transformers are needed only for the peer.

  python3 proof_lib.py COMMAND [ARGS]     (commands: see main() at the bottom)
"""
import json
import math
import os
import random
import struct
import subprocess
import sys
import tarfile
import time

PROOF_VERSION = 1

# ----------------------------------------------------------------- tensors


def _backend():
    try:
        import torch  # noqa: F401
        return "torch"
    except Exception:
        pass
    try:
        import numpy  # noqa: F401
        return "numpy"
    except Exception:
        return "python"


def read_safetensors(data):
    """{name: (dtype, shape, bytes)} of a safetensors blob."""
    (n,) = struct.unpack("<Q", data[:8])
    head = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, t in head.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        out[name] = (t["dtype"], t["shape"], data[base + b:base + e])
    return out


def as_floats(dtype, raw):
    """A float vector of one tensor (torch, numpy or list, as available)."""
    be = _backend()
    if be == "torch":
        import torch
        dt = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}[dtype]
        return torch.frombuffer(bytearray(raw), dtype=dt).to(torch.float64)
    if be == "numpy":
        import numpy as np
        if dtype == "BF16":
            u = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            return u.view(np.float32).astype(np.float64)
        return np.frombuffer(raw, dtype={"F32": np.float32, "F16": np.float16, "F64": np.float64}[dtype]).astype(np.float64)
    fmt = {"F32": "f", "F16": "e", "F64": "d"}
    if dtype == "BF16":
        return [struct.unpack("<f", b"\0\0" + raw[i:i + 2])[0] for i in range(0, len(raw), 2)]
    return list(struct.unpack("<%d%s" % (len(raw) // struct.calcsize(fmt[dtype]), fmt[dtype]), raw))


def norm2(v):
    be = _backend()
    if be in ("torch", "numpy"):
        return float((v * v).sum())
    return sum(x * x for x in v)


def sub(a, b):
    if isinstance(a, list):
        return [x - y for x, y in zip(a, b)]
    return a - b


def finite(v):
    if isinstance(v, list):
        return all(math.isfinite(x) for x in v)
    be = _backend()
    if be == "torch":
        import torch
        return bool(torch.isfinite(v).all())
    import numpy as np
    return bool(np.isfinite(v).all())


def archive_member(path, member):
    with tarfile.open(path) as t:
        return t.extractfile(member).read()


def canonical(name):
    """HF names with or without the task's 'bert.' prefix, as one key."""
    return name[5:] if name.startswith("bert.") else name


# ----------------------------------------------------------------- helpers


def gpus():
    """GPUs nvidia-smi lists: [{index, name, cc, driver, mem_mib}]."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,name,compute_cap,driver_version,memory.total",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=60)
    except Exception:
        return []
    res = []
    for line in out.stdout.strip().splitlines():
        p = [x.strip() for x in line.split(",")]
        if len(p) >= 5:
            res.append({"index": int(p[0]), "name": p[1], "cc": p[2], "driver": p[3], "mem_mib": float(p[4])})
    return res


def find_cublaslt():
    """A directory holding libcublasLt.so.<major>: Python packages first, then CUDA's lib dirs."""
    import glob
    import site
    roots = []
    try:
        roots += site.getsitepackages()
    except Exception:
        pass
    roots += [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    cands = []
    for r in roots:
        cands += glob.glob(os.path.join(r, "nvidia", "**", "libcublasLt.so.*"), recursive=True)
        cands += glob.glob(os.path.join(r, "torch", "lib", "libcublasLt.so.*"))
    for d in ("/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/lib/x86_64-linux-gnu"):
        cands += glob.glob(os.path.join(d, "libcublasLt.so.*"))
    for c in cands:
        base = os.path.basename(c)
        if base.count(".") == 2 and base.split(".")[-1].isdigit():  # libcublasLt.so.13
            return os.path.dirname(c)
    return ""


SHAPES = {
    # name: (layers, hidden, heads, intermediate)
    "bert-base": (12, 768, 12, 3072),
    "minilm": (6, 384, 12, 1536),
    "tiny": (2, 128, 2, 512),
}


def synth_model(out, vocab_file, shape=None, config_file=None, seed=0):
    """config.json, vocab.txt and random F32 model.safetensors (BertModel tensors
    + pooler, normal(0, 0.02), LayerNorm weights 1, biases 0) into out."""
    os.makedirs(out, exist_ok=True)
    vocab = open(vocab_file, encoding="utf-8").read()
    V = len(vocab.splitlines())
    if config_file:
        cfg = json.load(open(config_file))
    else:
        L, D, H, I = SHAPES[shape]
        cfg = {"model_type": "bert", "architectures": ["BertModel"], "vocab_size": V, "hidden_size": D,
               "num_hidden_layers": L, "num_attention_heads": H, "intermediate_size": I,
               "max_position_embeddings": 512, "type_vocab_size": 2, "hidden_act": "gelu",
               "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "layer_norm_eps": 1e-12,
               "initializer_range": 0.02, "pad_token_id": 0}
    V, D, L, I = cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"]
    P, T = cfg["max_position_embeddings"], cfg.get("type_vocab_size", 2)
    specs = [("embeddings.word_embeddings.weight", [V, D]), ("embeddings.position_embeddings.weight", [P, D]),
             ("embeddings.token_type_embeddings.weight", [T, D]), ("embeddings.LayerNorm.weight", [D]),
             ("embeddings.LayerNorm.bias", [D])]
    for l in range(L):
        p = "encoder.layer.%d." % l
        for m in ("query", "key", "value"):
            specs += [(p + "attention.self.%s.weight" % m, [D, D]), (p + "attention.self.%s.bias" % m, [D])]
        specs += [(p + "attention.output.dense.weight", [D, D]), (p + "attention.output.dense.bias", [D]),
                  (p + "attention.output.LayerNorm.weight", [D]), (p + "attention.output.LayerNorm.bias", [D]),
                  (p + "intermediate.dense.weight", [I, D]), (p + "intermediate.dense.bias", [I]),
                  (p + "output.dense.weight", [D, I]), (p + "output.dense.bias", [D]),
                  (p + "output.LayerNorm.weight", [D]), (p + "output.LayerNorm.bias", [D])]
    specs += [("pooler.dense.weight", [D, D]), ("pooler.dense.bias", [D])]
    be = _backend()
    header, blobs, off = {}, [], 0
    rng = random.Random(seed)
    if be == "torch":
        import torch
        g = torch.Generator().manual_seed(seed)
    elif be == "numpy":
        import numpy as np
        g = np.random.default_rng(seed)
    for name, shape_ in specs:
        n = 1
        for s in shape_:
            n *= s
        kind = "ln" if "LayerNorm.weight" in name else "zero" if name.endswith(".bias") else "normal"
        if be == "torch":
            t = torch.ones(n) if kind == "ln" else torch.zeros(n) if kind == "zero" else torch.randn(n, generator=g) * 0.02
            t = t.to(torch.float32).contiguous()
            raw = t.numpy().tobytes() if _has_numpy() else struct.pack("<%df" % n, *t.tolist())
        elif be == "numpy":
            import numpy as np
            a = np.ones(n) if kind == "ln" else np.zeros(n) if kind == "zero" else g.standard_normal(n) * 0.02
            raw = a.astype(np.float32).tobytes()
        else:
            vals = [1.0] * n if kind == "ln" else [0.0] * n if kind == "zero" else [rng.gauss(0, 0.02) for _ in range(n)]
            raw = struct.pack("<%df" % n, *vals)
        header[name] = {"dtype": "F32", "shape": shape_, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=1)
    open(os.path.join(out, "vocab.txt"), "w", encoding="utf-8").write(vocab)


def _has_numpy():
    try:
        import numpy  # noqa: F401
        return True
    except Exception:
        return False


def synth_data(vocab_file, rows, words, out, seed=0):
    """TSV (sentence, label) of random whole-word vocabulary entries."""
    vocab = [w for w in open(vocab_file, encoding="utf-8").read().splitlines()
             if w.isascii() and w.isalpha() and w.islower()]
    rng = random.Random(seed)
    with open(out, "w", encoding="utf-8") as f:
        f.write("sentence\tlabel\n")
        for i in range(rows):
            f.write(" ".join(rng.choice(vocab) for _ in range(words)) + "\t%d\n" % (i % 2))


# attention key biases (BERT/RoBERTa/ELECTRA, DeBERTa, DistilBERT spellings): a
# gradient of exactly 0 (softmax is shift-invariant) leaves them to rounding noise
ZERO_GRAD_BIASES = ("attention.self.key.bias", "attention.self.key_proj.bias", "attention.k_lin.bias")


def compare_archives(a, b, init_dir=None):
    """Per-tensor comparison of model.safetensors in archives a and b.
    identical: every byte equal; weight_rel: worst ||a - b|| / ||b||;
    update_rel: worst ||(a - w0) - (b - w0)|| / ||b - w0|| over tensors the
    initial model holds (the change training made); update_rel_global: the
    same over all those tensors at once. Adam moves an element whose gradient
    is rounding noise by +-lr, its sign set by the rounding, so one small
    tensor can differ much more than the model does; the global figure is
    the one a proof can hold a device to."""
    ma, mb = archive_member(a, "model.safetensors"), archive_member(b, "model.safetensors")
    oa = archive_member(a, "optimizer.safetensors")
    ob = archive_member(b, "optimizer.safetensors")
    res = {"identical": ma == mb and oa == ob, "model_identical": ma == mb, "optimizer_identical": oa == ob}
    ta, tb = read_safetensors(ma), read_safetensors(mb)
    init = {}
    if init_dir:
        for n, v in read_safetensors(open(os.path.join(init_dir, "model.safetensors"), "rb").read()).items():
            init[canonical(n)] = v
    wr, wr_at, ur, ur_at = 0.0, "", 0.0, ""
    gd2, gu2, nu = 0.0, 0.0, 0
    for name in sorted(tb):
        if name not in ta:
            res["missing"] = name
            continue
        va, vb = as_floats(*ta[name][::2]), as_floats(*tb[name][::2])
        if not finite(va):
            wr, wr_at = float("inf"), name
            continue
        e = math.sqrt(norm2(sub(va, vb)) / max(norm2(vb), 1e-300))
        if e > wr:
            wr, wr_at = e, name
        if canonical(name) in init and not name.endswith(ZERO_GRAD_BIASES):
            w0 = as_floats(init[canonical(name)][0], init[canonical(name)][2])
            ub = sub(vb, w0)
            d = norm2(sub(va, vb))
            u2 = norm2(ub)
            gd2 += d
            gu2 += u2
            nu += 1
            if u2 > 0:
                e = math.sqrt(d / u2)
                if e > ur:
                    ur, ur_at = e, name
    res.update({"weight_rel": wr, "weight_at": wr_at, "update_rel": ur, "update_at": ur_at, "update_tensors": nu,
                "update_rel_global": math.sqrt(gd2 / gu2) if gu2 > 0 else (0.0 if gd2 == 0 else float("inf"))})
    return res


def compare_logits(a, b):
    """Two `baton predict --format logits` outputs (one row of TAB-separated
    logits a line): rows, ||a - b|| / ||b|| over all of them (inf when the
    shapes differ or a value is not finite)."""
    ra = [[float(x) for x in ln.split("\t")] for ln in open(a) if ln.strip()]
    rb = [[float(x) for x in ln.split("\t")] for ln in open(b) if ln.strip()]
    if not rb or [len(r) for r in ra] != [len(r) for r in rb]:
        return {"rows": [len(ra), len(rb)], "rel": float("inf")}
    va, vb = [x for r in ra for x in r], [x for r in rb for x in r]
    if not all(math.isfinite(x) for x in va):
        return {"rows": len(ra), "rel": float("inf")}
    d2, b2 = sum((x - y) ** 2 for x, y in zip(va, vb)), sum(y * y for y in vb)
    return {"rows": len(ra), "rel": math.sqrt(d2 / max(b2, 1e-300))}


def read_metrics(path):
    out = []
    for line in open(path):
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def compare_metrics(a, b):
    """Worst relative difference of the train losses both logged at the same
    step, and the difference of the last eval record's metrics."""
    ra, rb = read_metrics(a), read_metrics(b)
    la = {r["step"]: r["loss"] for r in ra if r.get("split") == "train" and "loss" in r}
    lb = {r["step"]: r["loss"] for r in rb if r.get("split") == "train" and "loss" in r}
    steps = sorted(set(la) & set(lb))
    worst, at = 0.0, None
    for s in steps:
        e = abs(la[s] - lb[s]) / max(abs(lb[s]), 1e-12) if math.isfinite(la[s]) else float("inf")
        if e > worst:
            worst, at = e, s
    ea = [r for r in ra if r.get("split") == "eval"]
    eb = [r for r in rb if r.get("split") == "eval"]
    ev = {}
    if ea and eb:
        for k in ("accuracy", "loss"):
            if k in ea[-1] and k in eb[-1]:
                ev[k] = [ea[-1][k], eb[-1][k]]
    return {"loss_rel": worst, "loss_at_step": at, "steps_compared": steps, "eval": ev,
            "final_loss": [la[steps[-1]], lb[steps[-1]]] if steps else None}


def throughput(metrics, batch, first, last):
    """Samples/s between the train records at steps first and last."""
    t = {r["step"]: r["time"] for r in read_metrics(metrics) if r.get("split") == "train" and "time" in r}
    if first not in t or last not in t or t[last] <= t[first]:
        return None
    return (last - first) * batch / (t[last] - t[first])


def flops_per_sample(config_file, seq):
    """Training FLOPs of one sequence: 6 x matmul parameters per token (forward
    2, backward 4) + attention (QK^T and PV: 4 S D per token and layer forward,
    x3 for training); embeddings and the head are left out."""
    c = json.load(open(config_file))
    D, I, L = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    n_mm = L * (4 * D * D + 2 * D * I)
    return seq * (6 * n_mm + 12 * L * seq * D)


# dense peak FLOP/s by (GPU name fragment, precision), from the vendors' datasheets
PEAKS = [
    ("H100 PCIe", {"bf16": 756e12, "fp16": 756e12, "tf32": 378e12, "fp32": 51e12}),
    ("H100 NVL", {"bf16": 835e12, "fp16": 835e12, "tf32": 418e12, "fp32": 60e12}),
    ("H100", {"bf16": 989e12, "fp16": 989e12, "tf32": 494e12, "fp32": 67e12}),
    ("H200", {"bf16": 989e12, "fp16": 989e12, "tf32": 494e12, "fp32": 67e12}),
    ("H800", {"bf16": 989e12, "fp16": 989e12, "tf32": 494e12, "fp32": 67e12}),
    ("A100", {"bf16": 312e12, "fp16": 312e12, "tf32": 156e12, "fp32": 19.5e12}),
    ("A10G", {"bf16": 70e12, "fp16": 70e12, "tf32": 35e12, "fp32": 31.2e12}),
    ("A10", {"bf16": 125e12, "fp16": 125e12, "tf32": 62.5e12, "fp32": 31.2e12}),
    ("L40S", {"bf16": 362e12, "fp16": 362e12, "tf32": 183e12, "fp32": 91.6e12}),
    ("L4", {"bf16": 121e12, "fp16": 121e12, "tf32": 60e12, "fp32": 30.3e12}),
    ("T4", {"fp16": 65e12, "fp32": 8.1e12}),
    ("V100", {"fp16": 125e12, "fp32": 15.7e12}),
    ("P100", {"fp16": 18.7e12, "fp32": 9.3e12}),
]


def peak(gpu_name, precision):
    for frag, p in PEAKS:
        if frag in gpu_name:
            return p.get(precision)
    return None


# -------------------------------------------------------------- torch peer


def torch_train(model_dir, batch, seq, steps, warmup, amp, device, threads=0):
    """Transformers' BertForSequenceClassification trained on random full
    batches: SDPA attention, AdamW, clipping; amp none (fp32, TF32 off), bf16
    or fp16 (autocast, GradScaler for fp16). Returns samples/s and peak memory."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    cfg = BertConfig.from_json_file(os.path.join(model_dir, "config.json"))
    cfg.num_labels = 2
    model = None
    for impl in ("sdpa", "eager"):  # SDPA where this torch/transformers has it for BERT
        for make in (lambda: BertForSequenceClassification._from_config(cfg, attn_implementation=impl),
                     lambda: BertForSequenceClassification(cfg, attn_implementation=impl)):
            try:
                model = make()
                break
            except (TypeError, ValueError, ImportError, AttributeError):
                continue
        if model is not None:
            break
    if model is None:
        model = BertForSequenceClassification(cfg)
    attn = getattr(model.config, "_attn_implementation", None) or "eager"
    model.to(device).train()
    V = cfg.vocab_size
    ids = torch.randint(1000, V, (batch, seq), device=device)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
              "token_type_ids": torch.zeros_like(ids), "labels": torch.arange(batch, device=device) % 2}
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01)
    dt = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    scaler = None
    if amp == "fp16":
        scaler = torch.amp.GradScaler(device) if hasattr(torch, "amp") and hasattr(torch.amp, "GradScaler") \
            else torch.cuda.amp.GradScaler()

    def step():
        opt.zero_grad(set_to_none=True)
        if dt is not None:
            with torch.autocast(device_type=device, dtype=dt):
                loss = model(**inputs).loss
        else:
            loss = model(**inputs).loss
        if scaler:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        return loss

    for _ in range(warmup):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    float(loss)
    if device == "cuda":
        torch.cuda.synchronize()
    dt_s = time.perf_counter() - t0
    res = {"samples_per_s": batch * steps / dt_s, "step_s": dt_s / steps,
           "torch": torch.__version__, "amp": amp, "attention": attn}
    if device == "cuda":
        res["peak_allocated_bytes"] = torch.cuda.max_memory_allocated()
    return res


# ----------------------------------------------------------------- summary


def summarize(work, out):
    """proof.json and proof.md from WORK/env.json, checks.jsonl, throughput.jsonl."""
    env = json.load(open(os.path.join(work, "env.json")))
    checks = read_metrics(os.path.join(work, "checks.jsonl")) if os.path.exists(os.path.join(work, "checks.jsonl")) else []
    thr = read_metrics(os.path.join(work, "throughput.jsonl")) if os.path.exists(os.path.join(work, "throughput.jsonl")) else []
    failed = [c["name"] for c in checks if c["status"] == "fail"]
    doc = {"format": "baton-gpu-proof", "version": PROOF_VERSION, "result": "fail" if failed else "pass",
           "failed": failed, "env": env, "checks": checks, "throughput": thr}
    json.dump(doc, open(os.path.join(out, "proof.json"), "w"), indent=1)
    md = ["# baton GPU proof", ""]
    md.append("- result: **%s**%s" % (doc["result"].upper(), " (failed: %s)" % ", ".join(failed) if failed else ""))
    for k in ("mode", "gpu", "driver", "baton", "cuda_lib", "cublaslt", "python", "torch", "date", "seconds"):
        if k in env:
            md.append("- %s: %s" % (k, env[k]))
    md += ["", "## Checks", "", "| check | status | note |", "|---|---|---|"]
    for c in checks:
        md.append("| %s | %s | %s |" % (c["name"], c["status"].upper() if c["status"] == "fail" else c["status"],
                                        c.get("note", "").replace("|", "/").replace("\n", " ")))
    if thr:
        md += ["", "## Training throughput", "",
               "| model | seq | batch | who | precision | samples/s | MFU | peak GPU memory (MiB) | note |",
               "|---|---|---|---|---|---|---|---|---|"]
        for t in thr:
            sps = t.get("samples_per_s")
            mfu = t.get("mfu")
            mem = t.get("peak_mib")
            md.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                t.get("model", ""), t.get("seq", ""), t.get("batch", ""), t.get("who", ""), t.get("precision", ""),
                "%.1f" % sps if sps else "-", "%.1f%%" % (100 * mfu) if mfu else "-",
                "%.0f" % mem if mem else "-", t.get("note", "")))
    open(os.path.join(out, "proof.md"), "w").write("\n".join(md) + "\n")
    return 1 if failed else 0


# -------------------------------------------------------------------- main


def main(argv):
    cmd, a = argv[1], argv[2:]
    if cmd == "gpus":
        print(json.dumps(gpus()))
    elif cmd == "find-cublaslt":
        print(find_cublaslt())
    elif cmd == "backend":
        print(_backend())
    elif cmd == "synth-model":  # OUT VOCAB (SHAPE | --config FILE)
        if a[2] == "--config":
            synth_model(a[0], a[1], config_file=a[3])
        else:
            synth_model(a[0], a[1], shape=a[2])
    elif cmd == "synth-data":  # VOCAB ROWS WORDS OUT
        synth_data(a[0], int(a[1]), int(a[2]), a[3])
    elif cmd == "compare-archives":  # A B [INIT_DIR]
        print(json.dumps(compare_archives(a[0], a[1], a[2] if len(a) > 2 else None)))
    elif cmd == "compare-logits":  # A B
        print(json.dumps(compare_logits(a[0], a[1])))
    elif cmd == "compare-metrics":  # A B
        print(json.dumps(compare_metrics(a[0], a[1])))
    elif cmd == "throughput":  # METRICS BATCH FIRST LAST
        v = throughput(a[0], int(a[1]), int(a[2]), int(a[3]))
        print("" if v is None else "%.6g" % v)
    elif cmd == "flops":  # CONFIG SEQ
        print(flops_per_sample(a[0], int(a[1])))
    elif cmd == "peak":  # GPU_NAME PRECISION
        v = peak(a[0], a[1])
        print("" if v is None else "%.6g" % v)
    elif cmd == "torch-train":  # MODEL BATCH SEQ STEPS WARMUP AMP DEVICE [THREADS]
        print(json.dumps(torch_train(a[0], int(a[1]), int(a[2]), int(a[3]), int(a[4]), a[5], a[6],
                                     int(a[7]) if len(a) > 7 else 0)))
    elif cmd == "jget":  # FILE KEY[.KEY...]: a value in the JSON of FILE's last line ('' if absent); 'len'
        text = open(a[0]).read().strip().splitlines()
        v = json.loads(text[-1]) if text else None
        for k in a[1].split("."):
            if k == "len" and isinstance(v, (list, dict)):
                v = len(v)
            elif isinstance(v, list) and k.isdigit():
                v = v[int(k)] if int(k) < len(v) else None
            else:
                v = v.get(k) if isinstance(v, dict) else None
        print("" if v is None else (json.dumps(v) if isinstance(v, (dict, list)) else v))
    elif cmd == "trainer-field":  # ARCHIVE KEY: a top-level value of its trainer.json ('' if absent)
        v = json.loads(archive_member(a[0], "trainer.json")).get(a[1])
        print("" if v is None else v)
    elif cmd == "env":  # OUT_JSON KEY=VALUE...
        json.dump(dict(kv.split("=", 1) for kv in a[1:]), open(a[0], "w"), indent=1)
    elif cmd == "add-throughput":  # FILE KEY=VALUE... (numbers where they parse)
        rec = {}
        for kv in a[1:]:
            k, v = kv.split("=", 1)
            try:
                rec[k] = int(v) if v.isdigit() else float(v)
                if not math.isfinite(rec[k]):
                    rec[k] = None
            except ValueError:
                rec[k] = v if v != "" else None
        open(a[0], "a").write(json.dumps(rec) + "\n")
    elif cmd == "summarize":  # WORK OUT
        return summarize(a[0], a[1])
    else:
        print("proof_lib.py: unknown command %s" % cmd, file=sys.stderr)
        return 64
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
