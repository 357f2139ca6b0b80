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
import base64, copy, json, os, subprocess, sys, time, unicodedata

os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
from tokenizers import (AddedToken, ByteLevelBPETokenizer, Regex, Tokenizer, models, normalizers,  # noqa: E402
                        pre_tokenizers, processors, trainers)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_charsmap  # noqa: E402

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


def read_tsv(path, header):
    lines = open(path, "rb").read().split(b"\n")
    if header:
        lines = lines[1:]
    return [l.rsplit(b"\t", 1)[0].decode("utf-8") for l in lines if l]


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


# ---------------------------------------------------------------- stress set

def stress_set():
    s = []
    words = ["the", "quick", "Brown", "fox", "café", "naïve", "Ünïcödé", "straße", "İstanbul", "ΣΊΣΥΦΟΣ",
             "日本語のテキスト", "中文字符", "한국어", "العربية", "עברית", "हिन्दी", "ไทย", "😀", "👩‍👩‍👧‍👦", "🇫🇷",
             "👍🏽", "x²", "①②", "ﬁne", "Ｆｕｌｌｗｉｄｔｈ", "e\u0301", "a\u0308\u0301", "don't", "we'll", "it's",
             "I'M", "3.14159", "1,000,000", "$100", "C++", "e-mail", "http://ex.com/a?b=c", "#hash", "@user",
             "<mask>", "<s>", "</s>", "[MASK]", "[CLS]", "<unk>", "<pad>", "▁", "<0x41>", "\u200b", "\ufeff",
             "\u00a0", "\u3000", "\t", "  ", "   ", "\u2028", "\x07", "Ａ\u0301", "ｅ\u0301"]
    import random
    rnd = random.Random(1234)
    for i in range(3000):
        k = rnd.randint(1, 12)
        parts = [rnd.choice(words) for _ in range(k)]
        seps = [rnd.choice([" ", " ", " ", "", "  ", "\t", " \u00a0", "   "]) for _ in range(k)]
        t = "".join(p + q for p, q in zip(parts, seps))
        if rnd.random() < 0.2:
            t = rnd.choice(["  ", " ", "\t", "\u3000"]) + t
        s.append(t)
    s += ["a" * 1000, "ab" * 700, "x" + "é" * 300, "😀" * 200, "1" * 500, "Supercalifragilisticexpialidocious" * 20,
          " " * 50, "\t\t\t", "", " leading", "trailing ", "  both  ", "<mask><mask>", " <mask> ", "a<mask>b",
          "<s>hello</s>", "[CLS][SEP]", "[MASK]x", "x [MASK] y", "e\u0301\u0301\u0301", "\u0301start",
          "ｈｅｌｌｏ　ｗｏｒｌｄ", "ＡＢＣ\u0301", "I'll've 'S 'RE", "hello world  " * 30, "\u2581hello \u2581 world",
          "tab\there", "mixed \u2003 spaces \u200a here", "x\u0345y\u0334z", "한글\u1100\u1161\u11a8", "Å Å Å"]
    return s


# ---------------------------------------------------------------- building the tokenizers

def save(tok, d, config=None):
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"))
    if config is not None:
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump(config, f)
    return d


def edit_json(src, d, fn, config=None):
    j = json.load(open(os.path.join(src, "tokenizer.json")))
    fn(j)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "tokenizer.json"), "w") as f:
        json.dump(j, f, ensure_ascii=False)
    if config is not None:
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump(config, f)
    Tokenizer.from_file(os.path.join(d, "tokenizer.json"))  # the reference must accept it
    return d


ROBERTA_CFG = {"bos_token": "<s>", "eos_token": "</s>", "cls_token": "<s>", "sep_token": "</s>",
               "pad_token": "<pad>", "unk_token": "<unk>", "mask_token": "<mask>", "model_max_length": 512}


