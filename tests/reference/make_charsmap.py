#!/usr/bin/env python3
"""tests/reference/make_charsmap.py — builds a sentencepiece-format precompiled
character map (what a Precompiled normalizer carries, base64, in
tokenizer.json) for the tokenizer.json parity tests, since no sentencepiece
model is at hand: its rules resemble sentencepiece's nmt_nfkc (NFKC of every
code point, the NFD spelling of each composed character mapped to its NFKC
form, tabs/newlines to spaces, zero-width and C0 controls deleted).

Layout (spm_precompiled): u32 LE byte size of the trie, the trie as u32 LE
units of a darts-clone double array, then the replacement strings, each
NUL-terminated. A unit: label in bits 0-7, has_leaf bit 8, offset in bits
10-30 (child = pos ^ offset ^ byte; a key's value unit at child ^ offset,
bit 31 set, value = offset of its replacement string).

usage (as a module): blob = build(rules())  # bytes
"""
import struct
import sys
import unicodedata


def rules():
    m = {}
    for cp in range(1, 0x110000):
        if 0xD800 <= cp < 0xE000:
            continue
        c = chr(cp)
        n = unicodedata.normalize("NFKC", c)
        if n != c:
            m[c] = n
        d = unicodedata.normalize("NFD", c)
        if len(d) > 1:
            m[d] = n
    for c in "\t\n\r\u3000\u00a0":
        m[c] = " "
    for cp in list(range(1, 9)) + [0x0B, 0x0E, 0x1F, 0x7F, 0x200B, 0x200C, 0x200D, 0xFEFF]:
        m[chr(cp)] = ""
    m["\u2581"] = " "  # like nmt: the meta symbol typed in text is a space
    return {k.encode(): v.encode() for k, v in m.items() if "\0" not in k}


def build(mapping):
    # replacement strings
    norm = bytearray()
    value_of = {}
    for key, val in sorted(mapping.items()):
        if val not in value_of:
            value_of[val] = len(norm)
            norm += val + b"\0"
    # trie of keys
    root = {}
    for key, val in mapping.items():
        node = root
        for b in key:
            node = node.setdefault(b, {})
        node[None] = value_of[val]
    units = [0]
    used = bytearray(1 << 16)
    used[0] = 1
    bases = set()
    state = {"first_free": 1}

    def ensure(n):
        if len(units) <= n:
            units.extend([0] * (n + 1 - len(units)))
        if len(used) <= n + 256:
            used.extend(bytes(max(n + 512 - len(used), len(used))))

    def place(pos, node):
        labels = sorted(k for k in node if k is not None)
        if None in node:
            labels = [0] + labels
        if not labels:
            return
        f = state["first_free"]
        while used[f]:
            f += 1
        state["first_free"] = f
        tries = 0
        while True:  # try free positions for the first label; else a fresh 256-block at the end
            tries += 1
            if tries > 64:  # near the end of the array everything is free
                base = max(1, len(units) - 256)
                while True:
                    ensure(base ^ 255)
                    if base not in bases and all(not used[base ^ c] for c in labels):
                        break
                    base += 1
                break
            ensure(f)
            if not used[f]:
                base = f ^ labels[0]
                if base and base not in bases and (base ^ pos) < (1 << 21):
                    ensure(max(base ^ c for c in labels))
                    if all(not used[base ^ c] for c in labels):
                        break
            f += 1
        bases.add(base)
        units[pos] |= (base ^ pos) << 10
        if None in node:
            units[pos] |= 1 << 8
            units[base] = (1 << 31) | node[None]
            used[base] = 1
        children = []
        for c in labels:
            if c == 0:
                continue
            p = base ^ c
            used[p] = 1
            units[p] |= c
            children.append((p, node[c]))
        for p, child in children:
            place(p, child)

    sys.setrecursionlimit(10000)
    place(0, root)
    size = 256  # a power of two, so that pos ^ byte stays inside (the crate does not check)
    while size < len(units):
        size *= 2
    units += [0] * (size - len(units))
    assert all((u & 0x80000000) or (u >> 10) < (1 << 21) for u in units)
    trie = b"".join(struct.pack("<I", u) for u in units)
    return struct.pack("<I", len(trie)) + trie + bytes(norm)


if __name__ == "__main__":
    import base64
    blob = build(rules())
    print(len(blob), base64.b64encode(blob)[:60])
