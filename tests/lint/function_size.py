#!/usr/bin/env python3
"""tests/lint/function_size.py — every function of the given C files fits a
screen: at most --max-lines lines (from the first line of its signature to
its closing brace) and at most --max-params parameters (a variadic "..."
counts as one).

Usage: function_size.py [--max-lines N] [--max-params N] [--list] FILE...
Prints one line per function over a limit ("file:line: name: 123 lines (limit
100)") and exits 1 when there is one (2 for a usage error or an unreadable
file); --list prints every function with its size.

A small scanner, not a C parser. Comments, string and character literals and
preprocessor lines (with their continuations) are blanked out, newlines kept;
then every '{' at file level whose header ends in ')' opens a function, unless
the header is a struct/union/enum or an initialiser ('=' outside parentheses).
Limits: braces hidden behind #if/#else branches are counted in both branches,
and a macro that expands to a function header is taken at face value.
Must not: be used for anything but the size rule (it knows no types).
"""
import re
import sys


def _skip_literal(text, i, quote):
    """index just past the string/char literal opening at i (stops at an unescaped newline)."""
    j, n = i + 1, len(text)
    while j < n and text[j] != quote and text[j] != "\n":
        j += 2 if text[j] == "\\" else 1
    return min(j + 1, n) if j < n and text[j] == quote else j


def blank(text):
    """text with comments, literals and preprocessor lines replaced by spaces (newlines kept)."""
    def spaces(s):
        return "".join(ch if ch == "\n" else " " for ch in s)

    out, i, n = [], 0, len(text)
    line_start = True  # only blanks since the last newline: a '#' here starts a directive
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(spaces(text[i:j]))
            i = j
        elif c in "\"'":
            j = _skip_literal(text, i, c)
            out.append(spaces(text[i:j]))
            i = j
        elif c == "#" and line_start:
            # a directive runs to the first newline not preceded by '\'; comments
            # and literals inside it are blanked with it
            j = i
            while j < n and text[j] != "\n":
                if text.startswith("/*", j):
                    k = text.find("*/", j + 2)
                    j = n if k < 0 else k + 2
                elif text[j] in "\"'":
                    j = _skip_literal(text, j, text[j])
                elif text[j] == "\\" and j + 1 < n and text[j + 1] == "\n":
                    j += 2
                else:
                    j += 1
            out.append(spaces(text[i:j]))
            i = j
        else:
            out.append(c)
            i += 1
            if c == "\n":
                line_start = True
            elif not c.isspace():
                line_start = False
            continue
        line_start = False
    return "".join(out)


def strip_attributes(head):
    """head without __attribute__((...)) (balanced parentheses)."""
    while True:
        m = re.search(r"\b__attribute__\s*\(", head)
        if not m:
            return head
        d, k = 0, m.end() - 1
        while k < len(head):
            d += {"(": 1, ")": -1}.get(head[k], 0)
            if d == 0:
                break
            k += 1
        head = head[:m.start()] + " " + head[k + 1:]


def depth0(s):
    """s with everything inside parentheses removed."""
    out, d = [], 0
    for ch in s:
        if ch == "(":
            d += 1
        elif ch == ")":
            d -= 1
        elif d == 0:
            out.append(ch)
    return "".join(out)


NOT_FUNC = re.compile(r"\b(struct|union|enum)\b[^()]*$")


def count_params(params):
    """parameters in a parameter list: commas outside nested parentheses + 1."""
    if params.strip() in ("", "void"):
        return 0
    d, n = 0, 1
    for ch in params:
        d += {"(": 1, ")": -1}.get(ch, 0)
        n += ch == "," and d == 0
    return n


def functions(path):
    """(name, first line, lines, parameters) of each function defined in path."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = blank(f.read())
    depth, head_start, i = 0, 0, 0
    while i < len(text):
        c = text[i]
        if c == "{" and depth == 0:
            head = text[head_start:i]
            stripped = strip_attributes(head).strip()
            depth = 1
            i += 1
            while i < len(text) and depth:
                depth += {"{": 1, "}": -1}.get(text[i], 0)
                i += 1
            if stripped.endswith(")") and not NOT_FUNC.search(stripped) and "=" not in depth0(stripped):
                # the parameter list: the parenthesis matching the last ')'
                d, k = 0, len(stripped) - 1
                while k >= 0:
                    d += {")": 1, "(": -1}.get(stripped[k], 0)
                    if d == 0:
                        break
                    k -= 1
                m = re.search(r"(\w+)\s*$", stripped[:k])
                first = head_start + len(head) - len(head.lstrip())
                line0 = text.count("\n", 0, first) + 1
                line1 = text.count("\n", 0, i - 1) + 1
                yield (m.group(1) if m else "?", line0, line1 - line0 + 1, count_params(stripped[k + 1:-1]))
            head_start = i
            continue
        if c in ";}" and depth == 0:
            head_start = i + 1
        i += 1


def main(argv):
    max_lines, max_params, listing, files = 100, 6, False, []
    it = iter(argv)
    try:
        for a in it:
            if a == "--max-lines":
                max_lines = int(next(it))
            elif a == "--max-params":
                max_params = int(next(it))
            elif a == "--list":
                listing = True
            elif a.startswith("-"):
                raise ValueError(a)
            else:
                files.append(a)
    except (StopIteration, ValueError):
        print("usage: function_size.py [--max-lines N] [--max-params N] [--list] FILE...", file=sys.stderr)
        return 2
    if not files:
        print("function_size.py: no files given", file=sys.stderr)
        return 2
    bad = 0
    for path in files:
        try:
            found = list(functions(path))
        except OSError as e:
            print(f"function_size.py: {path}: {e.strerror}", file=sys.stderr)
            return 2
        for name, line, length, params in found:
            if listing:
                print(f"{path}:{line}: {name}: {length} lines, {params} parameters")
            if length > max_lines:
                print(f"{path}:{line}: {name}: {length} lines (limit {max_lines}): split it")
                bad += 1
            if params > max_params:
                print(f"{path}:{line}: {name}: {params} parameters (limit {max_params}): pass a struct")
                bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