def build(texts):
    out = {}
    out["minilm"] = MINILM

    def bert_generic(j):
        j["added_tokens"] += [
            {"id": 0, "content": "NaÏve", "single_word": False, "lstrip": True, "rstrip": True, "normalized": True,
             "special": False},
            {"id": 0, "content": "[NEW]", "single_word": True, "lstrip": False, "rstrip": False, "normalized": False,
             "special": True},
            {"id": 0, "content": "fox", "single_word": True, "lstrip": False, "rstrip": True, "normalized": True,
             "special": False}]
    out["bert-generic"] = edit_json(MINILM, os.path.join(WORK, "bert-generic"), bert_generic)

    # byte-level BPE, as RoBERTa
    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator(texts, vocab_size=8000, min_frequency=2,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], show_progress=False)
    tok = Tokenizer.from_str(bpe._tokenizer.to_str())
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, normalized=False, special=True)])
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")),
                                                      ("<s>", tok.token_to_id("<s>")))
    out["roberta"] = save(tok, os.path.join(WORK, "roberta"), ROBERTA_CFG)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"),
                             "isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=False)])
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=True),
        processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
                                      special_tokens=[("<s>", 0), ("</s>", 2)])])
    out["roberta-aps"] = save(tok, os.path.join(WORK, "roberta-aps"), ROBERTA_CFG)

    # Unigram, as XLM-R and DeBERTa-v3
    uni = Tokenizer(models.Unigram())
    uni.pre_tokenizer = pre_tokenizers.Metaspace()
    uni.train_from_iterator(texts, trainers.UnigramTrainer(vocab_size=8000, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                                           unk_token="<unk>", show_progress=False))
    blob = base64.b64encode(make_charsmap.build(make_charsmap.rules())).decode()
    ujson = json.loads(uni.to_str())

    def xlmr(j):
        j["model"]["unk_id"] = 3
        n = len(j["model"]["vocab"])
        j["added_tokens"] = [{"id": i, "content": c, "single_word": False, "lstrip": c == "<mask>", "rstrip": False,
                              "normalized": False, "special": True}
                             for i, c in enumerate(["<s>", "<pad>", "</s>", "<unk>"])]
        j["added_tokens"].append({"id": n, "content": "<mask>", "single_word": False, "lstrip": True, "rstrip": False,
                                  "normalized": False, "special": True})
        j["normalizer"] = {"type": "Sequence", "normalizers": [
            {"type": "Precompiled", "precompiled_charsmap": blob},
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]}
        j["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}
        sp = lambda s, t=0: {"SpecialToken": {"id": s, "type_id": t}}  # noqa: E731
        sq = lambda s, t=0: {"Sequence": {"id": s, "type_id": t}}  # noqa: E731
        j["post_processor"] = {"type": "TemplateProcessing",
                               "single": [sp("<s>"), sq("A"), sp("</s>")],
                               "pair": [sp("<s>"), sq("A"), sp("</s>"), sp("</s>"), sq("B"), sp("</s>")],
                               "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]},
                                                  "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}}
    udir = os.path.join(WORK, "unigram-base")
    os.makedirs(udir, exist_ok=True)
    with open(os.path.join(udir, "tokenizer.json"), "w") as f:
        json.dump(ujson, f)
    out["xlmr"] = edit_json(udir, os.path.join(WORK, "xlmr"), xlmr, ROBERTA_CFG)

    def deberta(j):
        names = ["[PAD]", "[CLS]", "[SEP]", "[UNK]"]
        for i, c in enumerate(names):
            j["model"]["vocab"][i][0] = c
        j["model"]["unk_id"] = 3
        j["model"]["byte_fallback"] = True
        j["model"]["vocab"] += [["<0x%02X>" % b, 0.0] for b in range(256)]
        n = len(j["model"]["vocab"])
        j["added_tokens"] = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                              "normalized": False, "special": True} for i, c in enumerate(names)]
        j["added_tokens"].append({"id": n, "content": "[MASK]", "single_word": False, "lstrip": False,
                                  "rstrip": False, "normalized": False, "special": True})
        j["normalizer"] = {"type": "Sequence", "normalizers": [
            {"type": "Strip", "strip_left": True, "strip_right": True},
            {"type": "Precompiled", "precompiled_charsmap": blob},
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]}
        j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
            {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True}]}
        sp = lambda s, t=0: {"SpecialToken": {"id": s, "type_id": t}}  # noqa: E731
        sq = lambda s, t=0: {"Sequence": {"id": s, "type_id": t}}  # noqa: E731
        j["post_processor"] = {"type": "TemplateProcessing",
                               "single": [sp("[CLS]"), sq("A"), sp("[SEP]")],
                               "pair": [sp("[CLS]"), sq("A"), sp("[SEP]"), sq("B", 1), sp("[SEP]", 1)],
                               "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [1], "tokens": ["[CLS]"]},
                                                  "[SEP]": {"id": "[SEP]", "ids": [2], "tokens": ["[SEP]"]}}}
    out["deberta"] = edit_json(udir, os.path.join(WORK, "deberta"), deberta,
                               {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]",
                                "mask_token": "[MASK]", "do_lower_case": False, "model_max_length": 512})

    # BPE with prefix/suffix and unk, several normalizers and pre-tokenizers
    b2 = Tokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##", end_of_word_suffix="</w>"))
    b2.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase(), normalizers.NFD(),
                                          normalizers.StripAccents()])
    b2.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Digits(individual_digits=True),
                                                pre_tokenizers.Punctuation("merged_with_previous")])
    b2.train_from_iterator(texts[:20000], trainers.BpeTrainer(
        vocab_size=3000, min_frequency=2, special_tokens=["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"],
        continuing_subword_prefix="##", end_of_word_suffix="</w>", limit_alphabet=200, show_progress=False))
    b2.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                      special_tokens=[("[CLS]", 1), ("[SEP]", 2)])
    b2.add_tokens([AddedToken("New York", normalized=True), AddedToken("c++", single_word=True, normalized=False)])
    out["bpe-misc"] = save(b2, os.path.join(WORK, "bpe-misc"))

    # llama-style: byte_fallback BPE over the Metaspace-like normalizers, no pre-tokenizer
    b3 = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    b3.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    b3.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="never", split=False)
    b3.train_from_iterator(texts[:20000], trainers.BpeTrainer(
        vocab_size=3000, special_tokens=["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)],
        limit_alphabet=150, show_progress=False))
    b3.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B:1",
                                                      special_tokens=[("<s>", 1)])
    out["llama-style"] = save(b3, os.path.join(WORK, "llama-style"), {"bos_token": "<s>", "eos_token": "</s>",
                                                                       "unk_token": "<unk>"})

    # WordPiece with the other components
    w = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=30))
    w.normalizer = normalizers.Sequence([normalizers.Strip(left=True, right=False), normalizers.NFKD(),
                                         normalizers.NFC(), normalizers.Replace("``", '"')])
    w.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(), pre_tokenizers.CharDelimiterSplit("-"),
        pre_tokenizers.Split("'", "merged_with_next"), pre_tokenizers.Split(Regex(r"\w+|[^\w\s]+"), "isolated"),
        pre_tokenizers.Split(" ", "contiguous", invert=True), pre_tokenizers.Digits(individual_digits=False)])
    w.train_from_iterator(texts[:20000], trainers.WordPieceTrainer(
        vocab_size=3000, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"], show_progress=False))
    w.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    out["misc-nf"] = save(w, os.path.join(WORK, "misc-nf"))
    return out


def main():
    texts = read_tsv(os.path.join(DATA, "sst2/train.tsv"), True) + read_tsv(os.path.join(DATA, "sst2/dev.tsv"), True) \
        + read_tsv(os.path.join(DATA, "agnews/dev.tsv"), False)
    hard = open(HARD, "rb").read().split(b"\n")
    if hard and hard[-1] == b"":
        hard.pop()
    stress = stress_set()
    print(f"{len(texts)} data texts, {len(hard)} hard cases, {len(stress)} stress lines")
    cfgs = build(texts)
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
