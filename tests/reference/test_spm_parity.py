"""tests/reference/test_spm_parity.py — SentencePiece model directories
(spm.model + tokenizer_config.json, no tokenizer.json) against Transformers.
  python3 test_spm_parity.py BATON DATA HARD_CASES WORKDIR

1. A Unigram SentencePiece model trained here (sentencepiece, nmt_nfkc rules:
   so a Precompiled char map; [PAD] [CLS] [SEP] [UNK] at 0-3 as deberta-v3's;
   a user-defined symbol "<br>"; no [MASK]: DebertaV2TokenizerFast adds it
   after the pieces, as deberta-v3's 128000). Five directories: `cased`
   (save_pretrained of DebertaV2Tokenizer(vocab_file=...)), `lower` (the same
   with do_lower_case=True), `punct` (split_by_punct=True), `bare` (spm.model
   + deberta-v3-base's two-key tokenizer_config.json), `legacy` (no
   added_tokens_decoder: special_tokens_map.json and added_tokens.json with
   [MASK], a special and a normal token, as transformers < 4.34 saved). The
   reference is
   DebertaV2TokenizerFast, which converts the model (no tokenizer.json in the
   directory). And XLM-R's layout: sentencepiece.bpe.model saved by
   XLMRobertaTokenizer against XLMRobertaTokenizerFast (fairseq ids).
2. `baton tokenize` ids == the reference's: SST-2 train+dev and AG News dev
   singles and consecutive pairs (all for cased, 10,000 for the others), the
   stress set of the tokenizer.json parity test and the hard cases (valid
   UTF-8 lines), singles and pairs. 100% identical or FAIL.
3. A tiny random v3-like DebertaV2ForSequenceClassification in `cased`:
   `baton predict --format logits` within 1e-5 relative of Transformers.
4. A 2-step `baton run` + `baton export`: the export has the converted
   tokenizer.json, AutoTokenizer loads it (fast) with the same ids, and the
   exported model's Transformers logits equal baton predict's on the export.
   Resuming after do_lower_case changed in tokenizer_config.json is refused
   on model.tokenizer.sha256 (the fingerprint covers the converted tokenizer).
5. Damaged copies of spm.model (truncated, bytes flipped): refused with a
   message naming spm.model or accepted, never a crash or sanitizer report.
"""
import json
import os
import random
import shutil
import subprocess
import sys
import time

import numpy as np

os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sentencepiece as spm  # noqa: E402
import torch  # noqa: E402
from engine_parity import rel  # noqa: E402
from roberta_parity import baton_logits, hf_logits, perturb_and_save, run_tiny_job  # noqa: E402
from tokjson_fixtures import read_tsv, stress_set  # noqa: E402
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DebertaV2Config,  # noqa: E402
                          DebertaV2ForSequenceClassification, DebertaV2Tokenizer, DebertaV2TokenizerFast)

BATON, DATA, HARD, WORK = sys.argv[1:5]
QUICK = os.environ.get("BATON_SPM_QUICK") == "1"
TOL = 1e-5
T0 = time.time()
failed = []


def say(ok, label, msg):
    print("%-5s %-22s %s" % ("ok" if ok else "FAIL", label, msg), flush=True)
    if not ok:
        failed.append(label)


def train_spm(texts, path):
    with open(path + ".txt", "w", encoding="utf-8") as fh:
        fh.write("\n".join(texts) + "\n")
    spm.SentencePieceTrainer.train(input=path + ".txt", model_prefix=path, vocab_size=1500, model_type="unigram",
                                   pad_id=0, bos_id=1, eos_id=2, unk_id=3, pad_piece="[PAD]", bos_piece="[CLS]",
                                   eos_piece="[SEP]", unk_piece="[UNK]", user_defined_symbols=["<br>"],
                                   character_coverage=0.9995, num_threads=2, minloglevel=2)
    return path + ".model"


def make_xlmr(texts):
    """XLM-R's layout: sentencepiece.bpe.model (sentencepiece's default ids:
    <unk> <s> </s> first) saved by XLMRobertaTokenizer; the reference is
    XLMRobertaTokenizerFast converting it (fairseq ids, <mask> last)."""
    from transformers import XLMRobertaTokenizer, XLMRobertaTokenizerFast
    path = os.path.join(WORK, "xsp")
    with open(path + ".txt", "w", encoding="utf-8") as fh:
        fh.write("\n".join(texts) + "\n")
    spm.SentencePieceTrainer.train(input=path + ".txt", model_prefix=path, vocab_size=1200, model_type="unigram",
                                   num_threads=2, minloglevel=2)
    d = os.path.join(WORK, "xlmr")
    XLMRobertaTokenizer(vocab_file=path + ".model").save_pretrained(d)
    if os.path.exists(os.path.join(d, "tokenizer.json")):
        os.remove(os.path.join(d, "tokenizer.json"))
    return d, XLMRobertaTokenizerFast


