/* engine/train.h — one optimizer step: micro-batches, accumulation, clipping,
 * schedule, AdamW, fp16 dynamic loss scaling; and the trainer's tensors for
 * checkpoints.
 *
 * Owns: the order of a step (for each micro-batch forward/backward into a
 * zeroed gradient buffer with loss scaled 1/n_micro (x the fp16 loss scale),
 * summed in micro-batch order, across replicas too (below) -> global-norm
 * clip over the unscaled trainable gradients -> AdamW with lr = group base *
 * schedule(step - skipped steps)), the step counter that keys dropout, the
 * loss scaler (torch.cuda.amp.GradScaler's rules) and its state, freezing,
 * and the snapshot / restore of weights and moments as named fp32 tensors.
 * Must not: read data files, decide batch composition (the runner hands in
 * micro-batches), or write archives (it returns bt_st_entry lists the state
 * layer writes).
 */
#ifndef BATON_ENGINE_TRAIN_H
#define BATON_ENGINE_TRAIN_H

#include "engine/bert.h"
#include "engine/optim.h"
#include "engine/schedule.h"
#include "state/safetensors.h"

typedef struct {
    bt_optim_config optim;
    bt_sched_kind schedule;
    int64_t warmup_steps;
    int64_t total_steps;
    float max_grad_norm;      /* <= 0: no clipping */
    int freeze_embeddings;    /* 1: embeddings get no gradient */
    int freeze_layers;        /* first N encoder layers get no gradient */
    /* fp16 dynamic loss scaling (only when the model's precision is FP16);
     * the defaults are torch.cuda.amp.GradScaler's */
    double loss_scale_init;        /* <= 0: 65536 (2^16) */
    int64_t loss_scale_interval;   /* clean steps before the scale doubles; <= 0: BT_LOSS_SCALE_INTERVAL */
} bt_train_config;

#define BT_LOSS_SCALE_INTERVAL 2000 /* the default growth interval (GradScaler's) */

typedef struct {
    float loss;          /* mean of the micro-batch mean losses (what HF Trainer logs) */
    double grad_norm;    /* global L2 norm of the (unscaled) trainable gradients before
                            clipping; not finite on a skipped step */
    double lr;           /* encoder base lr x schedule factor used by this step */
    int64_t step;        /* steps done after this one (skipped ones included) */
    int skipped;         /* 1: fp16 overflow (inf/NaN gradients): weights, moments and
                            AdamW step counts untouched, the loss scale halved */
    double loss_scale;   /* the loss scale this step used (1 without loss scaling) */
} bt_step_info;

/* The fp16 loss scaler's state: plain numbers, so the runner keeps them in
 * trainer.json and a resumed run continues bit-exactly. */
typedef struct {
    int enabled;           /* 1: the model is fp16 and its loss is scaled */
    double scale;          /* the loss scale of the next step (1 when disabled); a float */
    int64_t clean_steps;   /* steps without overflow since the scale last changed
                              (GradScaler's growth tracker): at loss_scale_interval it doubles */
    int64_t skipped_steps; /* steps skipped for overflow since training began; the LR
                              schedule runs on step - skipped_steps (HF Trainer does not
                              step the scheduler when the optimizer step was skipped) */
} bt_loss_scaler;

typedef struct bt_trainer bt_trainer;

/* The model must have been created with opts.training = 1. The trainer does
 * not own the model. */
int bt_trainer_create(bt_bert *m, const bt_train_config *c, bt_trainer **out);
void bt_trainer_free(bt_trainer *t);

/* One optimizer step over micro[0..n_micro) (each <= the model's max_batch).
 * Errors leave the weights untouched: BT_EDATA for a bad batch, or for a
 * non-finite gradient norm (divergence: lower the learning rate). In fp16 a
 * non-finite gradient (or loss) is an overflow instead: the step is skipped
 * (info->skipped, rc 0) and the loss scale halved; an error only when the
 * scale has fallen below 2^-24, i.e. the model overflows fp16 whatever the
 * scale (torch would skip forever). One exception to "untouched": an update
 * that makes a weight non-finite (finite gradients, a learning rate far too
 * large) is detected after it was applied, and is BT_EDATA naming the
 * tensor; the weights are then unusable and must not be committed (the
 * runner stops, the last archive stays the newest). */
int bt_train_step(bt_trainer *t, const bt_batch *micro, int n_micro, bt_step_info *info);

