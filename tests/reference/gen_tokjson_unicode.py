#!/usr/bin/env python3
"""tests/reference/gen_tokjson_unicode.py — finds every code point where the
character classes and normalization forms baton's tokenizer.json pipeline
derives from utf8proc differ from the `tokenizers` crate, and writes them as
a C table: engine/tokjson_unicode_exc.h (used by engine/tokjson_unicode.c).

Probed one code point at a time through the reference:
  L, N        Split(Regex(r"\\p{L}")) / \\p{N}, "removed"     (Oniguruma)
  word_og     Split(Regex(r"\\w"))                          (Oniguruma)
  word_rx     Whitespace pre-tokenizer on "a" + c           (`regex` crate \\w)
  numeric     Digits(individual_digits) on "a" + c + "a"    (char::is_numeric)
  mark        StripAccents on c                             (is_combining_mark)
  ws          Strip on c, Whitespace on "a" + c + "a"       (must equal White_Space)
  NFD/NFKD    of c                                          (decomposition override)
  compose     NFC of utf8proc's NFD of c                    (composites the crate lacks)
  extend      Precompiled({"A": "B"}) on "A" + c: "B" when c joins A's
              grapheme cluster (the crate's unicode-segmentation), vs
              utf8proc_grapheme_break
and compared with the base rule of engine/tokjson_unicode.c (mirrored here
through ctypes on the same libutf8proc). Usage:
  gen_tokjson_unicode.py            write the header, print a summary
  gen_tokjson_unicode.py --check    exit 1 if the header is not current
"""
import ctypes, ctypes.util, os, sys
import tokenizers
from tokenizers import normalizers, pre_tokenizers, Regex

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "engine", "tokjson_unicode_exc.h")

lib = ctypes.CDLL(ctypes.util.find_library("utf8proc") or "libutf8proc.so.2")
lib.utf8proc_category.argtypes = [ctypes.c_int32]
lib.utf8proc_category.restype = ctypes.c_int
lib.utf8proc_unicode_version.restype = ctypes.c_char_p
lib.utf8proc_grapheme_break.argtypes = [ctypes.c_int32, ctypes.c_int32]
lib.utf8proc_grapheme_break.restype = ctypes.c_bool
for f in ("utf8proc_NFD", "utf8proc_NFKD", "utf8proc_NFC"):
    getattr(lib, f).restype = ctypes.c_void_p
    getattr(lib, f).argtypes = [ctypes.c_char_p]
libc = ctypes.CDLL(None)
libc.free.argtypes = [ctypes.c_void_p]

WHITE_SPACE = set(range(0x09, 0x0E)) | {0x20, 0x85, 0xA0, 0x1680} | set(range(0x2000, 0x200B)) \
    | {0x2028, 0x2029, 0x202F, 0x205F, 0x3000}


def u8p(fn, s):
    p = fn(s.encode("utf-8"))
    r = ctypes.string_at(p).decode("utf-8")
    libc.free(p)
    return r


def base_rules(cat, cp):  # mirrors tju_flags() in engine/tokjson_unicode.c
    L = 1 <= cat <= 5
    M = 6 <= cat <= 8
    N = 9 <= cat <= 11
    return {
        "L": L,
        "N": N,
        "word_og": L or M or N or cat == 12,
        "word_rx": L or M or cat in (9, 10, 12) or cp in (0x200C, 0x200D),
        "numeric": N,
        "mark": M,
    }


