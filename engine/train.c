/* engine/train.c — the training step and checkpoint tensors (see train.h). */
#include "kernels/backend.h"
#include "engine/train.h"
#include "engine/bucket_sum.h"
#include "engine/collective_probe.h"
#include "engine/model_weights.h"
#include "util/err.h"
#include "util/mem.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* GradScaler's constants (torch.cuda.amp.GradScaler defaults) */
#define SCALE_INIT 65536.0f
#define SCALE_GROWTH 2.0f
#define SCALE_BACKOFF 0.5f
#define SCALE_INTERVAL BT_LOSS_SCALE_INTERVAL
#define SCALE_FLOOR 5.9604644775390625e-08f /* 2^-24: below it fp16 overflows whatever the scale */

struct bt_trainer {
    bt_bert *m;
    bt_adamw *opt;
    bt_train_config c;
    int64_t step;
    bt_tensor *gviews; /* trainable gradient views for the norm */
    /* fp16 loss scaler (GradScaler keeps the scale as a float tensor) */
    int scaling;
    float scale;
    int64_t clean, skipped, interval;
    /* data parallelism (train.h): reps[0] = m; replica j takes micro-batches
     * j, j + nrep, ...; scratch[j]: one micro-batch's gradients when replica j
     * gets more than one in a step (allocated on first use) */
    bt_bert *reps[BT_MAX_REPLICAS];
    float *scratch[BT_MAX_REPLICAS];
    int nrep;
    bt_grad_reduce reduce;
    void *reduce_ctx;
    int concurrent;     /* 1: one thread per replica (bt_trainer_set_concurrent) */
    int collective;     /* 1: sums and broadcasts through the backends' collective (bt_trainer_set_collective) */
    bt_bucket_sum *bsum; /* with the collective: the gradient sum in buckets, beside the backward */
    int rep0_threads;   /* > 0: replica 0's backend threads during the replicas' part */
    bt_replica_stats stats[BT_MAX_REPLICAS];
    const bt_batch *cur; /* the step's micro-batches (NULL: a custom forward/backward) */
    float *losses;       /* [cap]: micro-batch k's loss, summed in k order */
    int losses_cap;
    int fault_rep;       /* testing (bt_trainer_inject_failure): replica, step; -1: none */
    int64_t fault_step;
};

static int reduce_in_order(void *ctx, bt_bert *const *reps, int n);

int bt_trainer_create(bt_bert *m, const bt_train_config *c, bt_trainer **out)
{
    *out = NULL;
    if (!bt_bert_grads_dev(m))
        return bt_fail(BT_EINTERNAL, "bt_trainer_create: the model was created without training buffers");
    if (c->total_steps < 1 || c->warmup_steps < 0)
        return bt_fail(BT_ECONFIG, "total_steps %lld must be >= 1 and warmup_steps %lld >= 0",
                       (long long)c->total_steps, (long long)c->warmup_steps);
    bt_trainer *t = bt_xcalloc(1, sizeof *t);
    t->m = m;
    t->c = *c;
    int rc = bt_adamw_create(m, &c->optim, &t->opt);
    if (rc) {
        free(t);
        return rc;
    }
    t->gviews = bt_xcalloc(bt_bert_nparams(m), sizeof *t->gviews);
    bt_bert_set_frozen(m, c->freeze_embeddings, c->freeze_layers);
    t->scaling = bt_bert_precision(m) == BT_PREC_FP16;
    t->scale = t->scaling ? (c->loss_scale_init > 0 ? (float)c->loss_scale_init : SCALE_INIT) : 1.0f;
    t->interval = c->loss_scale_interval > 0 ? c->loss_scale_interval : SCALE_INTERVAL;
    t->reps[0] = m;
    t->nrep = 1;
    t->reduce = reduce_in_order;
    t->reduce_ctx = t;
    t->fault_rep = -1;
    *out = t;
    return 0;
}

void bt_trainer_free(bt_trainer *t)
{
    if (!t) return;
    bt_adamw_free(t->opt);
    for (int j = 0; j < t->nrep; j++) {
        bt_backend *be = bt_bert_backend(t->reps[j]);
        if (t->scratch[j]) be->free(be, t->scratch[j]);
    }
    bt_bucket_sum_free(t->bsum);
    free(t->gviews);
    free(t->losses);
    free(t);
}

int64_t bt_trainer_step(const bt_trainer *t) { return t->step; }
void bt_trainer_set_step(bt_trainer *t, int64_t step) { t->step = step; }

void bt_trainer_loss_scaler(const bt_trainer *t, bt_loss_scaler *out)
{
    out->enabled = t->scaling;
    out->scale = t->scale;
    out->clean_steps = t->clean;
    out->skipped_steps = t->skipped;
}

