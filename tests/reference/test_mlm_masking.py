#!/usr/bin/env python3
"""tests/reference/test_mlm_masking.py — the MLM masking rule against references.

1. An independent Python Philox4x32-10 is checked against the Random123
   known-answer vectors.
2. The documented rule (engine/mlm.h, docs/tasks.md) re-implemented here
   reproduces the golden masks hard-coded in tests/unit/test_mlm.c (so those
   arrays are not just "whatever the C code printed").
3. When torch + transformers are present: HF DataCollatorForLanguageModeling
   (the behaviour baton copies) is run on many tokens with a tiny WordPiece
   vocabulary, and its selection rate, 80/10/10 split, special-token exclusion
   and random-id range are compared with the same statistics of the rule here.
Exit 0 pass, 1 fail, 77 skip (part 3 only is optional: parts 1-2 need no modules).
"""
import os
import re
import struct
import sys

M32 = 0xFFFFFFFF
STREAM_MLM = 3
IGNORE = -100


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


def u01(x):
    return (x >> 8) * (1.0 / 16777216.0)


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def mask(seed, epoch, ex, ids, cont, vocab, mask_id, specials, prob=0.15, mf=0.8, rf=0.1, whole_word=False):
    """The rule of bt_mlm_mask, written from its documentation."""
    prob, mfr, mf = f32(prob), f32(f32(mf) + f32(rf)), f32(mf)
    out, labels = list(ids), [IGNORE] * len(ids)
    in_word, act = False, -1
    for p, i in enumerate(ids):
        if i in specials:
            in_word = False
            continue
        r = random4(seed, STREAM_MLM, epoch, ex, p, 0)
        if not (whole_word and cont and cont[p] and in_word):
            act = -1
            if u01(r[0]) < prob:
                u = u01(r[1])
                act = 0 if u < mf else 1 if u < mfr else 2
        in_word = True
        if act < 0:
            continue
        labels[p] = i
        if act == 0:
            out[p] = mask_id
        elif act == 1:
            out[p] = ((r[2] << 32) | r[3]) % vocab
    return out, labels


def c_array(src, name):
    m = re.search(r"\b%s\[N\]\s*=\s*\{([^}]*)\}" % re.escape(name), src)
    if not m:
        sys.exit(f"FAIL: array {name} not found in tests/unit/test_mlm.c")
    return [int(x) for x in m.group(1).replace("\n", " ").split(",") if x.strip()]


def main():
    root = os.environ.get("ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
    # 1. Random123 known answers (kat_vectors: philox4x32_10)
    assert philox4x32_10([0, 0, 0, 0], 0) == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    assert philox4x32_10([M32] * 4, (M32 << 32) | M32) == [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]
    assert philox4x32_10([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], (0x299F31D0 << 32) | 0xA4093822) == [
        0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]
    print("philox: Random123 known answers ok")

    # 2. golden masks of tests/unit/test_mlm.c
    src = open(os.path.join(root, "tests/unit/test_mlm.c")).read()
    n = 48
    ids = [101] + [1000 + p for p in range(n - 4)] + [102, 0, 0]
    o, lab = mask(42, 7, 7, ids, None, 30522, 103, {101, 102, 0})
    assert o == c_array(src, "want_ids") and lab == c_array(src, "want_lab"), "golden (per token) differs"
    cont = [1 if p % 3 == 2 else 0 for p in range(n)]
    o, lab = mask(42, 3, 7, ids, cont, 30522, 103, {101, 102, 0}, prob=0.3, whole_word=True)
    assert o == c_array(src, "wwm_ids") and lab == c_array(src, "wwm_lab"), "golden (whole word) differs"
    print("golden masks of test_mlm.c reproduced")

    # 3. HF DataCollatorForLanguageModeling statistics
    try:
        import torch
        from transformers import BertTokenizerFast, DataCollatorForLanguageModeling
    except Exception as e:  # noqa: BLE001
        print(f"SKIP: part 3 needs torch and transformers ({e})", file=sys.stderr)
        sys.exit(77)
    import tempfile
    words = [f"w{i}" for i in range(200)]
    with tempfile.TemporaryDirectory() as d:
        vp = os.path.join(d, "vocab.txt")
        with open(vp, "w") as f:
            f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words) + "\n")
        tok = BertTokenizerFast(vp)
    V = len(tok)
    B, S = 64, 128
    torch.manual_seed(0)
    batch = []
    for b in range(B):
        k = S - 2 - (b % 16)  # some padding
        body = [5 + (b * 31 + p * 7) % 200 for p in range(k)]
        batch.append({"input_ids": [tok.cls_token_id] + body + [tok.sep_token_id]})
    col = DataCollatorForLanguageModeling(tok, mlm=True, mlm_probability=0.15)
    hf = {"sel": 0, "mask": 0, "rand": 0, "keep": 0, "tokens": 0, "special_sel": 0, "oob": 0}
    ours = dict(hf)

    def tally(t, orig, out, labels, specials):
        for p in range(len(orig)):
            if orig[p] in specials:
                t["special_sel"] += labels[p] != IGNORE
                continue
            t["tokens"] += 1
            if labels[p] == IGNORE:
                continue
            t["sel"] += 1
            t["oob"] += not (0 <= out[p] < V)
            if out[p] == tok.mask_token_id:
                t["mask"] += 1
            elif out[p] == orig[p]:
                t["keep"] += 1
            else:
                t["rand"] += 1

    specials = {tok.cls_token_id, tok.sep_token_id, tok.pad_token_id}
    for rep in range(40):
        out = col([dict(x) for x in batch])
        for b in range(B):
            L = len(batch[b]["input_ids"])
            tally(hf, batch[b]["input_ids"], out["input_ids"][b][:L].tolist(), out["labels"][b][:L].tolist(), specials)
            o, lab = mask(11, rep, b, batch[b]["input_ids"], None, V, tok.mask_token_id, specials)
            tally(ours, batch[b]["input_ids"], o, lab, specials)
    ok = True
    for name, t in (("HF", hf), ("baton", ours)):
        sel = t["sel"]
        rate = sel / t["tokens"]
        fr = (t["mask"] / sel, t["rand"] / sel, t["keep"] / sel)
        print(f"{name}: selected {rate:.4f} of {t['tokens']}; mask {fr[0]:.4f} random {fr[1]:.4f} "
              f"unchanged {fr[2]:.4f}; specials selected {t['special_sel']}; ids out of range {t['oob']}")
        # random replacements that hit the original id count as "unchanged" (1/V of 10%)
        if abs(rate - 0.15) > 0.01 or abs(fr[0] - 0.8) > 0.02 or abs(fr[1] - 0.1 * (1 - 1 / V)) > 0.015 \
                or abs(fr[2] - 0.1 - 0.1 / V) > 0.015 or t["special_sel"] or t["oob"]:
            ok = False
    if not ok:
        print("FAIL: masking statistics differ from HF's rule")
        sys.exit(1)
    print("masking statistics agree with HF DataCollatorForLanguageModeling")


if __name__ == "__main__":
    main()