def main():
    probes = {}
    sp = {k: pre_tokenizers.Split(Regex(p), "removed") for k, p in (("L", r"\p{L}"), ("N", r"\p{N}"), ("word_og", r"\w"))}
    ws = pre_tokenizers.Whitespace()
    dg = pre_tokenizers.Digits(individual_digits=True)
    sa = normalizers.StripAccents()
    st = normalizers.Strip()
    nfd, nfkd, nfc = normalizers.NFD(), normalizers.NFKD(), normalizers.NFC()
    exc = {k: [] for k in ("L", "N", "word_og", "word_rx", "numeric", "mark")}
    decomp, nocompose, extend = [], [], []
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import make_charsmap
    pc = normalizers.Precompiled(make_charsmap.build({b"A": b"B"}))
    for cp in range(0x110000):
        if 0xD800 <= cp < 0xE000:
            continue
        c = chr(cp)
        ref = {k: s.pre_tokenize_str(c) == [] for k, s in sp.items()}
        r = ws.pre_tokenize_str("a" + c)
        ref["word_rx"] = len(r) == 1 and r[0][0] == "a" + c
        ref["numeric"] = len(dg.pre_tokenize_str("a" + c + "a")) == 3
        ref["mark"] = sa.normalize_str(c) == ""
        is_ws = st.normalize_str(c) == ""
        r = [p for p, _ in ws.pre_tokenize_str("a" + c + "a")]
        if is_ws != (cp in WHITE_SPACE) or (r == ["a", "a"]) != (cp in WHITE_SPACE):
            sys.exit("U+%04X: whitespace differs from White_Space: extend WHITE_SPACE" % cp)
        ours = base_rules(lib.utf8proc_category(cp), cp)
        for k in exc:
            if ours[k] != ref[k]:
                exc[k].append((cp, int(ref[k])))
        if cp == 0:
            continue
        if cp not in (10, 13):
            ref_ext = pc.normalize_str("A" + c) == "B"
            if ref_ext != (not lib.utf8proc_grapheme_break(ord("A"), cp)):
                extend.append((cp, int(ref_ext)))
        for compat, n, f in ((0, nfd, lib.utf8proc_NFD), (1, nfkd, lib.utf8proc_NFKD)):
            want = n.normalize_str(c)
            if want != u8p(f, c):
                decomp.append((cp, compat, want))
        d = u8p(lib.utf8proc_NFD, c)
        if len(d) > 1 and nfc.normalize_str(d) != u8p(lib.utf8proc_NFC, d):
            if u8p(lib.utf8proc_NFC, d) != c:
                sys.exit("U+%04X: composition differs in a way the generator does not model" % cp)
            nocompose.append(cp)

    def ranges(pairs):
        out = []
        for cp, v in pairs:
            if out and out[-1][1] == cp - 1 and out[-1][2] == v:
                out[-1] = (out[-1][0], cp, v)
            else:
                out.append((cp, cp, v))
        return out

    lines = []
    w = lines.append
    w("/* engine/tokjson_unicode_exc.h — GENERATED by tests/reference/gen_tokjson_unicode.py; do not edit.")
    w(" *")
    w(" * Code points where the tokenizers crate (Oniguruma and `regex` classes, Rust std,")
    w(" * unicode-normalization-alignments) disagrees with the base rule engine/tokjson_unicode.c")
    w(" * derives from utf8proc %s. Reference: tokenizers %s. Ranges are inclusive and sorted. */"
      % (lib.utf8proc_unicode_version().decode(), tokenizers.__version__))
    names = {"L": "TJ_EXC_L", "N": "TJ_EXC_N", "word_og": "TJ_EXC_WORD_OG", "word_rx": "TJ_EXC_WORD_RX",
             "numeric": "TJ_EXC_NUMERIC", "mark": "TJ_EXC_MARK"}
    for k, name in names.items():
        w("static const struct tj_exc_range %s[] = {" % name)
        for a, b, v in ranges(exc[k]):
            w("    {0x%04X, 0x%04X, %d}," % (a, b, v))
        w("    {0x110000, 0x110000, 0}};")
    w("/* joins the grapheme cluster of the char before it (unicode-segmentation), 1 yes, 0 no */")
    w("static const struct tj_exc_range TJ_EXC_EXTEND[] = {")
    for a, b, v in ranges(extend):
        w("    {0x%04X, 0x%04X, %d}," % (a, b, v))
    w("    {0x110000, 0x110000, 0}};")
    w("/* decompositions of the crate (compat 0: NFD, 1: NFKD): offset/length into TJ_EXC_DECOMP_CPS */")
    flat = []
    w("static const struct tj_exc_decomp TJ_EXC_DECOMP[] = {")
    for cp, compat, d in decomp:
        w("    {0x%04X, %d, %d, %d}," % (cp, compat, len(flat), len(d)))
        flat.extend(ord(x) for x in d)
    w("    {0x110000, 0, 0, 0}};")
    w("static const int32_t TJ_EXC_DECOMP_CPS[] = {")
    for i in range(0, len(flat), 8):
        w("    " + " ".join("0x%04X," % x for x in flat[i:i + 8]))
    w("    0};")
    w("/* primary composites utf8proc knows and the crate does not compose */")
    w("static const int32_t TJ_EXC_NOCOMPOSE[] = {")
    for cp in nocompose:
        w("    0x%04X," % cp)
    w("    0x110000};")
    text = "\n".join(lines) + "\n"
    summary = "tokjson unicode exceptions: " + ", ".join("%s %d" % (k, len(v)) for k, v in exc.items()) + \
        ", decompositions %d, no-compose %d, extend %d" % (len(decomp), len(nocompose), len(extend))
    if "--check" in sys.argv:
        cur = open(OUT).read() if os.path.exists(OUT) else ""
        if cur != text:
            sys.exit("engine/tokjson_unicode_exc.h is not current for this utf8proc/tokenizers: "
                     "run python3 tests/reference/gen_tokjson_unicode.py")
        print(summary + " (header current)")
        return
    with open(OUT, "w") as f:
        f.write(text)
    print(summary, "->", OUT)


if __name__ == "__main__":
    main()