int bt_trainer_set_loss_scaler(bt_trainer *t, const bt_loss_scaler *s)
{
    if (s->skipped_steps < 0 || s->skipped_steps > t->step)
        return bt_fail(BT_EDATA, "loss scaler state: %lld skipped steps out of [0, %lld] (the steps done); the "
                                 "trainer state does not belong to this checkpoint",
                       (long long)s->skipped_steps, (long long)t->step);
    if (t->scaling && s->enabled) {
        float f = (float)s->scale;
        if (!(isfinite(f) && f > 0.0f && (double)f == s->scale) || s->clean_steps < 0 ||
            s->clean_steps >= t->interval)
            return bt_fail(BT_EDATA, "loss scaler state out of range: scale %g (a positive float), clean steps %lld "
                                     "(in [0, %lld)); the trainer state is damaged",
                           s->scale, (long long)s->clean_steps, (long long)t->interval);
        t->scale = f;
        t->clean = s->clean_steps;
    } else if (t->scaling) { /* from a run without scaling: start afresh */
        t->scale = t->c.loss_scale_init > 0 ? (float)t->c.loss_scale_init : SCALE_INIT;
        t->clean = 0;
    }
    t->skipped = s->skipped_steps;
    return 0;
}

/* torch's _amp_update_scale_: halve on overflow, double after interval clean steps. */
static void update_scale(bt_trainer *t, int overflow)
{
    if (overflow) {
        t->scale *= SCALE_BACKOFF;
        t->clean = 0;
        return;
    }
    if (++t->clean == t->interval) {
        float s = t->scale * SCALE_GROWTH;
        if (isfinite(s)) t->scale = s;
        t->clean = 0;
    }
}
bt_bert *bt_trainer_model(bt_trainer *t) { return t->m; }
bt_adamw *bt_trainer_optim(bt_trainer *t) { return t->opt; }

void bt_trainer_set_frozen(bt_trainer *t, int freeze_embeddings, int freeze_layers)
{
    t->c.freeze_embeddings = freeze_embeddings;
    t->c.freeze_layers = freeze_layers;
    for (int j = 0; j < t->nrep; j++) bt_bert_set_frozen(t->reps[j], freeze_embeddings, freeze_layers);
}

/* ------------------------------------------------------------- replicas */

/* The backends of the replicas and one F32 buffer of each: the arguments
 * of a collective (kernels/backend.h). */
static void coll_args(bt_trainer *t, float *(*buf)(bt_bert *), bt_backend **bes, float **bufs)
{
    for (int j = 0; j < t->nrep; j++) {
        bes[j] = bt_bert_backend(t->reps[j]);
        bufs[j] = buf(t->reps[j]);
    }
}

/* Replicas 1.. get replica 0's weights (after every update and a restore):
 * the backends' collective broadcast (NCCL on GPUs), else a device copy on a
 * shared backend, else through host memory. */
static int broadcast(bt_trainer *t)
{
    bt_backend *be0 = bt_bert_backend(t->m);
    size_t total = bt_bert_total_floats(t->m);
    if (t->collective) {
        bt_backend *bes[BT_MAX_REPLICAS];
        float *bufs[BT_MAX_REPLICAS];
        coll_args(t, bt_bert_params_dev, bes, bufs);
        int rc = be0->collective(be0, bes, t->nrep, bufs, total, BT_COLL_BCAST);
        if (rc) return bt_fail_context(rc, "the weights' broadcast to %d replicas", t->nrep - 1);
        for (int j = 1; j < t->nrep; j++) bt_bert_params_changed(t->reps[j]);
        return 0;
    }
    float *host = NULL;
    for (int j = 1; j < t->nrep; j++) {
        bt_bert *r = t->reps[j];
        bt_backend *be = bt_bert_backend(r);
        if (be == be0 || (be->host_memory && be0->host_memory)) { /* one address space: a plain copy */
            be0->copy(be0, bt_bert_params_dev(r), bt_bert_params_dev(t->m), total * sizeof(float));
            bt_bert_params_changed(r);
            continue;
        }
        if (!host) {
            host = bt_xaligned_alloc(total * sizeof(float));
            bt_bert_download_params(t->m, host);
        }
        bt_bert_upload_params(r, host);
    }
    bt_aligned_free(host);
    return 0;
}

/* The default gradient sum: replica 0's gradients += replica 1's, += replica
 * 2's, ... in that order, elementwise in F32: the backends' collective sum
 * (bt_trainer_set_collective), else on replica 0's backend, a replica on
 * another backend going through host memory into its scratch. */
static int reduce_in_order(void *ctx, bt_bert *const *reps, int n)
{
    bt_trainer *t = ctx;
    bt_backend *be0 = bt_bert_backend(reps[0]);
    size_t total = bt_bert_total_floats(reps[0]);
    if (t->collective && n == t->nrep) {
        bt_backend *bes[BT_MAX_REPLICAS];
        float *bufs[BT_MAX_REPLICAS];
        coll_args(t, bt_bert_grads_dev, bes, bufs);
        int rc = be0->collective(be0, bes, n, bufs, total, BT_COLL_SUM);
        return rc ? bt_fail_context(rc, "the gradient sum of %d replicas", n) : 0;
    }
    bt_tensor acc = bt_view1(bt_bert_grads_dev(reps[0]), BT_F32, be0->device, (int64_t)total);
    float *host = NULL;
    for (int j = 1; j < n; j++) {
        float *g = bt_bert_grads_dev(reps[j]);
        bt_backend *be = bt_bert_backend(reps[j]);
        if (be != be0 && !(be->host_memory && be0->host_memory)) { /* (host memory: added where it is) */
            if (!t->scratch[0] && !(t->scratch[0] = be0->alloc(be0, total * sizeof(float))))
                return bt_fail(BT_EINTERNAL, "gradient sum: out of device memory for %zu floats", total);
            if (!host) host = bt_xaligned_alloc(total * sizeof(float));
            be->download(be, host, g, total * sizeof(float));
            be0->upload(be0, t->scratch[0], host, total * sizeof(float));
            g = t->scratch[0];
        }
        bt_tensor b = bt_view1(g, BT_F32, be0->device, (int64_t)total);
        be0->add(be0, &acc, &b, &acc);
    }
    bt_aligned_free(host);
    return 0;
}

