/* engine/bert.h — the BERT model: parameters, forward, backward and heads.
 *
 * Owns: the memory layout of a model on a backend (ONE allocation for the
 * parameters, one for the gradients, one activation arena sized once for
 * (max_batch, max_seq)), the named parameter table (canonical HF names, see
 * engine/model_weights.h), the forward and backward op sequence of
 * embeddings -> post-LN encoder -> pooler -> head, the losses of each head,
 * and dropout keys.
 * Must not: call a backend's functions directly (only through bt_backend),
 * know about optimizers, schedules, jobs or archives (engine/train.h and the
 * runner do), or keep any state that a step's result depends on besides the
 * weights (dropout masks are a pure function of (seed, step, micro, layer, site)).
 *
 * Layout: q, k and v of a layer are ONE [3D,D] weight and [3D] bias (rows
 * q|k|v), so one matmul makes qkv [B,S,3,H,Dh]; the canonical names
 * encoder.layer.N.attention.self.{query,key,value}.{weight,bias} are views of
 * its row blocks.
 */
#ifndef BATON_ENGINE_BERT_H
#define BATON_ENGINE_BERT_H

#include "engine/init.h"

#include <stddef.h>
#include <stdint.h>

/* Only a pointer is needed here: not including kernels/backend.h keeps this
 * header usable beside engine/model_config.h (their BT_ACT_* enumerators clash). */
typedef struct bt_backend bt_backend;

/* Compute precision of a model (the master weights, gradients and AdamW
 * moments are F32 in every one; docs/engine.md has the op-by-op table):
 *  FP32  everything F32;
 *  TF32  F32 tensors, GEMMs on TF32 tensor cores (GPUs sm_80+ only);
 *  FP16  GEMMs on an F16 copy of the weights with F16 activations where
 *        torch.autocast has them; LayerNorm, softmax, losses, reductions and
 *        the optimizer F32; the trainer adds dynamic loss scaling;
 *  BF16  the same with BF16 (no loss scaling).
 * The values are train.precision's order after "auto" (runner/job.h). */
typedef enum { BT_PREC_FP32 = 0, BT_PREC_TF32 = 1, BT_PREC_FP16 = 2, BT_PREC_BF16 = 3 } bt_precision;
const char *bt_precision_name(bt_precision p); /* "fp32", "tf32", "fp16", "bf16" */

/* Activation checkpointing (train.recompute): what the forward of a training
 * step does NOT keep per layer, recomputed in the backward from the layer's
 * input x_l with the same dropout keys (bit-identical to keeping it):
 *  NONE       every layer keeps its activations (the attention probabilities
 *             only where the backend's backward reads them: the CPU at short
 *             sequences, attention_wants_probs);
 *  ATTENTION  qkv, ctx, lse (and probabilities) are one shared buffer: the
 *             Q/K/V GEMM and the attention forward run again before each
 *             layer's backward (DeBERTa: with the relative embeddings'
 *             q|k|v projection pos and its input, recomputed the same way);
 *  FULL       only x_l is kept per layer: each layer's whole forward runs
 *             again before its backward (about one more forward per step). */
typedef enum { BT_RECOMPUTE_NONE = 0, BT_RECOMPUTE_ATTENTION = 1, BT_RECOMPUTE_FULL = 2 } bt_recompute;
const char *bt_recompute_name(bt_recompute r); /* "none", "attention", "full" */

typedef enum {
    BT_TASK_ENCODER = 0,   /* no head: last hidden state only (pooler kept if present) */
    BT_TASK_SEQ_CLS = 1,   /* BertForSequenceClassification: pooler -> dropout -> classifier */
    BT_TASK_TOKEN_CLS = 2, /* BertForTokenClassification: dropout -> classifier per token */
    BT_TASK_MLM = 3,       /* BertForMaskedLM: transform -> LayerNorm -> tied decoder + bias */
} bt_task;

/* Where a parameter sits, for optimizer groups and freezing. */
enum { BT_PART_EMBED = -1, BT_PART_POOLER = -2, BT_PART_HEAD = -3 }; /* else: encoder layer */

/* One named parameter: a view of the parameter (and gradient) allocation. */
typedef struct {
    char *name;         /* canonical name (engine/model_weights.h) */
    int ndim;
    int64_t shape[2];
    size_t off;         /* in floats, into params / grads / optimizer moments */
    size_t numel;
    int part;           /* encoder layer index, or BT_PART_* */
    int no_decay;       /* bias or LayerNorm weight: no weight decay (HF Trainer) */
} bt_bert_param;

/* A batch as token id lists; the engine pads to the longest sequence
 * (attention mask 0 on padding). Which label field is read depends on the
 * task and loss; unused fields may be NULL. */
