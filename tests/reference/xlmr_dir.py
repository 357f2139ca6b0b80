"""tests/reference/xlmr_dir.py — an XLM-R model directory as Transformers
writes it (family_train.py make WORK SST2 xlmr: XLMRobertaTokenizerFast's
tokenizer.json, a Unigram model with a Precompiled char map, Metaspace and
RobertaProcessing) read by baton, against Transformers (issue 22). Used by
test_roberta_distilbert_train.sh, which also trains it through
family_train_lib.sh.

  python3 xlmr_dir.py dir BATON WORK SST2_DEV_TSV
      `baton tokenize WORK/xlmr` (and --pair) ids == XLMRobertaTokenizerFast's
      for every SST-2 dev sentence, singles and consecutive pairs, and for
      <mask>; `baton predict WORK/xlmr --format logits` within TOL relative of
      XLMRobertaForSequenceClassification (singles and TAB pairs).
  python3 xlmr_dir.py export WORK SST2_DEV_TSV
      WORK/xlmr-export (written by `baton export`): AutoTokenizer loads an
      XLMRobertaTokenizerFast giving the model directory's ids for the same
      sentences and pairs; config.json names XLMRobertaForSequenceClassification.
"""
import json
import os
import subprocess
import sys
import warnings

warnings.filterwarnings("ignore")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roberta_parity import PREDICT_LINES, baton_logits, hf_logits, rel  # noqa: E402
from tokjson_fixtures import read_tsv  # noqa: E402

TOL = 1e-5


def say(ok, what):
    print("%-5s xlmr %s" % ("ok" if ok else "FAIL", what), flush=True)
    return ok


def texts_and_pairs(dev):
    texts = read_tsv(dev, True)
    return texts, texts[0::2][:len(texts) // 2], texts[1::2]


def baton_ids(baton, d, lines, pair):
    p = subprocess.run([baton, "tokenize", d] + (["--pair"] if pair else []),
                       input=("\n".join(lines) + "\n").encode(), capture_output=True)
    if p.returncode:
        print("baton tokenize%s exit %d: %s" % (" --pair" if pair else "", p.returncode, p.stderr.decode()[-800:]))
        return None
    return [[int(x) for x in ln.split()] for ln in p.stdout.decode().split("\n")[:-1]]


def same_ids(label, want, got):
    bad = [i for i, (w, g) in enumerate(zip(want, got or [])) if w != g]
    for i in bad[:3]:
        print("   MISMATCH %s item %d\n   want %s\n   got  %s" % (label, i, want[i], got[i]))
    ok = got is not None and len(got) == len(want) and not bad
    return say(ok, "%s: %d items, %d mismatches" % (label, len(want), len(bad) if got else len(want)))


def check_dir(baton, work, dev):
    from transformers import XLMRobertaForSequenceClassification, XLMRobertaTokenizerFast
    d = os.path.join(work, "xlmr")
    tok = XLMRobertaTokenizerFast.from_pretrained(d)
    texts, a, b = texts_and_pairs(dev)
    ok = same_ids("tokenize SST-2 dev singles", tok(texts)["input_ids"], baton_ids(baton, d, texts, False))
    inter = [x for ab in zip(a, b) for x in ab]
    ok &= same_ids("tokenize SST-2 dev pairs", tok(a, b)["input_ids"], baton_ids(baton, d, inter, True))
    odd = ["<mask> a<mask>b <s></s> <unk><pad>", "ＦＵＬＬ  width\u3000 café  naïve", "  lead and trail  "]
    ok &= same_ids("tokenize specials, NFKC, spaces", tok(odd)["input_ids"], baton_ids(baton, d, odd, False))
    ours = baton_logits(baton, work, "xlmr predict", d, PREDICT_LINES)
    if ours is None:
        return say(False, "predict failed")
    ref, longest = hf_logits(XLMRobertaForSequenceClassification.from_pretrained(d, attn_implementation="eager"),
                             tok, PREDICT_LINES, tok.model_max_length)
    err = rel(ours, ref) if ours.shape == ref.shape else float("inf")
    ok &= say(err <= TOL, "predict: %d lines (pairs too, longest %d tokens), logits within %.1e of "
              "XLMRobertaForSequenceClassification (tolerance %.0e)" % (len(PREDICT_LINES), longest, err, TOL))
    return ok


def check_export(work, dev):
    from transformers import AutoTokenizer, XLMRobertaTokenizerFast
    exp = os.path.join(work, "xlmr-export")
    tok, ref = AutoTokenizer.from_pretrained(exp), XLMRobertaTokenizerFast.from_pretrained(os.path.join(work, "xlmr"))
    texts, a, b = texts_and_pairs(dev)
    same = tok(texts)["input_ids"] == ref(texts)["input_ids"] and tok(a, b)["input_ids"] == ref(a, b)["input_ids"]
    arch = json.load(open(os.path.join(exp, "config.json")))["architectures"]
    return say(same and type(tok) is XLMRobertaTokenizerFast and arch == ["XLMRobertaForSequenceClassification"],
               "export: AutoTokenizer -> %s, %d singles and %d pairs %s the model directory's ids; architectures %s"
               % (type(tok).__name__, len(texts), len(a), "equal" if same else "DIFFER from", arch))


def main():
    if sys.argv[1] == "dir":
        sys.exit(0 if check_dir(*sys.argv[2:5]) else 1)
    sys.exit(0 if check_export(*sys.argv[2:4]) else 1)


if __name__ == "__main__":
    main()