int bt_trainer_set_replicas(bt_trainer *t, bt_bert *const *extra, int n_extra)
{
    if (t->nrep != 1 || n_extra < 0 || n_extra + 1 > BT_MAX_REPLICAS)
        return bt_fail(BT_EINTERNAL, "bt_trainer_set_replicas: %d replicas (1..%d, once)", n_extra + 1,
                       BT_MAX_REPLICAS);
    for (int j = 0; j < n_extra; j++) {
        bt_bert *r = extra[j];
        if (!bt_bert_grads_dev(r) || bt_bert_total_floats(r) != bt_bert_total_floats(t->m) ||
            bt_bert_nparams(r) != bt_bert_nparams(t->m) || bt_bert_precision(r) != bt_bert_precision(t->m) ||
            bt_bert_task(r) != bt_bert_task(t->m))
            return bt_fail(BT_EINTERNAL, "bt_trainer_set_replicas: replica %d is not a training model of the same "
                                         "layout, task and precision as replica 0", j + 1);
    }
    for (int j = 0; j < n_extra; j++) {
        t->reps[j + 1] = extra[j];
        bt_bert_set_frozen(extra[j], t->c.freeze_embeddings, t->c.freeze_layers);
    }
    t->nrep = n_extra + 1;
    return broadcast(t);
}

int bt_trainer_replicas(const bt_trainer *t) { return t->nrep; }
bt_bert *bt_trainer_replica(bt_trainer *t, int j) { return j >= 0 && j < t->nrep ? t->reps[j] : NULL; }

int bt_trainer_set_collective(bt_trainer *t, int on)
{
    t->collective = 0;
    if (!on) return 0;
    bt_backend *be0 = bt_bert_backend(t->m);
    if (t->nrep < 2 || !be0->collective)
        return bt_fail(BT_EINTERNAL, "bt_trainer_set_collective: %d replica(s) on %s, which has %s collective",
                       t->nrep, be0->name, be0->collective ? "a" : "no");
    for (int i = 0; i < t->nrep; i++) {
        bt_backend *bi = bt_bert_backend(t->reps[i]);
        if (bi->collective != be0->collective)
            return bt_fail(BT_EINTERNAL, "bt_trainer_set_collective: replica %d is on %s, replica 0 on %s", i,
                           bi->name, be0->name);
        for (int j = i + 1; j < t->nrep; j++)
            if (bi == bt_bert_backend(t->reps[j]))
                return bt_fail(BT_EINTERNAL, "bt_trainer_set_collective: replicas %d and %d share a backend", i, j);
    }
    bt_backend *bes[BT_MAX_REPLICAS];
    float *bufs[BT_MAX_REPLICAS];
    coll_args(t, bt_bert_grads_dev, bes, bufs);
    int rc = be0->collective(be0, bes, t->nrep, NULL, 0, BT_COLL_SUM); /* prepare: what is missing fails here */
    /* and what is wrong (engine/collective_probe.h), on the gradients: each step recomputes them from zero */
    if (!rc) rc = bt_collective_probe(bes, bufs, t->nrep, bt_bert_total_floats(t->m));
    if (rc) return rc;
    t->collective = 1;
    if (!t->bsum) t->bsum = bt_bucket_sum_create(t->m);
    return 0;
}

void bt_trainer_bucket_stats(const bt_trainer *t, int *buckets, int64_t *sums, int64_t *during_backward)
{
    *buckets = t->bsum ? bt_bucket_sum_buckets(t->bsum) : 0;
    *sums = *during_backward = 0;
    if (t->bsum) bt_bucket_sum_stats(t->bsum, sums, during_backward);
}

int bt_trainer_set_concurrent(bt_trainer *t, int on, int rep0_threads)
{
    for (int i = 0; on && i < t->nrep; i++)
        for (int j = i + 1; j < t->nrep; j++)
            if (bt_bert_backend(t->reps[i]) == bt_bert_backend(t->reps[j]))
                return bt_fail(BT_EINTERNAL, "bt_trainer_set_concurrent: replicas %d and %d share a backend (its "
                                             "workspace); concurrent replicas need one backend each", i, j);
    t->concurrent = on;
    t->rep0_threads = on ? rep0_threads : 0;
    return 0;
}

