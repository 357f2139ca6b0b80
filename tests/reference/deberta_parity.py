"""tests/reference/deberta_parity.py — DeBERTa-v2/v3 in baton against HF.

  python3 deberta_parity.py BATON DRIVER WORKDIR SST2_TRAIN_TSV

1. A Unigram tokenizer (Metaspace, [CLS] $A [SEP] ($B [SEP])) trained with
   `tokenizers` on 400 SST-2 sentences; random DebertaV2ForSequenceClassification
   models at odd sizes (hidden 40, 5 heads, 2 layers, intermediate 52) beside
   it, every parameter perturbed:
     v3   as deberta-v3-*: no absolute positions, no token types, log
          position buckets (position_buckets 16, max_relative_positions 32,
          so sequences of 38 reach the log buckets and the clamp),
          pos_att_type p2c|c2p, share_att_key, norm_rel_ebd layer_norm;
     v2   absolute positions and 2 token types, no buckets
          (max_relative_positions 12: the clamp), c2p only, no rel LayerNorm,
          tanh-approximated GELU in the pooler.
   `baton predict DIR --format logits` (singles and TAB pairs) equals the
   reference's logits within TOL_PREDICT.
2. The engine driver's logits, loss and every gradient (grad mode) on padded
   batches (single-label on both variants, regression on v3; the masked LM,
   DebertaV2ForMaskedLM, on both: logits of the masked tokens), within
   TOL_GRAD; 12 AdamW steps (warmup, clipping, accumulation) of v3 within
   TOL_TRAIN through train_parity's helpers.
3. `baton inspect-model` names the family and says it trains; `baton run`
   trains a sequence classifier of it (also with train.recompute = full); a
   DeBERTa token classifier holding the sequence head's weights predicts as a
   token classifier (its classifier.*, as Transformers loads it).
"""
import json
import os
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_parity  # noqa: E402
import roberta_parity  # noqa: E402  (installs its hf_batch: NO_TYPES says whether HF gets type ids)
import train_parity  # noqa: E402
from roberta_parity import (PREDICT_LINES, baton_logits, hf_logits, perturb_and_save, run_tiny_job,  # noqa: E402
                            sst2_texts)
from engine_parity import make_inputs, rel, t2np  # noqa: E402
from transformers import (DebertaV2Config, DebertaV2ForMaskedLM, DebertaV2ForSequenceClassification,  # noqa: E402
                          PreTrainedTokenizerFast)

TOL_PREDICT = 1e-5
TOL_GRAD = 1e-5
TOL_TRAIN = 1e-4
MAXLEN = 38

VARIANTS = {
    "v3": dict(position_biased_input=False, type_vocab_size=0, relative_attention=True, position_buckets=16,
               max_relative_positions=32, pos_att_type="p2c|c2p", share_att_key=True, norm_rel_ebd="layer_norm",
               pooler_hidden_act="gelu", hidden_act="gelu"),
    "v2": dict(position_biased_input=True, type_vocab_size=2, relative_attention=True, position_buckets=-1,
               max_relative_positions=12, pos_att_type=["c2p"], share_att_key=True, norm_rel_ebd="none",
               pooler_hidden_act="gelu_new", hidden_act="gelu_new"),
}


def canonical(hf_name):
    """HF DeBERTa-v2 name -> baton's canonical name (engine/model_weights.h)."""
    s = hf_name[8:] if hf_name.startswith("deberta.") else hf_name
    for k in ("query", "key", "value"):
        s = s.replace(".attention.self.%s_proj." % k, ".attention.self.%s." % k)
    return s


engine_parity.canonical = canonical
train_parity.canonical = canonical
engine_parity.TOL = TOL_GRAD


def write_model(path, variant, vocab, seed, num_labels, cls=DebertaV2ForSequenceClassification):
    torch.manual_seed(seed)
    cfg = DebertaV2Config(vocab_size=vocab, hidden_size=40, num_hidden_layers=2, num_attention_heads=5,
                          intermediate_size=52, max_position_embeddings=64, pad_token_id=0,
                          hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, pooler_dropout=0.0,
                          initializer_range=0.05, layer_norm_eps=1e-7, num_labels=num_labels,
                          **VARIANTS[variant])
    return perturb_and_save(cls(cfg), path)


def write_tokenizer(path, sst2):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, decoders, processors, trainers
    lines = sst2_texts(sst2)
    tk = Tokenizer(models.Unigram())
    tk.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(" {2,}", " ")])
    tk.pre_tokenizer = pre_tokenizers.Metaspace()
    tk.decoder = decoders.Metaspace()
    specials = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]
    tk.train_from_iterator(lines, trainers.UnigramTrainer(vocab_size=300, special_tokens=specials,
                                                          unk_token="[UNK]", show_progress=False))
    tk.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tk.token_to_id("[CLS]")), ("[SEP]", tk.token_to_id("[SEP]"))])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="[CLS]", eos_token="[SEP]", sep_token="[SEP]",
                                  cls_token="[CLS]", unk_token="[UNK]", pad_token="[PAD]", mask_token="[MASK]",
                                  model_max_length=MAXLEN)
    tok.save_pretrained(path)
    return tok


