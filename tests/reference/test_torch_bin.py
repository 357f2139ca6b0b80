"""Reference check for pytorch_model.bin (run by test_torch_bin.sh).

Files written by the reference PyTorch must load in baton bit-exactly as the
safetensors of the same tensors (weights_driver compares names, dtypes,
shapes, bytes and fp32 values); the commands that read a model directory
(inspect-model, predict, run) must give the same results from a directory
holding only pytorch_model.bin; files that would run code in Python, legacy
files and views repeating elements are refused, with no side effect; a model
path above exactly one model directory is followed, and said so.

argv: BATON DRIVER WORKDIR [MINILM_DIR]
"""
import copy
import os
import shutil
import subprocess
import sys
import warnings
import zipfile

warnings.filterwarnings("ignore")
import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import BertConfig, BertForSequenceClassification  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.set_verbosity_error()
BATON, DRIVER, WORK = sys.argv[1:4]
MINILM = sys.argv[4] if len(sys.argv) > 4 else None
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def baton(*args):
    p = subprocess.run([BATON, *args], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def driver(*files):
    p = subprocess.run([DRIVER, *files], capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def same(a, b, what):
    rc, out = driver(a, b)
    check(rc == 0 and out.startswith("same "), f"{what}: {a} vs {b}: {out.strip()}")
    return out.strip()


def path(*p):
    return os.path.join(WORK, *p)


def model_dir(d, sd=None, src=None):
    """A directory with src's config.json, vocab.txt (+ tokenizer_config.json) and sd as pytorch_model.bin."""
    os.makedirs(d, exist_ok=True)
    for f in ("config.json", "vocab.txt", "tokenizer_config.json"):
        if src and os.path.exists(os.path.join(src, f)):
            shutil.copy(os.path.join(src, f), d)
    if sd is not None:
        torch.save(sd, os.path.join(d, "pytorch_model.bin"))
    return d


def table(out):
    """inspect-model's tensor rows and totals, sorted (file order differs between the formats)."""
    lines = out.splitlines()
    i = next(k for k, l in enumerate(lines) if l.startswith("tensors:"))
    return sorted(lines[i + 1:])


WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "film", "good", "bad", "great", "awful",
         "plot", "actor", "was", "is", "not", "very", "fine", "boring", "fun", "and", "but", "it", "this"]


def tiny():
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=37, max_position_embeddings=64, num_labels=3)
    return BertForSequenceClassification(cfg).eval()


# ---- tiny BERT: fp32, fp16, bf16, protocol 4, save_pretrained(safe_serialization=False)
model = tiny()
st32 = path("st32")
model.save_pretrained(st32, safe_serialization=True)
open(os.path.join(st32, "vocab.txt"), "w").write("\n".join(WORDS) + "\n")
sd = model.state_dict()
bin32 = model_dir(path("bin32"), sd, st32)
same(path("bin32/pytorch_model.bin"), path("st32/model.safetensors"), "fp32 state dict")

p4 = model_dir(path("p4"), src=st32)
torch.save(sd, os.path.join(p4, "pytorch_model.bin"), pickle_protocol=4)
with zipfile.ZipFile(os.path.join(p4, "pytorch_model.bin")) as z:
    pkl = z.read(next(n for n in z.namelist() if n.endswith("/data.pkl")))
check(pkl[:2] == b"\x80\x04" and b"\x95" in pkl and b"\x93" in pkl,
      "protocol 4 pickle has no FRAME/STACK_GLOBAL: the case proves nothing")
same(path("p4/pytorch_model.bin"), path("st32/model.safetensors"), "protocol-4 state dict")

hf = path("hfbin")
model.save_pretrained(hf, safe_serialization=False)
shutil.copy(os.path.join(st32, "vocab.txt"), hf)
check(os.path.exists(os.path.join(hf, "pytorch_model.bin")) and not os.path.exists(os.path.join(hf, "model.safetensors")),
      "save_pretrained(safe_serialization=False) did not write pytorch_model.bin alone")
same(os.path.join(hf, "pytorch_model.bin"), path("st32/model.safetensors"), "save_pretrained(safe_serialization=False)")