void bt_trainer_replica_stats(const bt_trainer *t, int j, bt_replica_stats *out)
{
    memset(out, 0, sizeof *out);
    if (j < 0 || j >= t->nrep) return;
    *out = t->stats[j];
    bt_backend *be = bt_bert_backend(t->reps[j]);
    out->peak_bytes = be->peak_bytes ? be->peak_bytes(be) : 0;
}

void bt_trainer_inject_failure(bt_trainer *t, int replica, int64_t step)
{
    t->fault_rep = replica;
    t->fault_step = step;
}

void bt_trainer_set_reduce(bt_trainer *t, bt_grad_reduce fn, void *ctx)
{
    t->reduce = fn ? fn : reduce_in_order;
    t->reduce_ctx = fn ? ctx : t;
}

/* A micro-batch's forward/backward on replica j, model m (its gradients are
 * where the call must add them). */
typedef int (*rep_fb)(void *ctx, int j, bt_bert *m, int k, float grad_scale, uint32_t step, float *loss);
/* bucketed: the sum goes through t->bsum (bucket_sum.h); hooks: fb is one
 * bt_bert_forward_backward, whose backward says which gradients are final */
typedef struct { rep_fb fb; void *ctx; int n_micro; float scale; int bucketed, hooks; } rep_fn_args;

/* Replica j's last micro-batch k of a bucketed step: each bucket of its
 * gradient (part: where fb puts it, then added bucket by bucket; NULL:
 * straight in) is published as soon as it is final, so that the last
 * replica to finish a bucket issues its sum while the backward goes on. */
static int micro_bucketed(bt_trainer *t, const rep_fn_args *a, int j, int k, float *part)
{
    bt_bert *r = t->reps[j];
    bt_bucket_rank br;
    bt_bucket_rank_init(&br, t->bsum, j, part);
    if (a->hooks) bt_bert_set_grads_ready(r, bt_bucket_rank_ready, &br);
    int rc = a->fb(a->ctx, j, r, k, a->scale, (uint32_t)t->step, &t->losses[k]);
    bt_bert_set_grads_ready(r, NULL, NULL);
    if (!rc) bt_bucket_rank_ready(&br, 0); /* the rest (the embeddings at least) */
    return rc;
}

/* Micro-batch k on replica j. Its first one of the step goes straight into
 * the replica's (zeroed) gradients; each later one into the replica's
 * scratch (zeroed), which is then added: g_j = ((g_k0 + g_k1) + g_k2) ...
 * Every micro-batch's gradient is thus computed from zero, whichever replica
 * or accumulation slot it lands in, which is what makes devices = 2 equal to
 * grad_accum = 2 bit for bit (train.h). */
static int replica_micro(bt_trainer *t, const rep_fn_args *a, int j, int k)
{
    bt_bert *r = t->reps[j];
    bt_backend *be = bt_bert_backend(r);
    size_t total = bt_bert_total_floats(r);
    int bucketed = a->bucketed && k + t->nrep >= a->n_micro; /* (the replica's last) */
    if (k == j) {
        bt_bert_zero_grads(r);
        return bucketed ? micro_bucketed(t, a, j, k, NULL)
                        : a->fb(a->ctx, j, r, k, a->scale, (uint32_t)t->step, &t->losses[k]);
    }
    if (!t->scratch[j] && !(t->scratch[j] = be->alloc(be, total * sizeof(float))))
        return bt_fail(BT_EINTERNAL, "gradient accumulation: out of %s memory for %zu floats", be->name, total);
    be->memset0(be, t->scratch[j], total * sizeof(float));
    float *acc = bt_bert_swap_grads(r, t->scratch[j]);
    int rc = bucketed ? micro_bucketed(t, a, j, k, t->scratch[j])
                      : a->fb(a->ctx, j, r, k, a->scale, (uint32_t)t->step, &t->losses[k]);
    bt_bert_swap_grads(r, acc);
    if (rc || bucketed) return rc;
    bt_tensor ta = bt_view1(acc, BT_F32, be->device, (int64_t)total);
    bt_tensor g = bt_view1(t->scratch[j], BT_F32, be->device, (int64_t)total);
    be->add(be, &ta, &g, &ta);
    return 0;
}

/* ---- the replicas' part of a step: one thread per replica when concurrent */

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* What one replica does in a step, and how it ended. Written by the thread
 * that runs the replica only; read by the calling thread after the join. */
typedef struct {
    bt_trainer *t;
    const rep_fn_args *a;
    int j;
    atomic_int *stop;   /* set by the first replica that fails: the others stop before their next micro-batch */
    int rc, k_failed;
    char msg[1024];
} rep_run;

/* Micro-batches j, j + N, ... of the step on replica j, in order; each
 * micro-batch's loss into t->losses[k]. */
