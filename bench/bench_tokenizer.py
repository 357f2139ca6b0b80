#!/usr/bin/env python3
"""bench/bench_tokenizer.py — tokens/s on SST-2 train, one thread: `baton
tokenize` (whole process: load, read stdin, encode, print ids) against the
Rust `tokenizers` BertTokenizerFast backend's encode_batch (encode only, inputs
already in memory). Best of N runs each. Prints one final line:
tokenizer: ours X tokens/s, peer Y tokens/s, ratio R
usage: bench_tokenizer.py BATON MODEL_DIR SST2_TRAIN_TSV [RUNS]"""
import os, subprocess, sys, tempfile, time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["RAYON_RS_NUM_CPUS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
from transformers import BertTokenizerFast  # noqa: E402

baton, model, tsv = sys.argv[1:4]
runs = int(sys.argv[4]) if len(sys.argv) > 4 else 3
texts = [l.rsplit("\t", 1)[0] for l in open(tsv, encoding="utf-8").read().split("\n")[1:] if l]
data = ("\n".join(texts) + "\n").encode()

tok = BertTokenizerFast.from_pretrained(model)
bk = tok.backend_tokenizer
bk.no_padding()
bk.no_truncation()
peer_best, peer_tokens = 1e9, 0
for _ in range(runs):
    t0 = time.perf_counter()
    encs = bk.encode_batch(texts)
    dt = time.perf_counter() - t0
    peer_best = min(peer_best, dt)
    peer_tokens = sum(len(e.ids) for e in encs)

with tempfile.TemporaryFile() as f:
    f.write(data)
    ours_best, ours_tokens = 1e9, 0
    for _ in range(runs):
        f.seek(0)
        t0 = time.perf_counter()
        out = subprocess.run([baton, "tokenize", model], stdin=f, capture_output=True, check=True).stdout
        dt = time.perf_counter() - t0
        ours_best = min(ours_best, dt)
        ours_tokens = sum(len(l.split()) for l in out.split(b"\n") if l)
if ours_tokens != peer_tokens:
    sys.exit(f"token counts differ: ours {ours_tokens}, peer {peer_tokens} (run the parity test)")
print(f"{len(texts)} texts, {ours_tokens} tokens; ours {ours_best:.3f}s (whole process), peer {peer_best:.3f}s (encode_batch)")
o, p = ours_tokens / ours_best, peer_tokens / peer_best
print(f"tokenizer: ours {o:.0f} tokens/s, peer {p:.0f} tokens/s, ratio {o / p:.2f}")
