#!/usr/bin/env python3
"""tests/reference/test_tokenizer_json_parity.py — `baton tokenize` on model
directories with a tokenizer.json against the Rust `tokenizers` crate
(Tokenizer.from_file), id for id.

usage: test_tokenizer_json_parity.py BATON MINILM_DIR DATA_DIR HARD_CASES WORKDIR

Tokenizers, all made here (nothing is downloaded):
  minilm        all-MiniLM-L6-v2's own tokenizer.json (BERT WordPiece; baton
                compiles it into its BERT engine)
  bert-generic  the same with extra added tokens (normalized, lstrip/rstrip,
                single_word), which takes the general pipeline
  roberta       byte-level BPE trained on the shared data, RobertaProcessing,
                <mask> with lstrip (as RoBERTa's files)
  roberta-aps   the same with add_prefix_space (ByteLevel) and a Split/GPT-2
                regex pre-tokenizer sequence
  xlmr          Unigram trained on the shared data; Precompiled char map (built
                by make_charsmap.py) + Replace(" {2,}"); Metaspace; <s> A </s></s> B </s>
  deberta       the same vocabulary as DeBERTa-v3's files: Strip, Precompiled,
                Replace; Metaspace prepend "first"; [CLS] A [SEP] B [SEP];
                byte_fallback <0xXX> pieces
  bpe-misc      BPE with continuing_subword_prefix/end_of_word_suffix, unk,
                NFKC+Lowercase+StripAccents, Whitespace+Digits+Punctuation
  llama-style   byte_fallback BPE with Prepend/Replace normalizers and no
                pre-tokenizer (fuse_unk)
  misc-nf       NFD/NFKD/NFC, Strip(left), Split literal/behaviours/invert,
                CharDelimiterSplit, Digits contiguous, WordPiece
For each: the shared SST-2 + AG News texts (77,350) single and as consecutive
pairs with truncation (longest_first at 128 and 16; only_first/only_second at
24 on the pairs the reference accepts), the hard cases and a generated stress
set (Unicode, accents, emoji, whitespace runs, very long words, added tokens);
the main configurations also a sweep of every Unicode code point in context.
baton runs once per comparison (stdin -> stdout). Exit 1 on any difference.
"""
import os, subprocess, sys, time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
from tokenizers import Tokenizer  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tokjson_fixtures import build, read_tsv, stress_set  # noqa: E402

BATON, MINILM, DATA, HARD, WORK = sys.argv[1:6]
QUICK = os.environ.get("BATON_TOKJSON_QUICK") == "1"
T0 = time.time()
compared = mismatches = shown = 0


BY_LABEL = {}


def report(label, i, text, want, got):
    global mismatches, shown
    mismatches += 1
    BY_LABEL[label] = BY_LABEL.get(label, 0) + 1
    if shown < 10:
        shown += 1
        print(f"MISMATCH [{label}] item {i}: {text!r}\n   want {want}\n   got  {got}")


def baton(model_dir, args, data: bytes):
    p = subprocess.run([BATON, "tokenize", model_dir, *args], input=data, capture_output=True)
    if p.returncode != 0:
        print(f"baton tokenize {model_dir} {' '.join(args)} failed (exit {p.returncode}): "
              f"{p.stderr.decode(errors='replace')[-2000:]}")
        sys.exit(1)
    return p.stdout.decode().split("\n")[:-1]


def ref_ids(tok, a, b=None, max_length=None, strategy="longest_first"):
    tok.no_padding()
    if max_length:
        tok.enable_truncation(max_length, strategy=strategy)
    else:
        tok.no_truncation()
    encs = tok.encode_batch(list(zip(a, b)) if b is not None else a, add_special_tokens=True)
    return [e.ids for e in encs]


def compare(label, texts, want, got):
    global compared
    if len(want) != len(got):
        report(label, -1, "(count)", len(want), len(got))
        return
    for i, (w, g) in enumerate(zip(want, got)):
        compared += 1
        ws = " ".join(map(str, w))
        if ws != g:
            report(label, i, texts[i], ws, g)


def lines_bytes(lst):
    return ("\n".join(lst) + "\n").encode("utf-8", "surrogatepass")


