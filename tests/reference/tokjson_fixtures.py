#!/usr/bin/env python3
"""tests/reference/tokjson_fixtures.py — the tokenizer.json files the parity
test (test_tokenizer_json_parity.py) and the benchmark
(bench/bench_tokenizer_json.py) use, made here from the shared data with the
`tokenizers` library (nothing is downloaded), and the stress texts.

build(texts, work, minilm, only=None) -> {name: model directory}; see the
parity test's docstring for what each tokenizer exercises.
"""
import base64, json, os, random, sys

from tokenizers import (AddedToken, ByteLevelBPETokenizer, Regex, Tokenizer, models, normalizers,
                        pre_tokenizers, processors, trainers)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_charsmap  # noqa: E402

def read_tsv(path, header):
    lines = open(path, "rb").read().split(b"\n")
    if header:
        lines = lines[1:]
    return [l.rsplit(b"\t", 1)[0].decode("utf-8") for l in lines if l]



# ---------------------------------------------------------------- stress set

def stress_set():
    s = []
    words = ["the", "quick", "Brown", "fox", "café", "naïve", "Ünïcödé", "straße", "İstanbul", "ΣΊΣΥΦΟΣ",
             "日本語のテキスト", "中文字符", "한국어", "العربية", "עברית", "हिन्दी", "ไทย", "😀", "👩‍👩‍👧‍👦", "🇫🇷",
             "👍🏽", "x²", "①②", "ﬁne", "Ｆｕｌｌｗｉｄｔｈ", "e\u0301", "a\u0308\u0301", "don't", "we'll", "it's",
             "I'M", "3.14159", "1,000,000", "$100", "C++", "e-mail", "http://ex.com/a?b=c", "#hash", "@user",
             "<mask>", "<s>", "</s>", "[MASK]", "[CLS]", "<unk>", "<pad>", "▁", "<0x41>", "\u200b", "\ufeff",
             "\u00a0", "\u3000", "\t", "  ", "   ", "\u2028", "\x07", "Ａ\u0301", "ｅ\u0301"]
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


def build(texts, WORK, MINILM, only=None):
    out = {}
    want = lambda n: only is None or n in only  # noqa: E731
    if want("minilm"):
        out["minilm"] = MINILM

    def bert_generic(j):
        j["added_tokens"] += [
            {"id": 0, "content": "NaÏve", "single_word": False, "lstrip": True, "rstrip": True, "normalized": True,
             "special": False},
            {"id": 0, "content": "[NEW]", "single_word": True, "lstrip": False, "rstrip": False, "normalized": False,
             "special": True},
            {"id": 0, "content": "fox", "single_word": True, "lstrip": False, "rstrip": True, "normalized": True,
             "special": False}]
    if want("bert-generic"):
        out["bert-generic"] = edit_json(MINILM, os.path.join(WORK, "bert-generic"), bert_generic)
    if want("roberta") or want("roberta-aps"):
        build_roberta(texts, WORK, out)
    if want("xlmr") or want("deberta"):
        build_unigram(texts, WORK, out)
    if want("bpe-misc") or want("llama-style") or want("misc-nf"):
        build_misc(texts, WORK, out)
    return {k: v for k, v in out.items() if want(k)}


def build_roberta(texts, WORK, out):
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


def xlmr_shape(j, blob, mask_in_vocab=False):
    """Unigram tokenizer.json j (its specials <s> <pad> </s> <unk> at 0-3)
    reshaped as XLM-R's: unk_id 3, <mask> (lstrip) after the pieces
    (mask_in_vocab: also the model's last piece, as XLMRobertaConverter
    writes it), Precompiled char map blob (base64) + Replace(" {2,}"),
    Metaspace prepend "always", <s> $A </s> / <s> $A </s> </s> $B </s>."""
    j["model"]["unk_id"] = 3
    if mask_in_vocab:
        j["model"]["vocab"].append(["<mask>", 0.0])
    n = len(j["model"]["vocab"]) - (1 if mask_in_vocab else 0)
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
    return j


def build_unigram(texts, WORK, out):
    # Unigram, as XLM-R and DeBERTa-v3
    uni = Tokenizer(models.Unigram())
    uni.pre_tokenizer = pre_tokenizers.Metaspace()
    uni.train_from_iterator(texts, trainers.UnigramTrainer(vocab_size=8000, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                                           unk_token="<unk>", show_progress=False))
    blob = base64.b64encode(make_charsmap.build(make_charsmap.rules())).decode()
    ujson = json.loads(uni.to_str())

    udir = os.path.join(WORK, "unigram-base")
    os.makedirs(udir, exist_ok=True)
    with open(os.path.join(udir, "tokenizer.json"), "w") as f:
        json.dump(ujson, f)
    out["xlmr"] = edit_json(udir, os.path.join(WORK, "xlmr"), lambda j: xlmr_shape(j, blob), ROBERTA_CFG)

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


def build_misc(texts, WORK, out):
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


