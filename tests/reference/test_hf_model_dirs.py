"""Reference half of tests/reference/test_hf_model_dirs.sh (see there).

argv: BATON VOCAB_TXT TMPDIR. Builds each directory with Transformers, runs
baton on it, compares logits; exits non-zero with the reason on a mismatch."""
import json, os, subprocess, sys, warnings
warnings.filterwarnings("ignore")
import torch
from transformers import (BertConfig, BertForSequenceClassification, BertTokenizer, BertTokenizerFast,
                          AutoTokenizer, AutoModelForSequenceClassification)
from transformers.utils import logging as hf_logging
hf_logging.set_verbosity_error()

BATON, VOCAB, T = sys.argv[1:4]
TEXTS = ["A fine, moving film.", "UPPER case and accents: café naïve Ærø", "the plot , the actors",
         "中文字符 and emoji 🙂 mixed", "x", "unbelievably overlong wordpiecesplitting tokenization",
         " ".join(["word"] * 70)]  # the last one is longer than the 40 positions: both truncate
MAX_POS = 40

def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)

def baton(*args, check=True):
    p = subprocess.run([BATON, *args], capture_output=True, text=True)
    if check and p.returncode != 0:
        fail(f"baton {' '.join(args)} exited {p.returncode}:\n{p.stdout}{p.stderr}")
    return p

def make_model(d, extra=None, vocab_size=30522):
    torch.manual_seed(3)
    cfg = BertConfig(vocab_size=vocab_size, hidden_size=48, num_hidden_layers=2, num_attention_heads=3,
                     intermediate_size=80, max_position_embeddings=MAX_POS, num_labels=3,
                     id2label={0: "neg", 1: "neu", 2: "pos"}, label2id={"neg": 0, "neu": 1, "pos": 2})
    m = BertForSequenceClassification(cfg).eval()
    m.save_pretrained(d)
    if extra:  # keys Transformers keeps as attributes and baton must ignore
        c = json.load(open(os.path.join(d, "config.json")))
        c.update(extra)
        json.dump(c, open(os.path.join(d, "config.json"), "w"), indent=2)
    return m

def compare(d, what, lower=True):
    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModelForSequenceClassification.from_pretrained(d).eval()
    inp = os.path.join(T, "in.txt")
    open(inp, "w", encoding="utf-8").write("\n".join(TEXTS) + "\n")
    out = baton("predict", d, "--input", inp, "--format", "logits", "--threads", "1").stdout
    ours = torch.tensor([[float(x) for x in l.split("\t")] for l in out.splitlines()])
    with torch.no_grad():
        enc = tok(TEXTS, padding=True, truncation=True, max_length=MAX_POS, return_tensors="pt")
        ref = model(**enc).logits
    err = ((ours - ref).norm() / ref.norm()).item()
    print(f"{what}: {len(TEXTS)} texts, logits relative error {err:.2e}")
    if err > 1e-4:
        fail(f"{what}: baton predict differs from Transformers: relative error {err:.3e} > 1e-4")
    baton("inspect-model", d)

# 1. BertTokenizerFast(vocab_file).save_pretrained: model_max_length 1e30 (no limit)
d = os.path.join(T, "fast")
make_model(d)
BertTokenizerFast(vocab_file=VOCAB).save_pretrained(d)
mml = json.load(open(os.path.join(d, "tokenizer_config.json")))["model_max_length"]
if mml < 2**63:
    fail(f"expected Transformers to write a 'no limit' model_max_length, got {mml}")
compare(d, "BertTokenizerFast(vocab_file) directory (model_max_length %d)" % mml)

# 2. the slow BertTokenizer, and a config.json with extra keys, a huge integer, nulls
d = os.path.join(T, "slow")
make_model(d, extra={"custom_block": {"a": [1, 2.5, None], "b": "text"}, "a_huge_count": 10**40,
                     "torch_dtype": "float32", "gradient_checkpointing": False, "classifier_dropout": None,
                     "_name_or_path": "someone/some-bert", "use_cache": True})
BertTokenizer(vocab_file=VOCAB).save_pretrained(d)
compare(d, "slow BertTokenizer directory, config.json with extra keys")

# 3. a cased tokenizer (do_lower_case false): accents and case kept
d = os.path.join(T, "cased")
make_model(d)
BertTokenizerFast(vocab_file=VOCAB, do_lower_case=False).save_pretrained(d)
compare(d, "cased tokenizer directory")

# 3b. trained from the cased directory and exported: the export tokenizes as training did
# (archives keep the tokenizer settings in config.json "baton_tokenizer")
rows = ["sentence\tlabel"] + [f"{w} Film Was Fine\t{l}" for w, l in
                               [("Good", "pos"), ("Bad", "neg"), ("Okay", "neu"), ("Awful", "neg")] * 8]
open(os.path.join(T, "cased.tsv"), "w").write("\n".join(rows) + "\n")
open(os.path.join(T, "cased.ini"), "w").write(
    "[job]\nname = cased\noutput_dir = cased-out\n[model]\npath = cased\n[data]\ntrain = cased.tsv\n"
    "text_column = sentence\nlabel_column = label\nmax_seq_len = 16\n[train]\nmax_steps = 2\nbatch_size = 8\n"
    "[runtime]\nthreads = 1\nprogress = none\n")
