"""bench/bench_memory.py — the inputs and the PyTorch peer of bench_memory.sh.

  make DIR             a random BERT-base-shaped model directory (config.json,
                       model.safetensors, a synthetic vocab.txt of 30522
                       tokens) and DIR/train.tsv: 16 texts of 600 words, so
                       every example fills 512 tokens
  train DIR B S STEPS THREADS
                       PyTorch + Transformers training of the same model at
                       the same shape (fp32, eager attention, AdamW, no
                       activation checkpointing); prints peer_maxrss_mib
"""
import os
import resource
import sys


def make(d):
    import torch
    from transformers import BertConfig, BertForSequenceClassification
    os.makedirs(d, exist_ok=True)
    torch.manual_seed(0)
    cfg = BertConfig(num_labels=2)  # BERT-base: 12 layers, 768 hidden, 12 heads, 3072, 30522 x 512
    BertForSequenceClassification(cfg).save_pretrained(d, safe_serialization=True)
    words = ["w%d" % i for i in range(cfg.vocab_size - 5)]
    with open(os.path.join(d, "vocab.txt"), "w") as f:
        f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words) + "\n")
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        f.write('{"do_lower_case": true}\n')
    with open(os.path.join(d, "train.tsv"), "w") as f:
        f.write("sentence\tlabel\n")
        for i in range(16):
            f.write(" ".join(words[(i * 7 + k * 13) % 20000] for k in range(600)) + "\t%d\n" % (i % 2))


def train(d, B, S, steps, threads):
    import torch
    from transformers import BertForSequenceClassification
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    m = BertForSequenceClassification.from_pretrained(d, attn_implementation="eager")
    m.train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-5)
    for _ in range(steps):
        ids = torch.randint(5, 30000, (B, S))
        out = m(input_ids=ids, attention_mask=torch.ones(B, S, dtype=torch.long), labels=torch.randint(0, 2, (B,)))
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    print("peer_maxrss_mib %.1f" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2])
    else:
        train(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
