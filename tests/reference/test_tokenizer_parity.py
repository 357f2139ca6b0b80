#!/usr/bin/env python3
"""tests/reference/test_tokenizer_parity.py — `baton tokenize` against Hugging
Face's BertTokenizerFast (Rust `tokenizers`), id for id.

usage: test_tokenizer_parity.py BATON MINILM_DIR DATA_DIR HARD_CASES WORKDIR

Configurations: the uncased all-MiniLM-L6-v2 (its own tokenizer.json on the
reference side, vocab.txt + tokenizer_config.json on ours) and a cased
WordPiece vocabulary trained here, deterministically, from the shared data
(do_lower_case=False on both sides). For each: every text of SST-2 train+dev
and AG News dev, single and as consecutive pairs, at max_length 16, 128, 512
(longest_first), pairs at 24 with only_first/only_second, padded --json
output, and hard_cases.txt; then every Unicode code point through the
normalizer and pre-tokenizer (`baton tokenize --words`) in three normalizer
settings. baton runs once per configuration (stdin -> stdout). Exit 1 on any
difference, with the first few diffs.
"""
import json, os, subprocess, sys, time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
from tokenizers import BertWordPieceTokenizer  # noqa: E402
from tokenizers.normalizers import BertNormalizer  # noqa: E402
from tokenizers.pre_tokenizers import BertPreTokenizer  # noqa: E402
from transformers import BertTokenizerFast  # noqa: E402
import transformers  # noqa: E402

transformers.logging.set_verbosity_error()
BATON, MINILM, DATA, HARD, WORK = sys.argv[1:6]
T0 = time.time()
compared = 0
mismatches = 0
shown = 0


def report(label, i, text, want, got):
    global mismatches, shown
    mismatches += 1
    if shown < 8:
        shown += 1
        print(f"MISMATCH [{label}] item {i}: {text!r}\n   want {want}\n   got  {got}")


def baton(model_dir, args, data: bytes):
    p = subprocess.run([BATON, "tokenize", model_dir, *args], input=data, capture_output=True)
    if p.returncode != 0:
        print(f"baton tokenize {' '.join(args)} failed (exit {p.returncode}): {p.stderr.decode(errors='replace')[-2000:]}")
        sys.exit(1)
    return p.stdout.decode().split("\n")[:-1]


def read_tsv(path, header):
    out = []
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    if header:
        lines = lines[1:]
    for l in lines:
        if not l:
            continue
        text = l.rsplit(b"\t", 1)[0]
        out.append(text.decode("utf-8"))
    return out


def compare_ids(label, texts, want, got):
    global compared
    if len(want) != len(got):
        report(label, -1, "(count)", len(want), len(got))
        return
    for i, (w, g) in enumerate(zip(want, got)):
        compared += 1
        ws = " ".join(map(str, w))
        if ws != g:
            report(label, i, texts[i], ws, g)


def ref_ids(tok, a, b=None, max_length=None, strategy="longest_first"):
    """ids from the Rust backend of a BertTokenizerFast (what its __call__ uses,
    minus the Python-side conversion of every field)."""
    bk = tok.backend_tokenizer
    bk.no_padding()
    if max_length:
        bk.enable_truncation(max_length, strategy=strategy)
    else:
        bk.no_truncation()
    encs = bk.encode_batch(list(zip(a, b)) if b is not None else a, add_special_tokens=True)
    return [e.ids for e in encs]