half = copy.deepcopy(model).half()
st16 = path("st16")
half.save_pretrained(st16, safe_serialization=True)
shutil.copy(os.path.join(st32, "vocab.txt"), st16)
bin16 = model_dir(path("bin16"), half.state_dict(), st16)
out = same(path("bin16/pytorch_model.bin"), path("st16/model.safetensors"), "fp16 state dict")

bf = {k: v.to(torch.bfloat16) for k, v in sd.items()}
save_file(bf, path("bf16.safetensors"))
torch.save(bf, path("bf16.bin"))
same(path("bf16.bin"), path("bf16.safetensors"), "bf16 state dict")

# ---- views into shared storages: slices (offset), columns and transposes (strided), 0-d, empty
base = torch.arange(48, dtype=torch.float32).reshape(6, 8) / 7
views = {"rows": base[2:4], "cols": base[:, 1:5], "t": base.t(), "row": base[5], "scalar": base[1, 1],
         "empty": base[6:], "whole": base, "step": base[::2, ::3]}
torch.save(views, path("views.bin"))
save_file({k: v.contiguous().clone() for k, v in views.items()}, path("views.safetensors"))
same(path("views.bin"), path("views.safetensors"), "views")

# ---- commands on a directory holding only pytorch_model.bin
rc_a, out_a, err_a = baton("inspect-model", st32)
rc_b, out_b, err_b = baton("inspect-model", bin32)
check(rc_a == 0 and rc_b == 0, f"inspect-model: exit {rc_a} / {rc_b}: {err_a} {err_b}")
if rc_a == 0 and rc_b == 0:
    check(table(out_a) == table(out_b), "inspect-model: the tensor tables of st32 and bin32 differ")
    check("PyTorch zip" in out_b, "inspect-model does not say the weights are a PyTorch zip")

texts = path("in.txt")
open(texts, "w").write("the film was great\nthis plot is boring but fun\nnot very good\tand a fine actor\n")
for a, b in ((st32, bin32), (st32, hf), (st16, bin16)):
    ra, oa, ea = baton("predict", a, "--input", texts, "--format", "logits")
    rb, ob, eb = baton("predict", b, "--input", texts, "--format", "logits")
    check(ra == 0 and rb == 0 and oa == ob and oa.count("\n") == 3,
          f"predict {a} vs {b}: exit {ra}/{rb}, logits\n{oa}vs\n{ob}{ea}{eb}")

# ---- run: a job on the demo model, from model.safetensors and from pytorch_model.bin
demo = path("demo")
subprocess.run([BATON, "demo-init", demo], check=True, capture_output=True)
demobin = model_dir(path("demobin"), load_file(os.path.join(demo, "model/model.safetensors")), os.path.join(demo, "model"))
nested = path("kaggle", "input", "demo-ds", "model")
shutil.copytree(demobin, nested)


def job(name, model_path):
    p = path(name + ".ini")
    open(p, "w").write(f"""[job]
name = {name}
output_dir = {name}-out
seed = 7
[model]
path = {model_path}
[data]
train = demo/data/train.tsv
text_column = sentence
label_column = label
max_seq_len = 32
limit_train = 256
[train]
max_steps = 3
batch_size = 16
lr = 1e-3
[runtime]
threads = 2
progress = none
""")
    return p


def archive_sha(name):
    d = path(name + "-out")
    tars = sorted(f for f in os.listdir(d) if f.startswith("ckpt-") and f.endswith(".tar"))
    rc, out, err = baton("inspect", os.path.join(d, tars[-1]))
    return next((l.split()[2] for l in out.splitlines() if l.split()[:1] == ["model.safetensors"] and len(l.split()) == 3),
                None)


shas = {}
for name, mp in (("st", "demo/model"), ("bin", "demobin"), ("parent", "kaggle/input")):
    rc, out, err = baton("run", job(name, mp))
    check(rc == 0, f"run from {mp}: exit {rc}: {err[-2000:]}")
    shas[name] = archive_sha(name) if rc == 0 else None
    if name == "parent":
        check("using the model directory below it: " in err and nested in err,
              f"run with a parent model path: no line naming {nested}: {err[-1000:]}")