typedef struct {
    int n;                                /* examples */
    const int32_t *const *ids;            /* ids[i][0..len[i]) token ids incl. [CLS]/[SEP] */
    const int32_t *const *type_ids;       /* NULL: all segment 0 */
    const int *len;                       /* len[i] >= 1 */
    const int32_t *label;                 /* [n] class ids (single-label seq cls) */
    const float *target;                  /* [n*num_labels] multi-label 0/1 or regression */
    const int32_t *const *token_labels;   /* [i][0..len[i]) token cls / MLM, -100 = ignored */
} bt_batch;

typedef struct bt_bert bt_bert;

typedef struct {
    bt_task task;
    int num_labels;    /* <= 0: the config's */
    int problem;       /* BT_LOSS_*; AUTO: config.json's problem_type, else HF's rule */
    int max_batch;     /* examples per micro-batch the arena is sized for */
    int max_seq;       /* tokens per sequence the arena is sized for (<= max_position_embeddings) */
    int training;      /* 1: allocate gradients and backward buffers */
    uint64_t seed;     /* head init (heads absent from the checkpoint) and dropout */
    int doc_attn_dim;  /* > 0 (SEQ_CLS only): add the long-document attention pooling
                          parameters doc_pooler.dense.weight [A,D], .dense.bias [A]
                          and doc_pooler.score.weight [A] (engine/longdoc_model.h) */
    bt_precision precision; /* default (0) FP32; resolve "auto" first (runner/precision.h) */
    bt_recompute recompute; /* default (0) NONE; only matters with training = 1 */
    int ignore_mismatched_sizes; /* 1: head and pooler tensors of another shape in the checkpoint (a
                          model fine-tuned for another number of labels) are initialised as if
                          absent, as Transformers' from_pretrained(ignore_mismatched_sizes=True);
                          0: refused (BT_EDATA). Encoder tensors of another shape are always refused. */
    int dropout_set;   /* 1: dropout replaces config.json's hidden, attention and classifier dropout */
    float dropout;     /* with dropout_set: the probability for all three */
    int no_weights;    /* 1: read only config.json, upload nothing (parameters left as the
                          backend's alloc gives them): memory planning on the counting
                          backend (kernels/backend.h), which runs no compute */
} bt_bert_opts;

/* Creates the model from MODEL_DIR (config.json + model.safetensors) on be.
 * Heads absent from the checkpoint are initialised from opts->seed; a
 * classifier of the wrong shape is an error naming the tensor. A precision
 * the backend cannot compute (TF32 on the CPU or before sm_80, BF16 before
 * sm_80) is BT_ECONFIG naming train.precision and what to use instead.
 * TF32 switches the backend's F32 GEMMs to TF32 (be->set_tf32); the other
 * precisions switch it off. */
int bt_bert_create(bt_backend *be, const char *model_dir, const bt_bert_opts *opts, bt_bert **out);
void bt_bert_free(bt_bert *m);

/* Bytes the model holds on its backend, by kind (docs/engine.md, "Memory layout"). */
typedef struct {
    size_t params;     /* F32 master weights */
    size_t copy16;     /* the F16/BF16 copy the GEMMs read (0 in fp32) */
    size_t grads;      /* F32 gradients (0 without training) */
    size_t arena;      /* activations, batch staging, head buffers, backward temporaries */
    size_t probs;      /* of which attention probabilities [B,H,S,S] kept per layer */
} bt_bert_memory;
void bt_bert_memory_of(const bt_bert *m, bt_bert_memory *out);
bt_recompute bt_bert_recompute(const bt_bert *m);
int bt_bert_max_batch(const bt_bert *m); /* examples per batch the arena holds (opts.max_batch) */

const bt_bert_config *bt_bert_cfg(const bt_bert *m); /* num_labels / problem resolved */
bt_precision bt_bert_precision(const bt_bert *m);
bt_task bt_bert_task(const bt_bert *m);
bt_backend *bt_bert_backend(const bt_bert *m);
size_t bt_bert_nparams(const bt_bert *m);            /* entries of the table */
const bt_bert_param *bt_bert_param_at(const bt_bert *m, size_t i);
const bt_bert_param *bt_bert_find(const bt_bert *m, const char *canonical); /* NULL if absent */
size_t bt_bert_total_floats(const bt_bert *m);       /* size of the parameter allocation */
float *bt_bert_params_dev(bt_bert *m);               /* device base of parameters */
float *bt_bert_grads_dev(bt_bert *m);                /* device base of gradients (NULL if !training) */
/* Points the model's gradients at g (bt_bert_total_floats floats on the
 * model's backend) and returns the buffer they were in; the trainer computes
 * a micro-batch's gradients into a buffer of their own this way and swaps
 * back (engine/train.c). No-op (returns NULL) for an inference model. */