def predict_case(baton, work, name, path, tok):
    lines = PREDICT_LINES + ["it is a long , long story about nothing at all , told with great care and no point "
                             "whatsoever"]
    ours = baton_logits(baton, work, name, path, lines)
    if ours is None:
        return False, float("inf")
    ref, longest = hf_logits(DebertaV2ForSequenceClassification.from_pretrained(path), tok, lines, MAXLEN)
    err = rel(ours, ref)
    ok = ours.shape == ref.shape and err <= TOL_PREDICT and longest > 17
    print("%-5s %-26s %d lines (longest %d tokens), max rel err %.2e" % ("ok" if ok else "FAIL", name, len(lines),
                                                                         longest, err))
    return ok, err


def cli_case(baton, work, path):
    """roberta_parity's: inspect-model's head and support line, `baton run`
    trains a sequence classifier (test_deberta_train.sh proves the training),
    a DeBERTa token classifier made of its weights is taken for one; and
    train.recompute = full trains it (exit 0; test_recompute.c proves the
    weights byte-identical to recompute = none)."""
    ok, _ = roberta_parity.cli_case(baton, work, path, "deberta-v2")
    r, _ = run_tiny_job(baton, work, path, "good\t1\nbad\t0\nmeh\t2\n", "max_steps = 2\nrecompute = full",
                        "out-recompute")
    ok2 = r.returncode == 0
    print("%-5s %-26s recompute = full: exit %d: %s" % ("ok" if ok2 else "FAIL", "cli (deberta-v2)", r.returncode,
                                                        r.stderr.strip()[-300:]))
    return ok and ok2, 0.0


def half_case(driver, work, path, d):
    """fp16 / bf16 (16-bit qkv, relative projections and ctx through the same
    op) against the engine's own fp32: logits within 1e-2, every gradient
    within 5e-2 relative (the precision proof's bounds for tiny models)."""
    out = {p: engine_parity.run_driver(driver, "grad", path, d, os.path.join(work, "half-%s.safetensors" % p),
                                       task="seq", problem="single", precision=p)
           for p in ("fp32", "fp16", "bf16")}
    ok, worst = True, 0.0
    for p in ("fp16", "bf16"):
        el = rel(out[p]["logits"], out["fp32"]["logits"])
        eg = max(rel(out[p][k], out["fp32"][k], 1e-3) for k in out["fp32"] if k.startswith("grad."))
        good = el <= 1e-2 and eg <= 5e-2
        ok &= good
        print("%-5s %-26s logits %.2e, worst gradient %.2e (of the engine's fp32)" % ("ok" if good else "FAIL",
                                                                                      "deberta-" + p, el, eg))
    return ok, worst


def main():
    baton, driver, work, sst2 = sys.argv[1:5]
    rng = np.random.default_rng(23)
    ok_all, worst = True, 0.0

    def note(res):
        nonlocal ok_all, worst
        ok_all &= res[0]
        worst = max(worst, res[1])

    for variant, seed in (("v3", 41), ("v2", 42)):
        path = os.path.join(work, variant)
        tok = write_tokenizer(path, sst2)
        write_model(path, variant, len(tok), seed, 3)
        note(predict_case(baton, work, "predict (%s)" % variant, path, tok))
    note(cli_case(baton, work, os.path.join(work, "v3")))

    engine_parity.CLASSES["seq"] = DebertaV2ForSequenceClassification
    lens = [12, 5, 9, 21, 3, 7, 14, 10]
    for variant, seed in (("v3", 43), ("v2", 44)):
        path = write_model(os.path.join(work, "tiny-" + variant), variant, 99, seed, 3)
        roberta_parity.NO_TYPES[0] = VARIANTS[variant]["type_vocab_size"] == 0
        d = make_inputs(rng, lens, 99, "seq", 3, "single")
        note(engine_parity.grad_case(driver, work, "deberta-grad-" + variant, "seq", path, d, problem="single"))
        # DebertaV2ForMaskedLM (cls.predictions: hidden_act, gelu_new in v2): logits of the masked tokens
        engine_parity.CLASSES["mlm"] = DebertaV2ForMaskedLM
        pm = write_model(os.path.join(work, "tiny-mlm-" + variant), variant, 99, seed + 10, 3, DebertaV2ForMaskedLM)
        note(engine_parity.grad_case(driver, work, "deberta-grad-mlm-" + variant, "mlm", pm,
                                     make_inputs(rng, lens, 99, "mlm")))
        if variant == "v3":
            dr = make_inputs(rng, lens, 99, "seq", 1, "regression")
            p1 = write_model(os.path.join(work, "tiny1"), variant, 99, 45, 1)
            note(engine_parity.grad_case(driver, work, "deberta-grad-regression", "seq", p1, dr,
                                         problem="regression", num_labels=1))
            dt = make_inputs(rng, [12, 5, 9, 16, 3, 7, 14, 10, 4, 8, 11, 6, 15, 2, 13, 9], 99, "seq", 3, "single")
            engine_parity.TOL = TOL_TRAIN
            note(train_parity.train_case(driver, work, "deberta-train", "seq", path, dt, lr=1e-3, head_lr=0,
                                         layer_decay=1.0, freeze_layers=0, freeze_emb=0, sched="linear",
                                         problem="single", steps=12, accum=2, micro=4, wd=0.01, warmup=3,
                                         total=12, clip=1.0))
            engine_parity.TOL = TOL_GRAD
    note(half_case(driver, work, os.path.join(work, "tiny-v3"), make_inputs(rng, lens, 99, "seq", 3, "single")))
    print("deberta parity: %s, max relative error %.2e" % ("PASS" if ok_all else "FAIL", worst))
    sys.exit(0 if ok_all else 1)


if __name__ == "__main__":
    main()
