#!/usr/bin/env python3
# tests/integration/kaggle_sim/run_notebook.py — runs a notebook's code cells
# in order in one namespace, the way "Save & Run All" does, under plain
# python3 (no Jupyter needed).
#
#   python3 run_notebook.py NOTEBOOK.ipynb
#
# Cells are validated as nbformat 4 first. A line starting with `!` or `%` is
# IPython syntax: `!cmd` runs through the shell (as IPython would), magics are
# refused (the notebook must not need them). An exception in a cell stops the
# run with exit 1, like a failed Kaggle run.
import json, subprocess, sys, traceback


def check_nbformat(nb):
    assert nb.get("nbformat") == 4, "nbformat must be 4"
    assert isinstance(nb.get("metadata"), dict), "notebook metadata missing"
    assert isinstance(nb.get("cells"), list) and nb["cells"], "no cells"
    for i, c in enumerate(nb["cells"]):
        assert c.get("cell_type") in ("code", "markdown", "raw"), f"cell {i}: bad cell_type"
        assert isinstance(c.get("metadata"), dict), f"cell {i}: metadata missing"
        src = c.get("source")
        assert isinstance(src, (str, list)), f"cell {i}: source must be str or list"
        if c["cell_type"] == "code":
            assert "outputs" in c and "execution_count" in c, f"cell {i}: code cell lacks outputs/execution_count"


def translate(src):
    out = []
    for line in src.splitlines():
        s = line.lstrip()
        ind = line[: len(line) - len(s)]
        if s.startswith("!"):
            out.append(f"{ind}__import__('subprocess').run({s[1:]!r}, shell=True)")
        elif s.startswith("%"):
            raise SystemExit(f"run_notebook: magic '{s}' is not supported")
        else:
            out.append(line)
    return "\n".join(out)


def main():
    nb = json.load(open(sys.argv[1]))
    check_nbformat(nb)
    ns = {"__name__": "__main__"}
    n = 0
    for i, c in enumerate(nb["cells"]):
        if c["cell_type"] != "code":
            continue
        n += 1
        src = c["source"] if isinstance(c["source"], str) else "".join(c["source"])
        print(f"--- cell {n} ---", flush=True)
        try:
            exec(compile(translate(src), f"<cell {n}>", "exec"), ns)
        except SystemExit:
            raise
        except BaseException:
            traceback.print_exc()
            print(f"run_notebook: cell {n} failed", flush=True)
            return 1
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