/* The same step with the forward/backward of each micro-batch done by fb
 * (e.g. long documents, engine/longdoc_model.h): fb(ctx, j, k, grad_scale,
 * step, &loss) runs micro-batch k on replica j (bt_trainer_replica(t, j);
 * k % replicas == j, the deal below) and must ADD its gradients, scaled by
 * grad_scale, into that replica's gradients (bt_bert_grads_dev at the time
 * of the call: the trainer points them at a zeroed buffer per micro-batch)
 * and report its mean loss (unscaled). step keys dropout (with k, never j).
 * With concurrent replicas, calls for different j run at the same time: what
 * fb writes must be replica j's own (a state per replica). */
typedef int (*bt_micro_fb)(void *ctx, int replica, int k, float grad_scale, uint32_t step, float *loss);
int bt_train_step_fn(bt_trainer *t, bt_micro_fb fb, void *ctx, int n_micro, bt_step_info *info);

/* ---- data parallelism (runtime.devices; docs/engine.md "Replicas") ----
 * A trainer has N >= 1 replicas: replica 0 is the model it was created with,
 * replicas 1..N-1 further models of the same layout, task and precision
 * (created the same way; the trainer does not own them). In a step:
 *  - micro-batch k goes to replica k % N (fixed; dropout is keyed by k, so a
 *    micro-batch's numbers do not depend on the replica it lands on);
 *  - replica j's gradient is g_j = ((G_j0 + G_j1) + G_j2) ... over its
 *    micro-batches j, j+N, j+2N, ... in order, where each G is computed from
 *    zero in its own buffer (never accumulated inside the backward's GEMMs);
 *  - the gradient of the step is ((g_0 + g_1) + g_2) ... (the reduce
 *    function: by default this fixed-order F32 sum; NCCL's all-reduce on
 *    GPUs, kernels/cuda/nccl_dl.h);
 *  - norm, clipping, the fp16 scaler's skip and AdamW run once, on replica 0,
 *    whose weights are then copied to the others (so all replicas always hold
 *    the same bits; snapshots and restores are replica 0's).
 * Consequences, bit for bit on one backend: N devices with grad_accum 1 equal
 * 1 device with grad_accum N (both sum N micro-batch gradients left to right);
 * in general N devices x grad_accum A equal M devices x grad_accum B only when
 * the replica sums coincide (N = M, or A = B = 1 with N x A = M x B).
 * The replicas run one after another in the calling thread, or concurrently
 * (bt_trainer_set_concurrent): the sums above are the same either way, so
 * are the bytes. */
#define BT_MAX_REPLICAS 64
int bt_trainer_set_replicas(bt_trainer *t, bt_bert *const *extra, int n_extra); /* once, before the first step */
int bt_trainer_replicas(const bt_trainer *t);
bt_bert *bt_trainer_replica(bt_trainer *t, int j); /* replica j (0: the trainer's model), NULL outside 0..N-1 */
/* Sums the gradients of reps[0..n) into reps[0]'s (n >= 2). NULL: the default. */
typedef int (*bt_grad_reduce)(void *ctx, bt_bert *const *reps, int n);
void bt_trainer_set_reduce(bt_trainer *t, bt_grad_reduce fn, void *ctx);
/* on = 1: the gradient sum and the weights' broadcast go through the
 * backends' collective (kernels/backend.h: NCCL on GPUs, a fixed-order sum on
 * the CPU) instead of replica 0's add and host memory. Needs N >= 2 replicas,
 * one backend each, all of replica 0's kind; prepares the collective (NCCL's
 * communicators), checks it on a probe (engine/collective_probe.h) and
 * fails, changing nothing, when it cannot or is wrong (e.g. no NCCL: the
 * caller may go on without it). Bits: as the default sum for N = 2 and
 * on the CPU; see the backend for N > 2. on = 0: the default (host path). */
int bt_trainer_set_collective(bt_trainer *t, int on);
/* With the collective, a step whose micro-batches reach every replica sums
 * the gradients in buckets (engine/bucket_sum.h: the heads, each encoder
 * layer, the embeddings), each issued by the replica that finishes it last,
 * from inside its backward (bt_train_step; a bt_train_step_fn callback may
 * add to the gradients several times, so there each replica's buckets go
 * when its micro-batches are done), and on GPUs run by NCCL on a stream of
 * its own beside the backward. The bits are those of one sum over the
 * whole buffer. buckets: per step (0: not bucketed); sums and
 * during_backward: buckets summed since creation, and issued from inside a
 * backward (the overlap). */
