"""bench/bench_train_cpu.py — the PyTorch + HF Transformers side of
bench_train_cpu.sh: BertForSequenceClassification(all-MiniLM-L6-v2) training
steps (forward, backward, clip_grad_norm_, AdamW) on random full-length
batches, torch.set_num_threads(THREADS), eager attention as in the parity
tests. PRECISION bf16 runs the forward under torch.autocast("cpu",
dtype=torch.bfloat16) (fp32 master weights, as HF Trainer's --bf16 on a CPU).
Prints "peer_examples_per_s X" and "peer_step_s X".

  python3 bench_train_cpu.py MODEL_DIR BATCH SEQ STEPS THREADS [fp32|bf16]
"""
import sys
import time

import torch
from transformers import BertForSequenceClassification


def main():
    model_dir, B, S, steps, threads = sys.argv[1], *map(int, sys.argv[2:6])
    bf16 = len(sys.argv) > 6 and sys.argv[6] == "bf16"
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(model_dir, num_labels=2, attn_implementation="eager")
    model.train()
    V = model.config.vocab_size
    ids = torch.randint(1000, V, (B, S))
    batch = {"input_ids": ids, "attention_mask": torch.ones(B, S, dtype=torch.long),
             "token_type_ids": torch.zeros(B, S, dtype=torch.long), "labels": torch.arange(B) % 2}
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    dt = (time.perf_counter() - t0) / steps
    print("peer_step_s %.4f" % dt)
    print("peer_examples_per_s %.3f" % (B / dt))


if __name__ == "__main__":
    main()