def run(name, d, texts, small=None, only=True):
    """texts single and as consecutive pairs at max_length 128; `small` (a
    subset) also untruncated and at max_length 16, and only_first/only_second
    at 24 on its first 3000 pairs"""
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))

    def pairs_of(lst):
        pa, pb = lst[0::2], lst[1::2]
        n = min(len(pa), len(pb))
        return pa[:n], pb[:n]

    def singles(lst, m):
        want = ref_ids(tok, lst, max_length=m)
        args = ["--max-length", str(m)] if m else []
        compare(f"{name} single max={m}", lst, want, baton(d, args, lines_bytes(lst)))

    def pairs(lst, m, strat="longest_first"):
        pa, pb = pairs_of(lst)
        want = ref_ids(tok, pa, pb, max_length=m, strategy=strat)
        compare(f"{name} pair {strat} max={m}", [f"{a!r} || {b!r}" for a, b in zip(pa, pb)], want,
                baton(d, ["--pair", "--max-length", str(m), "--truncation", strat],
                      lines_bytes([x for ab in zip(pa, pb) for x in ab])))

    singles(texts, 128)
    pairs(texts, 128)
    if small is None:
        return
    singles(small, None)
    singles(small, 16)
    pairs(small, 16)
    if not only:
        return
    for strat in ("only_first", "only_second"):
        pa, pb = pairs_of(small[:6000])
        ok = []
        for a, b in zip(pa, pb):
            try:
                ref_ids(tok, [a], [b], max_length=24, strategy=strat)
            except Exception:
                continue
            ok += [a, b]
        pairs(ok, 24, strat)


def run_bytes(name, d, raw_lines):
    """invalid UTF-8 included: baton --replace-invalid vs Python's errors="replace" """
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    texts = [l.decode("utf-8", errors="replace") for l in raw_lines]
    want = ref_ids(tok, texts)
    compare(f"{name} hard", texts, want, baton(d, ["--replace-invalid"], b"\n".join(raw_lines) + b"\n"))


def sweep(name, d, step=1, offset=0):
    """every code point (no surrogates, no newline) in context"""
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    lines = []
    for cp in range(offset, 0x110000, step):
        if 0xD800 <= cp < 0xE000 or cp in (10, 13):
            continue
        c = chr(cp)
        lines.append("A\u0301" + c + "\u0334x " + c + "\u0F39Z" + c + c + "  " + c + "1" + c)
    want = ref_ids(tok, lines)
    compare(f"{name} sweep", lines, want, baton(d, [], lines_bytes(lines)))
    print(f"  {name}: sweep of {len(lines)} code points ({time.time() - T0:.0f}s)")


def main():
    texts = read_tsv(os.path.join(DATA, "sst2/train.tsv"), True) + read_tsv(os.path.join(DATA, "sst2/dev.tsv"), True) \
        + read_tsv(os.path.join(DATA, "agnews/dev.tsv"), False)
    hard = open(HARD, "rb").read().split(b"\n")
    if hard and hard[-1] == b"":
        hard.pop()
    stress = stress_set()
    print(f"{len(texts)} data texts, {len(hard)} hard cases, {len(stress)} stress lines")
    cfgs = build(texts, WORK, MINILM)
    print(f"  tokenizers built ({time.time() - T0:.0f}s)")
    main_cfgs = ("bert-generic", "roberta", "xlmr", "deberta")
    for name, d in cfgs.items():
        full = name in main_cfgs and not QUICK
        run(name, d, texts if full else texts[:5000], small=texts[:10000] if full else None)
        run(name, d, stress, small=stress, only=False)
        run_bytes(name, d, hard)
        print(f"  {name}: done ({time.time() - T0:.0f}s)")
    if not QUICK:
        # every code point, in context, through one of these (they share it out)
        sw = ("roberta", "deberta", "bpe-misc", "misc-nf")
        for i, name in enumerate(sw):
            sweep(name, cfgs[name], step=len(sw), offset=i)
    for k, v in BY_LABEL.items():
        print(f"  mismatches in [{k}]: {v}")
    print(f"tokenizer.json parity: {compared} items compared, {mismatches} mismatches ({time.time() - T0:.0f}s)")
    sys.exit(1 if mismatches else 0)


main()