static void *rep_main(void *arg)
{
    rep_run *r = arg;
    bt_trainer *t = r->t;
    bt_replica_stats *st = &t->stats[r->j];
    double t0 = mono_now();
    for (int k = r->j; k < r->a->n_micro; k += t->nrep) {
        if (atomic_load(r->stop)) break;
        int rc = t->fault_rep == r->j && t->fault_step == t->step + 1
                     ? bt_fail(BT_EIO, "injected failure of replica %d at step %lld (BATON_FAULT_REPLICA, testing "
                                       "only)", r->j, (long long)t->step + 1)
                     : replica_micro(t, r->a, r->j, k);
        if (rc) {
            r->rc = rc;
            r->k_failed = k;
            snprintf(r->msg, sizeof r->msg, "%s", bt_errmsg());
            atomic_store(r->stop, 1);
            break;
        }
        st->micro++;
        if (t->cur) {
            st->examples += t->cur[k].n;
            for (int i = 0; i < t->cur[k].n; i++) st->tokens += t->cur[k].len[i];
        }
    }
    st->busy_s += mono_now() - t0;
    return NULL;
}

/* Every replica's micro-batches: concurrently (replicas 1.. on threads of
 * their own, replica 0 on the calling one) or one replica after another.
 * The first failure (lowest micro-batch) is the step's error, after every
 * thread has stopped. */
static int run_replicas(bt_trainer *t, rep_fn_args *a)
{
    int n = a->n_micro < t->nrep ? a->n_micro : t->nrep;
    atomic_int stop = 0;
    rep_run run[BT_MAX_REPLICAS];
    pthread_t th[BT_MAX_REPLICAS];
    int started[BT_MAX_REPLICAS] = {0};
    for (int j = 0; j < n; j++)
        run[j] = (rep_run){.t = t, .a = a, .j = j, .stop = &stop};
    for (int j = 1; j < n && t->concurrent; j++)
        started[j] = pthread_create(&th[j], NULL, rep_main, &run[j]) == 0;
    for (int j = 0; j < n; j++)
        if (j == 0 || !started[j]) rep_main(&run[j]); /* (a thread that could not start: here, in turn) */
    for (int j = 1; j < n; j++)
        if (started[j]) pthread_join(th[j], NULL);
    int bad = -1;
    for (int j = 0; j < n; j++)
        if (run[j].rc && (bad < 0 || run[j].k_failed < run[bad].k_failed)) bad = j;
    if (bad < 0) return 0;
    bt_fail(run[bad].rc, "%s", run[bad].msg);
    return bt_fail_context(run[bad].rc, "step %lld micro-batch %d (replica %d; every replica stopped)",
                           (long long)t->step + 1, run[bad].k_failed, bad);
}

typedef struct { const bt_batch *micro; } plain_ctx;

static int plain_fb(void *ctx, int j, bt_bert *m, int k, float grad_scale, uint32_t step, float *loss)
{
    (void)j;
    plain_ctx *p = ctx;
    return bt_bert_forward_backward(m, &p->micro[k], grad_scale, step, (uint32_t)k, loss);
}

typedef struct { bt_micro_fb fb; void *ctx; } user_ctx;

static int user_fb(void *ctx, int j, bt_bert *m, int k, float grad_scale, uint32_t step, float *loss)
{
    (void)m; /* the callback finds replica j's model (bt_trainer_replica) and its own state for it */
    user_ctx *u = ctx;
    return u->fb(u->ctx, j, k, grad_scale, step, loss);
}

static int train_step_on(bt_trainer *t, rep_fb fb, void *ctx, int n_micro, bt_step_info *info);

/* The step, with replica 0's backend on its share of the threads throughout
 * when the replicas are concurrent: its OpenMP team of the full count would
 * otherwise spin-wait (libgomp's default) after the update, on the cores the
 * other replicas' threads need, every step. */
static int train_step(bt_trainer *t, rep_fb fb, void *ctx, int n_micro, bt_step_info *info)
{
    bt_backend *be0 = bt_bert_backend(t->m);
    int was = t->concurrent && t->rep0_threads > 0 && be0->set_threads ? be0->set_threads(be0, t->rep0_threads) : 0;
    int rc = train_step_on(t, fb, ctx, n_micro, info);
    if (was > 0) be0->set_threads(be0, was);
    return rc;
}

int bt_train_step(bt_trainer *t, const bt_batch *micro, int n_micro, bt_step_info *info)
{
    plain_ctx p = {micro};
    t->cur = micro;
    int rc = train_step(t, plain_fb, &p, n_micro, info);
    t->cur = NULL;
    return rc;
}

int bt_train_step_fn(bt_trainer *t, bt_micro_fb fb, void *ctx, int n_micro, bt_step_info *info)
{
    user_ctx u = {fb, ctx};
    return train_step(t, user_fb, &u, n_micro, info);
}

/* After the update: every weight still finite? Else the divergence error of
 * bt_train_step_fn, naming the first tensor that is not (a weight that
 * overflowed although its gradient was finite: a learning rate far too large,
 * or no clipping). The trainer's weights are then unusable: the runner stops
 * without committing them. */