def run_config(name, model_dir, ref, texts, hard_bytes):
    data = ("\n".join(texts) + "\n").encode()
    pairs_a, pairs_b = texts[0::2], texts[1::2]
    n = min(len(pairs_a), len(pairs_b))
    pairs_a, pairs_b = pairs_a[:n], pairs_b[:n]
    pair_data = ("\n".join(x for ab in zip(pairs_a, pairs_b) for x in ab) + "\n").encode()
    pair_label = [f"{a!r} || {b!r}" for a, b in zip(pairs_a, pairs_b)]
    for m in (16, 128, 512):
        want = ref_ids(ref, texts, max_length=m)
        compare_ids(f"{name} single max={m}", texts, want, baton(model_dir, ["--max-length", str(m)], data))
        want = ref_ids(ref, pairs_a, pairs_b, max_length=m)
        compare_ids(f"{name} pair max={m}", pair_label, want,
                    baton(model_dir, ["--pair", "--max-length", str(m)], pair_data))
    # only_first / only_second: the reference raises for a pair it cannot cut;
    # compare on the pairs it accepts (baton must fail like it on the others).
    for strat in ("only_first", "only_second"):
        ok_a, ok_b, want, bad = [], [], [], None
        for a, b in zip(pairs_a[:3000], pairs_b[:3000]):
            try:
                w = ref_ids(ref, [a], [b], max_length=24, strategy=strat)[0]
            except Exception:
                bad = bad or (a, b)
                continue
            ok_a.append(a); ok_b.append(b); want.append(w)
        d = ("\n".join(x for ab in zip(ok_a, ok_b) for x in ab) + "\n").encode()
        compare_ids(f"{name} pair {strat} max=24", [f"{a!r} || {b!r}" for a, b in zip(ok_a, ok_b)], want,
                    baton(model_dir, ["--pair", "--max-length", "24", "--truncation", strat], d))
        if bad:
            p = subprocess.run([BATON, "tokenize", model_dir, "--pair", "--max-length", "24", "--truncation", strat],
                               input=(bad[0] + "\n" + bad[1] + "\n").encode(), capture_output=True)
            global compared
            compared += 1
            if p.returncode != 65 or b"too short" not in p.stderr:
                report(f"{name} {strat} error", 0, bad, "exit 65 'too short'", (p.returncode, p.stderr[-300:]))
    # padded JSON: ids, type ids and attention mask
    sub_a, sub_b = pairs_a[:3000], pairs_b[:3000]
    enc = ref(sub_a, sub_b, truncation=True, max_length=64, padding="max_length")
    got = baton(model_dir, ["--pair", "--max-length", "64", "--pad", "--json"],
                ("\n".join(x for ab in zip(sub_a, sub_b) for x in ab) + "\n").encode())
    for i, g in enumerate(got):
        compared += 1
        w = {k: enc[k][i] for k in ("input_ids", "token_type_ids", "attention_mask")}
        if json.loads(g) != w:
            report(f"{name} pair json pad", i, (sub_a[i], sub_b[i]), w, g)
    # hard cases (bytes; invalid UTF-8 becomes U+FFFD on the reference side)
    hard = hard_bytes.split(b"\n")
    if hard and hard[-1] == b"":
        hard.pop()
    htexts = [h.decode("utf-8", errors="replace") for h in hard]
    hdata = b"\n".join(hard) + b"\n"
    want = ref_ids(ref, htexts)
    compare_ids(f"{name} hard", htexts, want, baton(model_dir, ["--replace-invalid"], hdata))
    want = ref_ids(ref, htexts, max_length=16)
    compare_ids(f"{name} hard max=16", htexts, want, baton(model_dir, ["--replace-invalid", "--max-length", "16"], hdata))
    ha, hb = htexts[0::2], htexts[1::2]
    k = min(len(ha), len(hb))
    want = ref_ids(ref, ha[:k], hb[:k], max_length=20)
    compare_ids(f"{name} hard pair max=20", [f"{a!r} || {b!r}" for a, b in zip(ha, hb)], want,
                baton(model_dir, ["--replace-invalid", "--pair", "--max-length", "20"], b"\n".join(hard[:2 * k]) + b"\n"))
    print(f"  {name}: done ({time.time() - T0:.0f}s)")


def unicode_sweep(label, vocab_dir, lowercase, strip, chinese):
    """Every code point (no surrogates, no \\n) in a small context, through the
    normalizer and pre-tokenizer on both sides."""
    global compared
    d = os.path.join(WORK, "sweep-" + label)
    os.makedirs(d, exist_ok=True)
    os.system(f"cp '{vocab_dir}/vocab.txt' '{d}/vocab.txt'")
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": lowercase, "strip_accents": strip, "tokenize_chinese_chars": chinese}, f)
    norm = BertNormalizer(clean_text=True, handle_chinese_chars=chinese, strip_accents=strip, lowercase=lowercase)
    pre = BertPreTokenizer()
    lines = []
    for cp in range(0x110000):
        if 0xD800 <= cp < 0xE000 or cp == 10:
            continue
        c = chr(cp)
        lines.append("A\u0301" + c + "\u0334x" + c + "\u0F39Z\u0345" + c + "\u0130")
    got = baton(d, ["--words"], ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass"))
    if len(got) != len(lines):
        report(f"sweep {label}", -1, "(count)", len(lines), len(got))
        return
    for i, s in enumerate(lines):
        compared += 1
        want = " ".join(w.encode().hex() for w, _ in pre.pre_tokenize_str(norm.normalize_str(s)))
        if want != got[i]:
            report(f"sweep {label}", i, s, want, got[i])
    print(f"  sweep {label}: {len(lines)} code points ({time.time() - T0:.0f}s)")


def main():
    texts = read_tsv(os.path.join(DATA, "sst2/train.tsv"), True) + read_tsv(os.path.join(DATA, "sst2/dev.tsv"), True) \
        + read_tsv(os.path.join(DATA, "agnews/dev.tsv"), False)
    hard_bytes = open(HARD, "rb").read()
    print(f"{len(texts)} data texts, {hard_bytes.count(10)} hard cases")

    uncased = BertTokenizerFast.from_pretrained(MINILM)
    run_config("uncased", MINILM, uncased, texts, hard_bytes)

    cased_dir = os.path.join(WORK, "cased")
    os.makedirs(cased_dir, exist_ok=True)
    trainer = BertWordPieceTokenizer(clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False)
    trainer.train_from_iterator(texts, vocab_size=8000, min_frequency=2, limit_alphabet=1000,
                                special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], show_progress=False)
    trainer.save_model(cased_dir)
    with open(os.path.join(cased_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": False, "strip_accents": None, "tokenize_chinese_chars": True,
                   "model_max_length": 512}, f)
    cased = BertTokenizerFast(vocab_file=os.path.join(cased_dir, "vocab.txt"), do_lower_case=False)
    run_config("cased", cased_dir, cased, texts, hard_bytes)

    unicode_sweep("lower+strip", MINILM, True, None, True)
    unicode_sweep("cased", MINILM, False, None, False)
    unicode_sweep("lower-nostrip", MINILM, True, False, True)

    print(f"tokenizer parity: {compared} items compared, {mismatches} mismatches ({time.time() - T0:.0f}s)")
    sys.exit(1 if mismatches else 0)


main()
