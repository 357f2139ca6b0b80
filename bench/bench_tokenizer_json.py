#!/usr/bin/env python3
"""bench/bench_tokenizer_json.py — tokens/s on SST-2 train, one thread, for
tokenizer.json directories made by tests/reference/tokjson_fixtures.py (trained
from the shared data): `baton tokenize` (whole process: load, read stdin,
encode, print ids) against the Rust `tokenizers` crate's encode_batch (encode
only, inputs in memory, RAYON_NUM_THREADS=1). Best of N runs each.
usage: bench_tokenizer_json.py BATON DATA_DIR WORKDIR [RUNS]"""
import os, subprocess, sys, tempfile, time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["RAYON_RS_NUM_CPUS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
from tokenizers import Tokenizer  # noqa: E402
from tokjson_fixtures import build, read_tsv  # noqa: E402

baton, data_dir, work = sys.argv[1:4]
runs = int(sys.argv[4]) if len(sys.argv) > 4 else 3
texts = read_tsv(os.path.join(data_dir, "sst2/train.tsv"), True)
corpus = texts + read_tsv(os.path.join(data_dir, "sst2/dev.tsv"), True) + read_tsv(os.path.join(data_dir, "agnews/dev.tsv"), False)
data = ("\n".join(texts) + "\n").encode()
dirs = build(corpus, work, None, only=("roberta", "xlmr", "deberta"))
for name in ("roberta", "xlmr", "deberta"):
    d = dirs[name]
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    peer_best, peer_tokens = 1e9, 0
    for _ in range(runs):
        t0 = time.perf_counter()
        encs = tok.encode_batch(texts)
        peer_best = min(peer_best, time.perf_counter() - t0)
        peer_tokens = sum(len(e.ids) for e in encs)
    with tempfile.TemporaryFile() as f:
        f.write(data)
        ours_best, ours_tokens = 1e9, 0
        for _ in range(runs):
            f.seek(0)
            t0 = time.perf_counter()
            out = subprocess.run([baton, "tokenize", d], stdin=f, capture_output=True, check=True).stdout
            ours_best = min(ours_best, time.perf_counter() - t0)
            ours_tokens = sum(len(l.split()) for l in out.split(b"\n") if l)
    if ours_tokens != peer_tokens:
        sys.exit(f"{name}: token counts differ: ours {ours_tokens}, peer {peer_tokens} (run the parity test)")
    o, p = ours_tokens / ours_best, peer_tokens / peer_best
    print(f"{name}: {len(texts)} texts, {ours_tokens} tokens; ours {ours_best:.3f}s (whole process), "
          f"peer {peer_best:.3f}s (encode_batch)")
    print(f"tokenizer_json_{name.replace('-', '_')}: ours {o:.0f} tokens/s, peer {p:.0f} tokens/s, ratio {o / p:.2f}")