static int check_weights(bt_trainer *t)
{
    bt_bert *m = t->m;
    bt_backend *be = bt_bert_backend(m);
    bt_tensor all = bt_view1(bt_bert_params_dev(m), BT_F32, be->device, (int64_t)bt_bert_total_floats(m));
    if (be->all_finite(be, &all, 1)) return BT_OK;
    const char *name = "?";
    for (size_t i = 0; i < bt_bert_nparams(m); i++) {
        const bt_bert_param *p = bt_bert_param_at(m, i);
        bt_tensor v = bt_view1(bt_bert_params_dev(m) + p->off, BT_F32, be->device, (int64_t)p->numel);
        if (!be->all_finite(be, &v, 1)) {
            name = p->name;
            break;
        }
    }
    return bt_fail(BT_EDATA, "step %lld: the update made weight tensor %s non-finite: training diverged; lower "
                             "[train] lr, set max_grad_norm (clipping) or raise adam_eps; nothing of this step is "
                             "committed",
                   (long long)t->step + 1, name);
}

static int train_step_on(bt_trainer *t, rep_fb fb, void *ctx, int n_micro, bt_step_info *info)
{
    bt_bert *m = t->m;
    bt_backend *be = bt_bert_backend(m);
    if (n_micro < 1) return bt_fail(BT_EINTERNAL, "bt_train_step: no micro-batches");
    double loss_sum = 0.0;
    float lscale = t->scale; /* 1 without loss scaling */
    float scale = lscale * (1.0f / (float)n_micro);
    if (n_micro > t->losses_cap) {
        t->losses = bt_xrealloc(t->losses, (size_t)n_micro * sizeof *t->losses);
        t->losses_cap = n_micro;
    }
    memset(t->losses, 0, (size_t)n_micro * sizeof *t->losses);
    /* micro-batch k on replica k % nrep; the losses are summed in k order
     * whatever the schedule (concurrent or one replica after another) */
    rep_fn_args ra = {fb, ctx, n_micro, scale, 0, fb == plain_fb};
    /* the sum in buckets beside the backward when every replica has a part in it (bucket_sum.h) */
    ra.bucketed = t->bsum && t->collective && t->reduce == reduce_in_order && n_micro >= t->nrep;
    if (ra.bucketed) {
        bt_backend *bes[BT_MAX_REPLICAS];
        float *bufs[BT_MAX_REPLICAS];
        coll_args(t, bt_bert_grads_dev, bes, bufs);
        bt_bucket_sum_begin(t->bsum, bes, bufs, t->nrep);
    }
    int rc0 = run_replicas(t, &ra);
    if (ra.bucketed) {
        int failed = rc0;
        if ((rc0 = bt_bucket_sum_end(t->bsum, failed)) && !failed)
            bt_fail_context(rc0, "step %lld: summing the gradients of %d replicas", (long long)t->step + 1, t->nrep);
    }
    if (rc0) return rc0;
    for (int k = 0; k < n_micro; k++) loss_sum += t->losses[k];
    int used = n_micro < t->nrep ? n_micro : t->nrep;
    if (used > 1 && !ra.bucketed) {
        int rc = t->reduce(t->reduce_ctx, t->reps, used);
        if (rc) return bt_fail_context(rc, "step %lld: summing the gradients of %d replicas", (long long)t->step + 1,
                                       used);
    }
    /* global norm over trainable gradients (torch clip_grad_norm_) */
    int nv = 0;
    float *G = bt_bert_grads_dev(m);
    for (size_t i = 0; i < bt_bert_nparams(m); i++) {
        const bt_bert_param *p = bt_bert_param_at(m, i);
        if (!bt_bert_param_trainable(m, p)) continue;
        t->gviews[nv++] = bt_view1(G + p->off, BT_F32, be->device, (int64_t)p->numel);
    }
    double norm = sqrt(be->sum_squares(be, t->gviews, nv)); /* of the scaled gradients */
    double f = bt_schedule_factor(t->c.schedule, t->step - t->skipped, t->c.warmup_steps, t->c.total_steps);
    if (info) {
        info->loss = (float)(loss_sum / n_micro);
        info->lr = t->c.optim.lr * f;
        info->skipped = 0;
        info->loss_scale = lscale;
    }
    if (!isfinite(norm) || !isfinite(loss_sum)) {
        if (!t->scaling)
            return bt_fail(BT_EDATA, "step %lld: the loss or gradient norm is not finite (loss %g, norm %g): "
                                     "training diverged; lower the learning rate or enable clipping",
                           (long long)t->step + 1, loss_sum / n_micro, norm);
        /* fp16 overflow: skip the update, halve the scale (GradScaler) */
        update_scale(t, 1);
        if (t->scale < SCALE_FLOOR)
            return bt_fail(BT_EDATA, "step %lld: fp16 overflow (loss %g, gradient norm %g) again after the loss "
                                     "scale fell to %g: the model overflows fp16 even unscaled; use "
                                     "precision = bf16 (sm_80+ GPUs, the CPU) or fp32",
                           (long long)t->step + 1, loss_sum / n_micro, norm, (double)t->scale);
        t->skipped++;
        t->step++;
        if (info) {
            info->grad_norm = norm;
            info->skipped = 1;
            info->step = t->step;
        }
        return 0;
    }
    /* unscale (torch: inv_scale = float(1 / double(scale)); the clip norm is
     * the unscaled gradients'); one factor inv x clip coefficient for AdamW */
    float inv = (float)(1.0 / (double)lscale);
    norm *= (double)inv;
    float coef = 1.0f;
    if (t->c.max_grad_norm > 0.0f) {
        double cf = t->c.max_grad_norm / (norm + 1e-6);
        if (cf < 1.0) coef = (float)cf;
    }
    bt_adamw_step(t->opt, f, t->scaling ? inv * coef : coef);
    int rc = broadcast(t); /* every replica trains on the updated weights */
    if (!rc) rc = check_weights(t); /* (the scaler's skip above handles fp16 overflow of gradients) */
    if (rc) return rc;
    if (t->scaling) update_scale(t, 0);
    t->step++;
    if (info) {
        info->grad_norm = norm;
        info->step = t->step;
    }
    return 0;
}

