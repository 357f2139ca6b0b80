#!/usr/bin/env python3
"""tests/reference/gen_unicode_exceptions.py — finds every code point where the
Unicode rules baton's tokenizer derives from utf8proc differ from what the
`tokenizers` crate (BertNormalizer / BertPreTokenizer) does, and writes them as
a small C table: engine/tokenizer_unicode_exc.h.

It asks the reference one code point at a time, stage by stage:
  clean     BertNormalizer(clean_text only)      -> removed / ' ' / kept
  nfd       tokenizers.normalizers.NFD           -> decomposition
  mn        BertNormalizer(strip_accents only)   -> dropped as Mn (for non-decomposing cps)
  lower     BertNormalizer(lowercase only)       -> Rust char::to_lowercase
  punct/ws  BertPreTokenizer on "a" + c + "a"    -> split as punctuation / whitespace
and compares with the rule the C code applies (mirrored here through ctypes on
the same libutf8proc the binary links). Usage:
  gen_unicode_exceptions.py            write the header, print a summary
  gen_unicode_exceptions.py --check    exit 1 if the header is not current
"""
import ctypes, ctypes.util, os, sys
from tokenizers.normalizers import BertNormalizer, NFD
from tokenizers.pre_tokenizers import BertPreTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "engine", "tokenizer_unicode_exc.h")

