#!/usr/bin/env python3
"""tests/reference/make_longdocs.py — compose long documents from AG News-style TSV.

Same output, byte for byte, as bt_longdoc_build_tsv() in engine/longdoc.c
(the unit test test_longdoc checks that). Input: `text<TAB>label` lines, no
header (e.g. ../shared/data/agnews/dev.tsv). Articles are grouped by label
(labels sorted bytewise), each class is shuffled with Philox4x32-10 (stream 5,
counter (class, i, 0, 0), Fisher-Yates from the end, j = ((v0<<32)|v1) % (i+1)),
and dealt into documents of --per-doc articles joined by a space; documents are
ordered round-robin over classes and --first/--count select a range (disjoint
ranges share no article: use them for train/dev).

  python3 tests/reference/make_longdocs.py --input ../shared/data/agnews/dev.tsv \
      --output build/longdocs/train.tsv --per-doc 30 --first 0 --count 240
"""
import argparse
import sys

M32 = 0xFFFFFFFF


def philox4x32_10(ctr, key):
    k0, k1 = key & M32, (key >> 32) & M32
    c = list(ctr)
    for _ in range(10):
        p0 = 0xD2511F53 * c[0]
        p1 = 0xCD9E8D57 * c[2]
        c = [(p1 >> 32) ^ c[1] ^ k0, p1 & M32, (p0 >> 32) ^ c[3] ^ k1, p0 & M32]
        k0 = (k0 + 0x9E3779B9) & M32
        k1 = (k1 + 0xBB67AE85) & M32
    return c


def random4(seed, stream, a, b, c, d):
    return philox4x32_10([a & M32, b & M32, c & M32, (d & 0xFFFFFF) | (stream << 24)], seed)


BUILD_STREAM = 5


def build(data, seed, per_doc, first, count, name="input"):
    arts = []
    for lineno, line in enumerate(data.split(b"\n"), 1):
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            continue
        tab = line.rfind(b"\t")
        if tab <= 0 or tab == len(line) - 1:
            raise SystemExit(f"{name}:{lineno}: expected `text<TAB>label` (no header line)")
        arts.append((line[:tab], line[tab + 1:]))
    labels = sorted(set(lab for _, lab in arts))
    by_class = [[i for i, (_, lab) in enumerate(arts) if lab == L] for L in labels]
    for c, o in enumerate(by_class):
        for i in range(len(o) - 1, 0, -1):
            r = random4(seed, BUILD_STREAM, c, i, 0, 0)
            j = ((r[0] << 32) | r[1]) % (i + 1)
            o[i], o[j] = o[j], o[i]
    max_docs = max((len(o) // per_doc for o in by_class), default=0)
    out = []
    doc = 0
    for g in range(max_docs):
        for c, o in enumerate(by_class):
            if g >= len(o) // per_doc:
                continue
            this = doc
            doc += 1
            if this < first or (count and this >= first + count):
                continue
            text = b" ".join(arts[o[g * per_doc + k]][0].replace(b"\t", b" ") for k in range(per_doc))
            out.append(text + b"\t" + labels[c] + b"\n")
    if not out:
        raise SystemExit(f"{name}: no documents in the range starting at {first} ({doc} documents in all)")
    return b"".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--per-doc", type=int, default=30)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--count", type=int, default=0, help="0: all documents from --first on")
    a = ap.parse_args()
    if a.per_doc < 1:
        raise SystemExit("--per-doc must be >= 1")
    with open(a.input, "rb") as f:
        data = f.read()
    out = build(data, a.seed, a.per_doc, a.first, a.count, a.input)
    with open(a.output, "wb") as f:
        f.write(out)
    n = out.count(b"\n")
    print(f"{a.output}: {n} documents", file=sys.stderr)


if __name__ == "__main__":
    main()