/* ---------------------------------------------------------------- snapshot */

const char *bt_task_arch(bt_task task, int family)
{
    if (task == BT_TASK_SEQ_CLS && family == BT_FAMILY_ROBERTA) return "RobertaForSequenceClassification";
    if (task == BT_TASK_SEQ_CLS && family == BT_FAMILY_DISTILBERT) return "DistilBertForSequenceClassification";
    if (task == BT_TASK_SEQ_CLS && family == BT_FAMILY_ELECTRA) return "ElectraForSequenceClassification";
    if (task == BT_TASK_SEQ_CLS && family == BT_FAMILY_DEBERTA) return "DebertaV2ForSequenceClassification";
    if (task == BT_TASK_TOKEN_CLS && family == BT_FAMILY_ROBERTA) return "RobertaForTokenClassification";
    if (task == BT_TASK_TOKEN_CLS && family == BT_FAMILY_DISTILBERT) return "DistilBertForTokenClassification";
    if (task == BT_TASK_TOKEN_CLS && family == BT_FAMILY_ELECTRA) return "ElectraForTokenClassification";
    if (task == BT_TASK_TOKEN_CLS && family == BT_FAMILY_DEBERTA) return "DebertaV2ForTokenClassification";
    if (task == BT_TASK_MLM && family == BT_FAMILY_ROBERTA) return "RobertaForMaskedLM";
    if (task == BT_TASK_MLM && family == BT_FAMILY_DISTILBERT) return "DistilBertForMaskedLM";
    if (task == BT_TASK_MLM && family == BT_FAMILY_ELECTRA) return "ElectraForMaskedLM";
    if (task == BT_TASK_MLM && family == BT_FAMILY_DEBERTA) return "DebertaV2ForMaskedLM";
    switch (task) {
    case BT_TASK_SEQ_CLS: return "BertForSequenceClassification";
    case BT_TASK_TOKEN_CLS: return "BertForTokenClassification";
    case BT_TASK_MLM: return "BertForMaskedLM";
    case BT_TASK_ENCODER: return "BertModel";
    }
    return "BertModel";
}

void bt_tensor_set_free(bt_tensor_set *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) free(s->names[i]);
    free(s->names);
    free(s->e);
    bt_aligned_free(s->host);
    free(s->steps);
    memset(s, 0, sizeof *s);
}

static char *hf_name(const char *canonical, const char *arch, const char *suffix)
{
    char buf[300];
    if (!bt_hf_name(canonical, arch, buf, sizeof buf)) snprintf(buf, sizeof buf, "%s", canonical);
    return bt_xasprintf("%s%s", buf, suffix);
}

static void entry(bt_st_entry *e, char *name, bt_st_dtype dt, const bt_bert_param *p, const void *data)
{
    memset(e, 0, sizeof *e);
    e->name = name;
    e->dtype = dt;
    e->ndim = p ? p->ndim : 1;
    e->shape[0] = p ? p->shape[0] : 1;
    if (p && p->ndim == 2) e->shape[1] = p->shape[1];
    e->data = data;
}