lib = ctypes.CDLL(ctypes.util.find_library("utf8proc") or "libutf8proc.so.2")
lib.utf8proc_category.argtypes = [ctypes.c_int32]
lib.utf8proc_category.restype = ctypes.c_int
lib.utf8proc_tolower.argtypes = [ctypes.c_int32]
lib.utf8proc_tolower.restype = ctypes.c_int32
lib.utf8proc_decompose_char.argtypes = [ctypes.c_int32, ctypes.POINTER(ctypes.c_int32),
                                        ctypes.c_ssize_t, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
lib.utf8proc_decompose_char.restype = ctypes.c_ssize_t
UTF8PROC_DECOMPOSE = 1 << 4
CN, MN, PC, PO, CC, CF, CS, CO = 0, 6, 12, 18, 26, 27, 28, 29
lib.utf8proc_unicode_version.restype = ctypes.c_char_p

class Prop(ctypes.Structure):  # the leading fields of utf8proc_property_t
    _fields_ = [("category", ctypes.c_int16), ("combining_class", ctypes.c_int16)]
lib.utf8proc_get_property.argtypes = [ctypes.c_int32]
lib.utf8proc_get_property.restype = ctypes.POINTER(Prop)

# Rust char::is_whitespace == the White_Space property (stable since Unicode 6.3).
WHITE_SPACE = set(range(0x09, 0x0E)) | {0x20, 0x85, 0xA0, 0x1680} | set(range(0x2000, 0x200B)) \
    | {0x2028, 0x2029, 0x202F, 0x205F, 0x3000}

def ours_clean(cp):  # 0 keep, 1 remove, 2 space  (mirrors tok_classify() in engine/tokenizer_unicode.c)
    if cp in (9, 10, 13):
        return 2
    cat = lib.utf8proc_category(cp)
    if cp == 0 or cp == 0xFFFD or cat in (CC, CF, CS, CO):
        return 1
    return 2 if cp in WHITE_SPACE else 0

def ours_nfd(cp):
    buf = (ctypes.c_int32 * 8)()
    last = ctypes.c_int(0)
    n = lib.utf8proc_decompose_char(cp, buf, 8, UTF8PROC_DECOMPOSE, ctypes.byref(last))
    return "".join(chr(buf[i]) for i in range(n))

def ours_mn(cp):
    return lib.utf8proc_category(cp) == MN

def ours_lower(cp):
    if cp == 0x130:
        return "i\u0307"
    return chr(lib.utf8proc_tolower(cp))

def ours_punct(cp):
    return (cp < 128 and chr(cp) in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") or PC <= lib.utf8proc_category(cp) <= PO

def main():
    clean = BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False)
    strip = BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=False)
    lower = BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=False, lowercase=True)
    nfd = NFD()
    pre = BertPreTokenizer()
    exc_clean, exc_nfd, exc_mn, exc_lower, exc_punct, exc_ccc0 = [], [], [], [], [], []
    for cp in range(0x110000):
        if 0xD800 <= cp < 0xE000:
            continue  # not encodable in valid UTF-8: baton's decoder rejects them
        c = chr(cp)
        r = clean.normalize_str(c)
        ref = 1 if r == "" else 2 if r == " " and c != " " else 0
        if c == " ":
            ref = 2
        if ref != ours_clean(cp):
            exc_clean.append((cp, ref))
        if ref != 0:
            continue  # removed or turned into ' ' before any later stage sees it
        d = nfd.normalize_str(c)
        if d != ours_nfd(cp):
            exc_nfd.append((cp, d))
        if d == c:
            rmn = strip.normalize_str(c) == ""
            if rmn != ours_mn(cp):
                exc_mn.append((cp, rmn))
            if lib.utf8proc_get_property(cp).contents.combining_class != 0:
                # canonical reordering: does the reference know this mark's class?
                # (a class never changes once assigned, so only zero-ness can differ)
                moved = (nfd.normalize_str("a" + c + "\u0334") != "a" + c + "\u0334"
                         or nfd.normalize_str("a\u0301" + c) != "a\u0301" + c)
                if not moved:
                    exc_ccc0.append((cp, 1))
    # lowercase and pre-tokenizer classes apply to characters produced by earlier
    # stages too (NFD output, lowercase output): check every code point.
    for cp in range(0x110000):
        if 0xD800 <= cp < 0xE000:
            continue
        c = chr(cp)
        lo = lower.normalize_str(c)
        if lo != ours_lower(cp):
            exc_lower.append((cp, lo))
        parts = [p for p, _ in pre.pre_tokenize_str("a" + c + "a")]
        rp = len(parts) == 3 and parts[1] == c
        if rp != ours_punct(cp) and not (cp in WHITE_SPACE):
            exc_punct.append((cp, rp))
        rws = parts == ["a", "a"]
        if rws != (cp in WHITE_SPACE):
            sys.exit("pre-tokenizer whitespace differs from White_Space at U+%04X: extend WHITE_SPACE" % cp)
    for cp, lo in exc_lower:
        if len(lo) != 1:
            sys.exit("U+%04X lowercases to %d chars in the reference: teach the generator" % (cp, len(lo)))
    for cp, d in exc_nfd:
        if len(d) > 4:
            sys.exit("U+%04X: NFD longer than 4 in the reference" % cp)

    def ranges(pairs):  # [(cp, val)] -> [(first, last, val)] merged
        out = []
        for cp, v in pairs:
            if out and out[-1][1] == cp - 1 and out[-1][2] == v:
                out[-1] = (out[-1][0], cp, v)
            else:
                out.append((cp, cp, v))
        return out

    lines = []
    w = lines.append
    w("/* engine/tokenizer_unicode_exc.h — GENERATED by tests/reference/gen_unicode_exceptions.py; do not edit.")
    w(" *")
    w(" * Code points where the tokenizers crate (BertNormalizer/BertPreTokenizer, built on")
    w(" * the old `unicode_categories` / `unicode-normalization-alignments` tables and Rust std)")
    w(" * disagrees with the rule engine/tokenizer_unicode.c derives from utf8proc %s." % lib.utf8proc_unicode_version().decode())
    w(" * Reference: tokenizers %s. Ranges are inclusive and sorted. */" % __import__("tokenizers").__version__)
    w("/* clean_text class override: 0 keep, 1 remove, 2 becomes ' ' */")
    w("static const struct tok_exc_range TOK_EXC_CLEAN[] = {")
    for a, b, v in ranges(exc_clean):
        w("    {0x%04X, 0x%04X, %d}," % (a, b, v))
    w("    {0x110000, 0x110000, 0}};")
    w("/* is_mark_nonspacing override (dropped by strip_accents): 1 yes, 0 no */")
    w("static const struct tok_exc_range TOK_EXC_MN[] = {")
    for a, b, v in ranges(exc_mn):
        w("    {0x%04X, 0x%04X, %d}," % (a, b, int(v)))
    w("    {0x110000, 0x110000, 0}};")
    w("/* canonical combining class is 0 in the reference (utf8proc has a class) */")
    w("static const struct tok_exc_range TOK_EXC_CCC0[] = {")
    for a, b, v in ranges(exc_ccc0):
        w("    {0x%04X, 0x%04X, %d}," % (a, b, int(v)))
    w("    {0x110000, 0x110000, 0}};")
    w("/* punctuation override for the pre-tokenizer: 1 yes, 0 no */")
    w("static const struct tok_exc_range TOK_EXC_PUNCT[] = {")
    for a, b, v in ranges(exc_punct):
        w("    {0x%04X, 0x%04X, %d}," % (a, b, int(v)))
    w("    {0x110000, 0x110000, 0}};")
    w("/* lowercase override (Rust char::to_lowercase, single code point) */")
    w("static const struct tok_exc_map TOK_EXC_LOWER[] = {")
    for cp, lo in exc_lower:
        w("    {0x%04X, {0x%04X}}," % (cp, ord(lo)))
    w("    {0x110000, {0}}};")
    w("/* canonical decomposition override (NFD of unicode-normalization-alignments) */")
    w("static const struct tok_exc_map TOK_EXC_NFD[] = {")
    for cp, d in exc_nfd:
        w("    {0x%04X, {%s}}," % (cp, ", ".join("0x%04X" % ord(x) for x in d) or "0"))
    w("    {0x110000, {0}}};")
    text = "\n".join(lines) + "\n"
    summary = ("unicode exceptions: clean %d cps (%d ranges), mn %d, punct %d, lower %d, nfd %d, ccc0 %d"
               % (len(exc_clean), len(ranges(exc_clean)), len(exc_mn), len(exc_punct), len(exc_lower), len(exc_nfd), len(exc_ccc0)))
    if "--check" in sys.argv:
        cur = open(OUT).read() if os.path.exists(OUT) else ""
        if cur != text:
            sys.exit("engine/tokenizer_unicode_exc.h is not current for this utf8proc/tokenizers: "
                     "run python3 tests/reference/gen_unicode_exceptions.py")
        print(summary + " (header current)")
        return
    with open(OUT, "w") as f:
        f.write(text)
    print(summary, "->", OUT)

if __name__ == "__main__":
    main()