def make_dirs(model):
    dirs = {}
    for name, kw in (("cased", {}), ("lower", {"do_lower_case": True}), ("punct", {"split_by_punct": True})):
        d = os.path.join(WORK, name)
        DebertaV2Tokenizer(vocab_file=model, **kw).save_pretrained(d)
        if os.path.exists(os.path.join(d, "tokenizer.json")):
            os.remove(os.path.join(d, "tokenizer.json"))
        dirs[name] = d
    d = os.path.join(WORK, "bare")
    os.makedirs(d)
    shutil.copy(model, os.path.join(d, "spm.model"))
    json.dump({"do_lower_case": False, "vocab_type": "spm"}, open(os.path.join(d, "tokenizer_config.json"), "w"))
    dirs["bare"] = d
    # saved by transformers < 4.34: no added_tokens_decoder; special_tokens_map.json and added_tokens.json
    d = os.path.join(WORK, "legacy")
    os.makedirs(d)
    shutil.copy(model, os.path.join(d, "spm.model"))
    cfg = json.load(open(os.path.join(dirs["cased"], "tokenizer_config.json")))
    cfg.pop("added_tokens_decoder", None)
    json.dump(cfg, open(os.path.join(d, "tokenizer_config.json"), "w"))
    json.dump({"mask_token": "[MASK]", "additional_special_tokens": ["<special>"]},
              open(os.path.join(d, "special_tokens_map.json"), "w"))
    json.dump({"[MASK]": 1500, "xyzzy": 1502, "<special>": 1501}, open(os.path.join(d, "added_tokens.json"), "w"))
    dirs["legacy"] = d
    return dirs


def baton_ids(d, lines, pair=False):
    data = ("\n".join(lines) + "\n").encode("utf-8")
    p = subprocess.run([BATON, "tokenize", d] + (["--pair"] if pair else []), input=data, capture_output=True)
    if p.returncode != 0:
        print("baton tokenize %s failed (exit %d): %s" % (d, p.returncode, p.stderr.decode(errors="replace")[-2000:]))
        return None
    return p.stdout.decode().split("\n")[:-1]


def compare(label, d, ref, texts):
    """singles and consecutive pairs; the number compared, mismatches shown"""
    n = bad = 0
    pairs_a, pairs_b = texts[0::2], texts[1::2]
    pairs_a = pairs_a[:len(pairs_b)]
    for kind, got, want in (
            ("single", baton_ids(d, texts), ref(texts)["input_ids"]),
            ("pair", baton_ids(d, [x for ab in zip(pairs_a, pairs_b) for x in ab], True),
             ref(pairs_a, pairs_b)["input_ids"])):
        if got is None or len(got) != len(want):
            say(False, label, "%s: baton gave %s lines for %d" % (kind, None if got is None else len(got), len(want)))
            return 0
        for i, (w, g) in enumerate(zip(want, got)):
            n += 1
            if " ".join(map(str, w)) != g:
                bad += 1
                if bad <= 5:
                    src = texts[i] if kind == "single" else (pairs_a[i], pairs_b[i])
                    print("MISMATCH [%s %s] %r\n   want %s\n   got  %s" % (label, kind, src, w, g))
    say(bad == 0, label, "%d items (singles and pairs), %d mismatches" % (n, bad))
    return n


def tokenize_part(dirs, texts, extra, classes={}):
    total = 0
    for name, d in dirs.items():
        assert not os.path.exists(os.path.join(d, "tokenizer.json"))
        ref = classes.get(name, DebertaV2TokenizerFast).from_pretrained(d)
        mask = ref.convert_tokens_to_ids("<mask>" if name == "xlmr" else "[MASK]")
        vs = ref.backend_tokenizer.get_vocab_size(with_added_tokens=False)
        got = baton_ids(d, ["<mask>" if name == "xlmr" else "[MASK]"])
        want = vs - 1 if name == "xlmr" else vs  # XLM-R: the model's last entry; DeBERTa: added after the pieces
        say(mask == want and got is not None and got[0].split()[1:2] == [str(mask)], name + " mask",
            "the reference gives the mask token id %d (%d pieces), baton %s" % (mask, vs, got))
        data = texts if name == "cased" and not QUICK else texts[:10000 if not QUICK else 3000]
        total += compare(name + " data", d, ref, data)
        total += compare(name + " stress", d, ref, extra)
    return total