void bt_trainer_bucket_stats(const bt_trainer *t, int *buckets, int64_t *sums, int64_t *during_backward);
/* on = 1: in each step replicas 1..N-1 run their micro-batches on a thread
 * each while replica 0 runs its own on the calling thread; the gradient sum,
 * norm and update wait for all of them. Every replica must have a backend of
 * its own (BT_EINTERNAL else): the backend's workspace is per replica.
 * rep0_threads > 0: replica 0's backend runs that many threads during a
 * step (be->set_threads; its own count again between steps, for
 * evaluation), so that the replicas share runtime.threads. A failing replica
 * stops the others before their next micro-batch; the step then fails with
 * the error of the lowest failed micro-batch and changes no weight. */
int bt_trainer_set_concurrent(bt_trainer *t, int on, int rep0_threads);
/* What replica j did since the trainer was created: micro-batches, examples
 * and tokens (those of bt_train_step; 0 for a custom forward/backward),
 * seconds spent on them (its own forward/backward, not the sum or update),
 * and its backend's peak counted bytes (be->peak_bytes; replica 0's backend
 * also holds the optimizer). Read it between steps. */
typedef struct {
    int64_t micro, examples, tokens;
    double busy_s;
    size_t peak_bytes;
} bt_replica_stats;
void bt_trainer_replica_stats(const bt_trainer *t, int j, bt_replica_stats *out);
/* Testing only (BATON_FAULT_REPLICA, runner/devices.c): replica's first
 * micro-batch of step `step` (1-based) fails with BT_EIO. */
void bt_trainer_inject_failure(bt_trainer *t, int replica, int64_t step);

int64_t bt_trainer_step(const bt_trainer *t);     /* steps done (skipped ones included) */
void bt_trainer_set_step(bt_trainer *t, int64_t step); /* on resume */
/* The loss scaler's state (enabled = 0, scale 1 unless the model is fp16). */
void bt_trainer_loss_scaler(const bt_trainer *t, bt_loss_scaler *out);
/* On resume, after bt_trainer_set_step. skipped_steps is always restored (the
 * schedule depends on it, whatever the precision); scale and clean_steps only
 * when this trainer scales (fp16) and s->enabled; an fp16 trainer given a
 * state from a run without scaling starts at the initial scale. BT_EDATA for
 * a state out of range (scale not finite and > 0, clean_steps outside
 * [0, interval), skipped_steps outside [0, step]). */
int bt_trainer_set_loss_scaler(bt_trainer *t, const bt_loss_scaler *s);
/* Change freezing (e.g. unfreeze at an epoch): affects later steps. */
void bt_trainer_set_frozen(bt_trainer *t, int freeze_embeddings, int freeze_layers);
bt_bert *bt_trainer_model(bt_trainer *t);
bt_adamw *bt_trainer_optim(bt_trainer *t);

/* Named host tensors for a checkpoint (copies; on a backend whose memory is
 * host memory, be->host_memory (the CPU's), views of the model's and the
 * optimizer's own blocks: write them before the next step). weights: every parameter under its HF
 * name for arch (NULL: the task's BertFor* class, e.g.
 * "bert.encoder.layer.0.attention.self.query.weight"); moments (may be NULL):
 * "<hf name>.exp_avg", "<hf name>.exp_avg_sq" (F32, parameter's shape) and
 * "<hf name>.step" (I64 [1]). Copies are owned by *s. */
typedef struct {
    bt_st_entry *e;
    size_t n;
    float *host;        /* downloaded tensors */
    int64_t *steps;
    char **names;
} bt_tensor_set;
int bt_trainer_snapshot(bt_trainer *t, const char *arch, bt_tensor_set *weights, bt_tensor_set *moments);
void bt_tensor_set_free(bt_tensor_set *s);
/* HF class name whose tensor names a snapshot of the model's task and family
 * (BT_FAMILY_* of engine/init.h) uses: "BertForSequenceClassification", ...,
 * "RobertaForSequenceClassification" (RoBERTa and XLM-R name tensors alike),
 * "DistilBertForSequenceClassification", "DebertaV2ForSequenceClassification",
 * "ElectraForSequenceClassification". */
const char *bt_task_arch(bt_task task, int family);

/* Restores weights (HF or canonical names; every parameter required) and,
 * if moments is not NULL, the AdamW moments and step counts written by
 * bt_trainer_snapshot. Errors name the tensor and the file (bt_st_label). */
int bt_trainer_restore(bt_trainer *t, const bt_st_file *weights, const bt_st_file *moments);

#endif