int bt_trainer_snapshot(bt_trainer *t, const char *arch, bt_tensor_set *w, bt_tensor_set *mo)
{
    bt_bert *m = t->m;
    bt_backend *be = bt_bert_backend(m);
    size_t np = bt_bert_nparams(m), total = bt_bert_total_floats(m);
    if (!arch) arch = bt_task_arch(bt_bert_task(m), bt_bert_cfg(m)->family);
    memset(w, 0, sizeof *w);
    /* host memory (the CPU backend): the entries point at the blocks themselves, no copy */
    float *wsrc = be->host_memory ? bt_bert_params_dev(m) : (w->host = bt_xaligned_alloc(total * sizeof(float)));
    if (!be->host_memory) bt_bert_download_params(m, w->host);
    w->e = bt_xcalloc(np, sizeof *w->e);
    w->names = bt_xcalloc(np, sizeof *w->names);
    for (size_t i = 0; i < np; i++) {
        const bt_bert_param *p = bt_bert_param_at(m, i);
        w->names[i] = hf_name(p->name, arch, "");
        entry(&w->e[i], w->names[i], BT_ST_F32, p, wsrc + p->off);
    }
    w->n = np;
    if (!mo) return 0;
    memset(mo, 0, sizeof *mo);
    float *m1, *m2;
    if (be->host_memory) {
        m1 = bt_adamw_exp_avg_dev(t->opt);
        m2 = bt_adamw_exp_avg_sq_dev(t->opt);
    } else {
        mo->host = bt_xaligned_alloc(2 * total * sizeof(float));
        m1 = mo->host;
        m2 = mo->host + total;
        be->download(be, m1, bt_adamw_exp_avg_dev(t->opt), total * sizeof(float));
        be->download(be, m2, bt_adamw_exp_avg_sq_dev(t->opt), total * sizeof(float));
    }
    mo->steps = bt_xcalloc(np, sizeof *mo->steps);
    memcpy(mo->steps, bt_adamw_steps(t->opt), np * sizeof *mo->steps);
    mo->e = bt_xcalloc(3 * np, sizeof *mo->e);
    mo->names = bt_xcalloc(3 * np, sizeof *mo->names);
    for (size_t i = 0; i < np; i++) {
        const bt_bert_param *p = bt_bert_param_at(m, i);
        mo->names[3 * i] = hf_name(p->name, arch, ".exp_avg");
        entry(&mo->e[3 * i], mo->names[3 * i], BT_ST_F32, p, m1 + p->off);
        mo->names[3 * i + 1] = hf_name(p->name, arch, ".exp_avg_sq");
        entry(&mo->e[3 * i + 1], mo->names[3 * i + 1], BT_ST_F32, p, m2 + p->off);
        mo->names[3 * i + 2] = hf_name(p->name, arch, ".step");
        entry(&mo->e[3 * i + 2], mo->names[3 * i + 2], BT_ST_I64, NULL, &mo->steps[i]);
    }
    mo->n = 3 * np;
    return 0;
}

static const bt_st_tensor *find_moment(const bt_st_file *f, const char *canonical, const char *arch,
                                       const char *suffix)
{
    char *n = hf_name(canonical, arch, suffix);
    const bt_st_tensor *t = bt_st_find(f, n);
    free(n);
    if (!t) {
        n = bt_xasprintf("%s%s", canonical, suffix);
        t = bt_st_find(f, n);
        free(n);
    }
    return t;
}

int bt_trainer_restore(bt_trainer *t, const bt_st_file *wf, const bt_st_file *mf)
{
    bt_bert *m = t->m;
    bt_backend *be = bt_bert_backend(m);
    size_t np = bt_bert_nparams(m), total = bt_bert_total_floats(m);
    const char *arch = bt_task_arch(bt_bert_task(m), bt_bert_cfg(m)->family);
    float *host = bt_xaligned_alloc(total * sizeof(float));
    memset(host, 0, total * sizeof(float));
    bt_param_load *pl = bt_xcalloc(np, sizeof *pl);
    for (size_t i = 0; i < np; i++) {
        const bt_bert_param *p = bt_bert_param_at(m, i);
        pl[i].name = p->name;
        pl[i].ndim = p->ndim;
        pl[i].shape[0] = p->shape[0];
        pl[i].shape[1] = p->shape[1];
        pl[i].dst = host + p->off;
    }
    int rc = bt_load_hf_weights_family(wf, bt_bert_cfg(m)->family, pl, np);
    free(pl);
    if (rc) goto out;
    int64_t *steps = NULL;
    float *mh = NULL;
    if (mf) {
        mh = bt_xaligned_alloc(2 * total * sizeof(float));
        memset(mh, 0, 2 * total * sizeof(float));
        steps = bt_xcalloc(np, sizeof *steps);
        for (size_t i = 0; i < np && !rc; i++) {
            const bt_bert_param *p = bt_bert_param_at(m, i);
            static const char *suf[2] = {".exp_avg", ".exp_avg_sq"};
            for (int k = 0; k < 2 && !rc; k++) {
                const bt_st_tensor *st = find_moment(mf, p->name, arch, suf[k]);
                if (!st || st->numel != (int64_t)p->numel)
                    rc = bt_fail(BT_EDATA, "%s: optimizer tensor %s%s is %s (expected %zu values); the "
                                           "checkpoint does not match this model",
                                 bt_st_label(mf), p->name, suf[k], st ? "mis-shaped" : "missing", p->numel);
                else
                    rc = bt_st_read_f32(mf, st, mh + (size_t)k * total + p->off);
            }
            const bt_st_tensor *st = rc ? NULL : find_moment(mf, p->name, arch, ".step");
            if (!rc && (!st || st->dtype != BT_ST_I64 || st->numel != 1))
                rc = bt_fail(BT_EDATA, "%s: optimizer tensor %s.step is missing or not I64 [1]", bt_st_label(mf),
                             p->name);
            if (!rc) memcpy(&steps[i], st->data, sizeof steps[i]);
        }
        if (!rc) {
            be->upload(be, bt_adamw_exp_avg_dev(t->opt), mh, total * sizeof(float));
            be->upload(be, bt_adamw_exp_avg_sq_dev(t->opt), mh + total, total * sizeof(float));
            memcpy(bt_adamw_steps(t->opt), steps, np * sizeof *steps);
        }
    }
    if (!rc) bt_bert_upload_params(m, host);
    if (!rc) rc = broadcast(t);
    bt_aligned_free(mh);
    free(steps);
out:
    bt_aligned_free(host);
    return rc;
}