baton("run", os.path.join(T, "cased.ini"))
arch = sorted(f for f in os.listdir(os.path.join(T, "cased-out")) if f.endswith(".tar"))[-1]
baton("export", os.path.join(T, "cased-out", arch), os.path.join(T, "cased-export"))
tc = json.load(open(os.path.join(T, "cased-export", "tokenizer_config.json")))
if tc.get("do_lower_case") is not False or tc.get("model_max_length") != 16:
    fail(f"export of a cased job: tokenizer_config.json {tc}; expected do_lower_case false, model_max_length 16")
MAX_POS_SAVED, MAX_POS = MAX_POS, 16
compare(os.path.join(T, "cased-export"), "cased job exported (do_lower_case false, model_max_length 16)")
MAX_POS = MAX_POS_SAVED

# 3c. added tokens (special and not), saved by the fast tokenizer (tokenizer.json) and by the
# slow one (vocab.txt + added_tokens.json / added_tokens_decoder): transformers applies them, so must baton
TEXTS_SAVED = TEXTS
TEXTS = TEXTS + ["a newtok here [X1] and [E1]", "NewTok, xnewtoky and [e1] [X1][E1]", "[E1]"]
for kind, cls in (("fast", BertTokenizerFast), ("slow", BertTokenizer)):
    d = os.path.join(T, "added-" + kind)
    tk = cls(vocab_file=VOCAB)
    tk.add_tokens(["newtok", "[X1]"])
    tk.add_special_tokens({"additional_special_tokens": ["[E1]"]})
    make_model(d, vocab_size=len(tk))
    tk.save_pretrained(d)
    files = sorted(os.listdir(d))
    if kind == "slow" and "tokenizer.json" in files:
        fail(f"the slow tokenizer wrote a tokenizer.json: {files}")
    ids = AutoTokenizer.from_pretrained(d)(TEXTS[-3:])["input_ids"]
    if not any(i >= 30522 for row in ids for i in row):
        fail(f"{kind}: the reference did not use the added tokens: {ids}")
    compare(d, f"{kind} tokenizer with added tokens ({', '.join(f for f in files if f != 'model.safetensors')})")
# as older transformers saved it: added_tokens.json only, no added_tokens_decoder
d = os.path.join(T, "added-legacy")
subprocess.run(["cp", "-r", os.path.join(T, "added-slow"), d], check=True)
tc = json.load(open(os.path.join(d, "tokenizer_config.json")))
tc.pop("added_tokens_decoder")
tc.pop("additional_special_tokens", None)  # older files keep it in special_tokens_map.json only
json.dump(tc, open(os.path.join(d, "tokenizer_config.json"), "w"))
compare(d, "slow tokenizer with added tokens in added_tokens.json only")
TEXTS = TEXTS_SAVED

# 4. hand-made edge cases in the files Transformers reads
d = os.path.join(T, "edge")
make_model(d)
BertTokenizerFast(vocab_file=VOCAB).save_pretrained(d)
cpath = os.path.join(d, "config.json")
text = open(cpath).read().rstrip().rstrip("}")
# Python's json reads these: Infinity/NaN literals, 1e400 (-> inf), a repeated key (last wins)
text += ',\n  "an_inf": Infinity, "a_nan": NaN, "overflow": 1e400, "hidden_dropout_prob": 0.5,\n' \
        '  "hidden_dropout_prob": 0.1\n}\n'
open(cpath, "w").write(text)
json.loads(text)  # Python accepts it
tpath = os.path.join(d, "tokenizer_config.json")
tc = json.load(open(tpath))
tc["model_max_length"] = 1e400  # inf: no limit
json.dump(tc, open(tpath, "w"))
compare(d, "hand-made edge cases (Infinity, NaN, 1e400, repeated key)")

# 5. a value baton needs that is unusable: refused, naming file, key and what to do
for key, val, want in [("hidden_size", "48.5", "hidden_size"), ("num_hidden_layers", "1e30", "num_hidden_layers"),
                       ("layer_norm_eps", "\"small\"", "layer_norm_eps")]:
    c = json.load(open(os.path.join(T, "fast", "config.json")))
    bad = os.path.join(T, "bad-" + key)
    subprocess.run(["cp", "-r", os.path.join(T, "fast"), bad], check=True)
    s = json.dumps(c, indent=2).replace(f'"{key}": {json.dumps(c[key])}', f'"{key}": {val}')
    open(os.path.join(bad, "config.json"), "w").write(s)
    p = baton("inspect-model", bad, check=False)
    msg = p.stderr + p.stdout
    if p.returncode != 78 or want not in msg or "config.json" not in msg:
        fail(f"config.json with {key} = {val}: expected exit 78 naming the file and key, got {p.returncode}: {msg}")
    print(f"{key} = {val}: refused: {msg.strip().splitlines()[-1]}")
# a key written twice takes its last value, as in Python: the second hidden_size breaks the shapes
c = open(os.path.join(T, "fast", "config.json")).read().replace('"hidden_size": 48,', '"hidden_size": 48, "hidden_size": 36,')
d = os.path.join(T, "dup")
subprocess.run(["cp", "-r", os.path.join(T, "fast"), d], check=True)
open(os.path.join(d, "config.json"), "w").write(c)
p = baton("inspect-model", d, check=False)
if p.returncode == 0 or "hidden_size" not in p.stderr + p.stdout:
    fail(f"a repeated hidden_size should take the last value (36, wrong shapes): exit {p.returncode} {p.stderr}")
print("hf model dirs: ok")