def damage_part(d):
    """truncations and byte flips of spm.model: a clean refusal naming the
    file, or a load; never a signal or a sanitizer report"""
    src = open(os.path.join(d, "spm.model"), "rb").read()
    rnd = random.Random(22)
    cases = [src[:k] for k in (0, 1, 2, 5, 17, 100, len(src) // 3, len(src) // 2, len(src) - 1)]
    for _ in range(40 if QUICK else 120):
        b = bytearray(src)
        for _ in range(rnd.randint(1, 4)):
            i = rnd.randrange(len(b) if rnd.random() < 0.5 else min(len(b), 3000))
            b[i] = rnd.randrange(256)
        cases.append(bytes(b))
    dd = os.path.join(WORK, "damaged")
    os.makedirs(dd, exist_ok=True)
    shutil.copy(os.path.join(d, "tokenizer_config.json"), dd)
    refused = crashed = 0
    example = ""
    for c in cases:
        open(os.path.join(dd, "spm.model"), "wb").write(c)
        p = subprocess.run([BATON, "tokenize", dd], input=b"a test, with words\n", capture_output=True)
        err = p.stderr.decode(errors="replace")
        if p.returncode < 0 or p.returncode > 100 or "Sanitizer" in err or "runtime error" in err:
            crashed += 1
            print("CRASH exit %d: %s" % (p.returncode, err[-1500:]))
        elif p.returncode != 0:
            refused += 1
            if "spm.model" not in err:
                crashed += 1
                print("UNCLEAR refusal: %s" % err)
            example = example or err.strip()
    say(crashed == 0, "damaged spm.model", "%d damaged files: %d refused, %d loaded, 0 crashes expected, %d seen; "
        "e.g. %s" % (len(cases), refused, len(cases) - refused, crashed, example))


def predict_part(d, n_vocab):
    torch.manual_seed(61)
    cfg = DebertaV2Config(vocab_size=n_vocab, hidden_size=40, num_hidden_layers=2, num_attention_heads=5,
                          intermediate_size=52, max_position_embeddings=64, pad_token_id=0, hidden_dropout_prob=0.0,
                          attention_probs_dropout_prob=0.0, pooler_dropout=0.0, initializer_range=0.05,
                          layer_norm_eps=1e-7, num_labels=3, position_biased_input=False, type_vocab_size=0,
                          relative_attention=True, position_buckets=16, max_relative_positions=32,
                          pos_att_type="p2c|c2p", share_att_key=True, norm_rel_ebd="layer_norm")
    perturb_and_save(DebertaV2ForSequenceClassification(cfg), d)
    lines = ["a great movie", "terrible , awful film\twith a second part that goes on and on",
             "Café naïve ＦＵＬＬ  width   spaces 😀 and a <br> tag", "İstanbul 日本語\tΣΊΣΥΦΟΣ x²"]
    ours = baton_logits(BATON, WORK, "spm predict", d, lines)
    if ours is None:
        return say(False, "predict", "baton predict failed")
    ref, longest = hf_logits(DebertaV2ForSequenceClassification.from_pretrained(d),
                             DebertaV2TokenizerFast.from_pretrained(d), lines, 64)
    err = rel(ours, ref)
    r = subprocess.run([BATON, "inspect-model", d], capture_output=True, text=True)
    say(r.returncode == 0 and "spm.model: present (the tokenizer" in r.stdout and "needed to tokenize" not in r.stdout,
        "inspect-model", "exit %d: %s" % (r.returncode, [ln for ln in r.stdout.split("\n") if "spm" in ln or "vocab" in ln]))
    say(ours.shape == ref.shape and err <= TOL, "predict", "%d lines (longest %d tokens): max rel err %.2e" %
        (len(lines), longest, err))


def run_part(d, texts):
    rows = "".join("%s\t%d\n" % (t.replace("\t", " "), i % 3) for i, t in enumerate(texts[:24]))
    r, _ = run_tiny_job(BATON, WORK, d, rows, "max_steps = 2\nbatch_size = 4", "out-run")
    if r.returncode != 0:
        return say(False, "run", "baton run: exit %d: %s" % (r.returncode, r.stderr[-1500:]))
    out = os.path.join(WORK, "out-run")
    archives = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(out) for f in fs if f.startswith("ckpt-") and f.endswith(".tar"))
    if not archives:
        return say(False, "run", "no archive under %s: %s" % (out, os.listdir(out)))
    exp = os.path.join(WORK, "export")
    r = subprocess.run([BATON, "export", archives[-1], exp], capture_output=True, text=True)
    if r.returncode != 0:
        return say(False, "export", "exit %d: %s" % (r.returncode, r.stderr))
    tok = AutoTokenizer.from_pretrained(exp)
    ref = DebertaV2TokenizerFast.from_pretrained(d)
    sample = texts[:2000]
    same = tok(sample)["input_ids"] == ref(sample)["input_ids"]
    say(tok.is_fast and os.path.exists(os.path.join(exp, "tokenizer.json")) and same, "export tokenizer",
        "%s from %s: tokenizer.json present, %d texts %s the spm directory's ids" % (
            type(tok).__name__, os.path.basename(exp), len(sample), "equal" if same else "DIFFER from"))
    lines = [t for t in texts[24:40]]
    ours = baton_logits(BATON, WORK, "export predict", exp, lines)
    hf = AutoModelForSequenceClassification.from_pretrained(exp)
    ref_l, _ = hf_logits(hf, tok, lines, tok.model_max_length)  # the training length, as baton predict
    err = rel(ours, ref_l) if ours is not None and ours.shape == ref_l.shape else float("inf")
    say(err <= TOL, "export predict", "2-step run exported; Transformers logits of the export within %.2e of baton "
        "predict's (%d lines)" % (err, len(lines)))
    # the fingerprint covers the converted tokenizer: do_lower_case flipped in
    # tokenizer_config.json, the same job (now 4 steps) must refuse to resume
    cfg_path = os.path.join(d, "tokenizer_config.json")
    keep = open(cfg_path).read()
    cfg = json.loads(keep)
    cfg["do_lower_case"] = not cfg.get("do_lower_case", False)
    json.dump(cfg, open(cfg_path, "w"))
    r, _ = run_tiny_job(BATON, WORK, d, rows, "max_steps = 4\nbatch_size = 4", "out-run")
    open(cfg_path, "w").write(keep)
    say(r.returncode != 0 and "model.tokenizer.sha256" in r.stderr, "resume fingerprint",
        "do_lower_case changed after the run: resume exit %d: %s" % (r.returncode, r.stderr.strip()[-300:]))


def main():
    texts = read_tsv(os.path.join(DATA, "sst2/train.tsv"), True) + read_tsv(os.path.join(DATA, "sst2/dev.tsv"), True) \
        + read_tsv(os.path.join(DATA, "agnews/dev.tsv"), False)
    model = train_spm(texts[:20000:2] + texts[-3000:], os.path.join(WORK, "sp"))
    dirs = make_dirs(model)
    hard = [ln for ln in open(HARD, "rb").read().decode("utf-8", "replace").split("\n") if ln and "\r" not in ln]
    extra = [s for s in stress_set() if "\n" not in s and "\r" not in s] + hard + [
        "<br>a<br> b <br>", "[MASK] a[MASK]b [CLS] [SEP] [UNK] [PAD] [mask]", "   ", "x" * 1000 + " y",
        "\u00a0\u3000lead and trail  \t ", "xyzzy<special>XYZZY a xyzzy b<special> <special>", "ÀÉÎÕÜ àéîõü ĳ ǅ ẞ"]
    print("%d data texts, %d stress lines (%.0fs)" % (len(texts), len(extra), time.time() - T0), flush=True)
    n = tokenize_part(dirs, texts, extra)
    xd, xcls = make_xlmr(texts[1:20000:2] + texts[-3001:])
    n += tokenize_part({"xlmr": xd}, texts, extra + ["<mask> a<mask>b <s></s> <unk><pad>"], {"xlmr": xcls})
    print("%d items compared (%.0fs)" % (n, time.time() - T0), flush=True)
    damage_part(dirs["cased"])
    n_vocab = len(DebertaV2TokenizerFast.from_pretrained(dirs["cased"]))
    predict_part(dirs["cased"], n_vocab)
    run_part(dirs["cased"], texts)
    print("%s (%.0fs)" % ("FAIL: " + ", ".join(failed) if failed else "all ok", time.time() - T0))
    sys.exit(1 if failed else 0)


main()