check(shas["st"] is not None and shas["st"] == shas["bin"] == shas["parent"],
      f"run: trained weights differ between model.safetensors and pytorch_model.bin: {shas}")

# ---- model paths: several model directories, a vocabulary in another folder
two = path("two")
shutil.copytree(st32, os.path.join(two, "a"))
shutil.copytree(bin32, os.path.join(two, "b", "inner"))
rc, out, err = baton("inspect-model", two)
check(rc == 78 and "holds 2" in err and os.path.join(two, "a") in err and os.path.join(two, "b", "inner") in err,
      f"a folder with two models: exit {rc}: {err}")
split = path("split")
shutil.copytree(bin32, os.path.join(split, "weights"))
os.makedirs(os.path.join(split, "tok"))
shutil.move(os.path.join(split, "weights", "vocab.txt"), os.path.join(split, "tok", "vocab.txt"))
rc, out, err = baton("predict", split, "--input", texts)
check(rc == 66 and "no vocab.txt" in err and os.path.join(split, "tok") in err,
      f"vocab.txt in a sibling folder: exit {rc}, message does not name it: {err}")

# ---- refused: code, unknown globals, legacy files, repeated-element views
marker = path("pwned")


class Evil:
    def __reduce__(self):
        return (os.system, (f"touch {marker}",))


evil = model_dir(path("evil"), {"classifier.bias": torch.zeros(3), "x": Evil()}, st32)
for cmd in (("inspect-model", evil), ("predict", evil, "--input", texts)):
    rc, out, err = baton(*cmd)
    check(rc == 65 and "global 'posix.system' is not allowed" in err and "malicious" in err,
          f"{cmd[0]} on a pickle calling os.system: exit {rc}: {err}")
check(not os.path.exists(marker), "the os.system pickle ran: the marker file exists")

import argparse  # noqa: E402

torch.save({"w": torch.zeros(2), "args": argparse.Namespace(lr=1)}, path("ns.bin"))
rc, out = driver(path("ns.bin"))
check(rc == 65 and "global 'argparse.Namespace' is not allowed" in out, f"a Namespace in the state dict: {rc} {out}")

torch.save(sd, path("legacy.bin"), _use_new_zipfile_serialization=False)
rc, out = driver(path("legacy.bin"))
check(rc == 65 and "legacy format" in out, f"legacy (non-zip) torch.save: exit {rc}: {out}")

torch.save({"e": torch.ones(1).expand(1000)}, path("expand.bin"))
rc, out = driver(path("expand.bin"))
check(rc == 65 and "repeat elements" in out, f"an expanded view: exit {rc}: {out}")

torch.save({"model": sd, "epoch": 3}, path("ckpt.bin"))
rc, out = driver(path("ckpt.bin"))
check(rc == 65 and "not a plain state dict" in out, f"a training checkpoint dict: exit {rc}: {out}")

# ---- the real model: all-MiniLM-L6-v2 as pytorch_model.bin, found from a parent folder
if MINILM:
    mini = model_dir(path("mini-parent", "ds", "all-MiniLM-L6-v2"),
                     load_file(os.path.join(MINILM, "model.safetensors")), MINILM)
    same(os.path.join(mini, "pytorch_model.bin"), os.path.join(MINILM, "model.safetensors"), "all-MiniLM-L6-v2")
    rc, out, err = baton("inspect-model", path("mini-parent"))
    check(rc == 0 and mini in err and "check: encoder matches config.json (6 layers)" in out,
          f"inspect-model of MiniLM's parent folder: exit {rc}: {err}")
    ra, oa, ea = baton("predict", MINILM, "--input", texts, "--format", "logits")
    rb, ob, eb = baton("predict", path("mini-parent"), "--input", texts, "--format", "logits")
    check(ra == 0 and rb == 0 and oa == ob, f"predict MiniLM: safetensors vs bin differ: {oa} {ob} {ea} {eb}")

if failures:
    print(f"{len(failures)} check(s) failed")
    sys.exit(1)
print("pytorch_model.bin: every reference file reads bit-exactly; commands agree; refusals hold")