float *bt_bert_swap_grads(bt_bert *m, float *g);
/* Reports how many heads were freshly initialised (for messages). */
int bt_bert_heads_initialised(const bt_bert *m);

/* Copies all parameters to / from host memory (bt_bert_total_floats floats,
 * same layout as the table's offsets). */
void bt_bert_download_params(bt_bert *m, float *host);
void bt_bert_upload_params(bt_bert *m, const float *host);
/* Whoever writes the F32 parameters on the device (the optimizer) says so:
 * the F16/BF16 copy the GEMMs read is refreshed before the next forward.
 * (bt_bert_upload_params does it itself.) */
void bt_bert_params_changed(bt_bert *m);

/* Trainability: frozen parts get no gradient computed (backward stops below
 * the lowest trainable part). freeze_layers = first N encoder layers. */
void bt_bert_set_frozen(bt_bert *m, int freeze_embeddings, int freeze_layers);
int bt_bert_param_trainable(const bt_bert *m, const bt_bert_param *p);

/* Forward + loss + backward of one micro-batch, ADDING gradients into the
 * gradient allocation (zero it with bt_bert_zero_grads first). The loss's
 * gradient is scaled by grad_scale (1/accumulation steps, times the fp16
 * loss scale: F16 activation gradients may then overflow to inf, which the
 * trainer detects in the gradient norm). Dropout is on with
 * keys (seed, step, micro, layer, site). *loss = the micro-batch's mean loss
 * (unscaled). Errors: BT_EDATA for a batch that does not fit or has bad ids/labels. */
int bt_bert_forward_backward(bt_bert *m, const bt_batch *b, float grad_scale, uint32_t step,
                             uint32_t micro, float *loss);
void bt_bert_zero_grads(bt_bert *m);

/* Gradient readiness, for a sum across replicas that overlaps the backward
 * (engine/train.c). During a backward, fn(ctx, off) says that floats [off,
 * total) of the gradients will not change again in this call: after the
 * heads (off = where they start), after each encoder layer (top down), each
 * call's off below the last. The embeddings are never announced: they are
 * final only when the call returns. NULL: none (the default). The trainer
 * sets it for a micro-batch's one backward only (bt_train_step): a caller of
 * bt_bert_backward_pooled adds to the same gradients several times.
 * bt_bert_grad_edges: the offsets fn can give, in the order it gives them,
 * between total (first) and 0 (last), each once; cap >= layers + 3. */
typedef void (*bt_grads_ready_fn)(void *ctx, size_t off);
void bt_bert_set_grads_ready(bt_bert *m, bt_grads_ready_fn fn, void *ctx);
int bt_bert_grad_edges(const bt_bert *m, size_t *edges, int cap);

/* Evaluation forward (dropout off). loss (may be NULL) needs labels in b;
 * logits (may be NULL, host) receives: SEQ_CLS [n, C]; TOKEN_CLS [sum len, C]
 * (real tokens, example order); MLM [masked tokens (label != -100), V];
 * ENCODER: the last hidden state [sum len, D]. bt_bert_logits_rows says how
 * many rows a batch gives. */
int bt_bert_eval(bt_bert *m, const bt_batch *b, float *loss, float *logits);
int64_t bt_bert_logits_rows(const bt_bert *m, const bt_batch *b);
int bt_bert_logits_cols(const bt_bert *m);

/* ---- chunk encoding for long documents (SEQ_CLS models; engine/longdoc_model.c) ----
 * bt_bert_encode_pooled: forward of a batch of chunks (no labels) up to the
 * pooler: pooled [n, D] (host) = tanh(x_L[CLS] Wp^T + bp). train = 1 applies
 * dropout keyed (seed, step, micro, ...) and keeps the activations for
 * bt_bert_backward_pooled, which must follow before any other call on m: it
 * takes dpooled [n, D] (host) and ADDS the gradients of the pooler, encoder
 * and embeddings (the classifier gets none). Re-encoding the same batch with
 * the same (step, micro) reproduces the forward bit for bit, which is what
 * bounded-memory recomputation relies on. */
int bt_bert_encode_pooled(bt_bert *m, const bt_batch *b, int train, uint32_t step, uint32_t micro, float *pooled);
int bt_bert_backward_pooled(bt_bert *m, const float *dpooled, uint32_t step, uint32_t micro);
/* Host copy of one parameter; adds host values into its gradient (no-op for a
 * frozen parameter or an inference model). For small head tensors. */
void bt_bert_read_param(bt_bert *m, const bt_bert_param *p, float *host);
void bt_bert_add_grad(bt_bert *m, const bt_bert_param *p, const float *host);

#endif
