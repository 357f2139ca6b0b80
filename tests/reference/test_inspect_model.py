"""Reference check for `baton inspect-model` (run by test_inspect_model.sh).

For each model directory: every tensor Python's safetensors sees appears in
baton's table with the same dtype, shape and count, nothing else appears, the
totals match, and the config/labels lines say what config.json says. Broken
directories must exit with the documented code and a message naming the file.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch
from safetensors import safe_open
from transformers import BertConfig, BertForMaskedLM, BertForPreTraining, BertForSequenceClassification
from transformers.utils import logging as hf_logging

hf_logging.set_verbosity_error()
BATON, MINILM = sys.argv[1], sys.argv[2]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run(d):
    p = subprocess.run([BATON, "inspect-model", d], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def parse_table(out):
    lines = out.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("tensors:"))
    rows, total = {}, None
    for l in lines[start + 2:]:
        if l.startswith("total:"):
            total = l
            break
        f = l.split()
        rows[f[0]] = (f[1], f[2], int(f[3]), " ".join(f[4:]))
    return rows, total


def python_view(path):
    seen = {}
    with safe_open(path, framework="pt") as f:
        for k in f.keys():
            s = f.get_slice(k)
            shape = list(s.get_shape())
            n = 1
            for d in shape:
                n *= d
            seen[k] = (s.get_dtype(), "[" + ",".join(map(str, shape)) + "]", n)
    return seen


def compare(d, heads):
    rc, out, err = run(d)
    check(rc == 0, f"{d}: exit {rc}, stderr {err.strip()}")
    if rc != 0:
        return out
    rows, total = parse_table(out)
    want = python_view(os.path.join(d, "model.safetensors"))
    check(set(rows) == set(want), f"{d}: names differ: baton-only {sorted(set(rows) - set(want))[:5]}, "
          f"python-only {sorted(set(want) - set(rows))[:5]}")
    for k, (dt, shape, n) in want.items():
        if k in rows:
            check(rows[k][:3] == (dt, shape, n), f"{d}: {k}: baton {rows[k][:3]} python {(dt, shape, n)}")
            canon = k[5:] if k.startswith("bert.") else k
            note = rows[k][3]
            if k.endswith("position_ids") or k.startswith("cls.seq_relationship"):
                check(note == "(ignored)", f"{d}: {k} should be ignored, note {note!r}")
            elif k == "cls.predictions.decoder.weight":
                check("tied" in note, f"{d}: {k} should be tied, note {note!r}")
            else:
                check(note == ("=" if canon == k else canon), f"{d}: {k}: note {note!r}, want canonical {canon}")
    tot = sum(v[2] for v in want.values())
    check(total == f"total: {len(want)} tensors, {tot} parameters" + total[total.index(" parameters") + 11:],
          f"{d}: total line {total!r}, want {len(want)} tensors, {tot} parameters")
    check(f"heads: {heads}" in out, f"{d}: heads line, want {heads!r} in\n{out[-300:]}")
    cfg = json.load(open(os.path.join(d, "config.json")))
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size", "max_position_embeddings"):
        check(any(l.split()[:2] == [key, str(cfg[key])] for l in out.splitlines()), f"{d}: {key} not {cfg[key]}")
    return out


compare(MINILM, "pooler yes, classifier no, mlm no")

tmp = tempfile.mkdtemp(prefix="baton-inspect-")
try:
    torch.manual_seed(0)
    small = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=37, max_position_embeddings=64, type_vocab_size=3)
    labels = {0: "neg", 1: "neu", 2: "pos"}
    cfg = BertConfig(num_labels=3, id2label=labels, label2id={v: k for k, v in labels.items()}, **small)
    seq = os.path.join(tmp, "seq")
    model = BertForSequenceClassification(cfg)
    model.save_pretrained(seq, safe_serialization=True)
    out = compare(seq, "pooler yes, classifier yes, mlm no")
    check("labels: 3: 0=neg 1=neu 2=pos" in out, "labels line for the 3-label model")
    check("architecture BertForSequenceClassification" in out, "architecture line")

    half = os.path.join(tmp, "half")
    model.half().save_pretrained(half, safe_serialization=True)
    out = compare(half, "pooler yes, classifier yes, mlm no")
    check(" F16 " in out, "fp16 checkpoint shows F16")

    for cls, heads in ((BertForMaskedLM, "pooler no, classifier no, mlm yes"),
                       (BertForPreTraining, "pooler yes, classifier no, mlm yes")):
        d = os.path.join(tmp, cls.__name__)
        cls(BertConfig(**small)).save_pretrained(d, safe_serialization=True)
        compare(d, heads)

    # Broken directories.
    def expect_fail(d, code, *needles):
        rc, out, err = run(d)
        check(rc == code, f"{d}: exit {rc}, want {code}; stderr {err.strip()}")
        for n in needles:
            check(n in err, f"{d}: stderr lacks {n!r}: {err.strip()}")

    expect_fail(os.path.join(tmp, "absent"), 66, "not a directory")
    nocfg = os.path.join(tmp, "nocfg")
    shutil.copytree(seq, nocfg)
    os.remove(os.path.join(nocfg, "config.json"))
    expect_fail(nocfg, 66, "no config.json")

    trunc = os.path.join(tmp, "trunc")
    shutil.copytree(seq, trunc)
    st = os.path.join(trunc, "model.safetensors")
    with open(st, "r+b") as f:
        f.truncate(os.path.getsize(st) - 4)
    expect_fail(trunc, 65, st, "truncated")

    wrong = os.path.join(tmp, "wrong")
    shutil.copytree(seq, wrong)
    c = json.load(open(os.path.join(wrong, "config.json")))
    c["intermediate_size"] = 40
    c["id2label"] = {"0": "a", "1": "b"}
    c.pop("label2id")
    json.dump(c, open(os.path.join(wrong, "config.json"), "w"))
    expect_fail(wrong, 65, "mis-shaped  encoder.layer.0.intermediate.dense.weight: expected [40,32], checkpoint has [37,32]",
                "mis-shaped  classifier.weight: expected [2,32], checkpoint has [3,32] (as 'classifier.weight')")

    badjson = os.path.join(tmp, "badjson")
    shutil.copytree(seq, badjson)
    open(os.path.join(badjson, "config.json"), "w").write('{"hidden_size": 32,')
    expect_fail(badjson, 78, "config.json:1:", "not valid JSON")

    binonly = os.path.join(tmp, "binonly")
    shutil.copytree(seq, binonly)
    os.rename(os.path.join(binonly, "model.safetensors"), os.path.join(binonly, "pytorch_model.bin"))
    expect_fail(binonly, 65, "pytorch_model.bin: a safetensors file under a PyTorch name")
finally:
    shutil.rmtree(tmp)

if failures:
    print(f"{len(failures)} check(s) failed")
    sys.exit(1)
print("inspect-model matches Python's view of every directory")
