/* runner/plan.c — the plan of one training step (see plan.h).
 *
 * Owns: the device profiles (GPU figures from datasheets, the CPU and a live
 * GPU measured), the job's engine input, running the engine's allocation
 * sequence on the counting backend (bt_plan_memory_at), the search for the
 * largest micro-batch that fits, FLOPs per example and the memory limit.
 * docs/performance.md ("Memory plan") says where each figure comes from.
 * Must not: run compute on a real backend (except the CPU profile's 0.6 s
 * GEMM measurement), print (plan_report.c), or change a job (plan_auto.c).
 */
#include "runner/plan.h"

#include "engine/train.h"
#include "kernels/workspace.h"
#include "runner/precision.h"
#include "runner/task_longdoc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/mem.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define MIB ((size_t)1 << 20)
#define GIB ((double)(1u << 30))

/* GPU profiles. memory: the total capacity CUDA reports (torch's "GiB total
 * capacity"); overhead: CUDA context + cuBLASLt handle + kernel modules
 * (an estimate: tests/gpu/ops_parity.c measures it on each GPU); throughput:
 * NVIDIA datasheets, dense (docs/performance.md cites them). */
static const struct {
    const char *name, *desc;
    int sm, devices;
    double mem_gib, overhead_mib, fp32, tf32, f16;
} gpus[] = {
    {"p100", "NVIDIA Tesla P100 PCIe 16 GB (sm_60; Kaggle)", 60, 1, 15.89, 400, 9.3, 0, 18.7},
    {"t4", "NVIDIA T4 16 GB (sm_75; Kaggle, Colab)", 75, 1, 14.75, 400, 8.1, 0, 65},
    {"t4x2", "2 x NVIDIA T4 16 GB, data parallel (Kaggle)", 75, 2, 14.75, 400, 8.1, 0, 65},
    {"a100-40", "NVIDIA A100 40 GB (sm_80)", 80, 1, 39.59, 500, 19.5, 156, 312},
    {"a100-80", "NVIDIA A100 80 GB (sm_80)", 80, 1, 79.15, 500, 19.5, 156, 312},
    {"h100", "NVIDIA H100 SXM5 80 GB (sm_90)", 90, 1, 79.11, 500, 67, 494.7, 989.4},
};
#define N_GPUS (sizeof gpus / sizeof *gpus)

/* The CPU process beyond the backend's allocations: the program, OpenBLAS's
 * buffers, the tokenizer and the data. Measured peak RSS minus the engine's
 * figure: 15 MiB for the demo, 21 MiB for BERT-base at 8 x 512 tokens
 * (docs/performance.md); 100 MiB leaves room for a large corpus's token ids.
 * (A checkpoint's snapshot on the CPU copies nothing: engine/train.h.) */
#define CPU_OVERHEAD_MIB 100

const char *bt_plan_device_names(void) { return "cpu|p100|t4|t4x2|a100-40|a100-80|h100|gpu"; }

static int default_threads(int threads)
{
#ifdef _OPENMP
    if (threads <= 0) threads = omp_get_max_threads();
#endif
    return threads < 1 ? 1 : threads;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* GEMM rate (TFLOP/s) of the CPU backend at a BERT-base linear layer, F32
 * operands (dt F32) or 16-bit (F16): about 0.3 s of measurement. */
static double cpu_gemm_tflops(bt_backend *be, bt_dtype dt)
{
    const int M = 1024, N = 768, K = 768;
    size_t es = bt_dtype_size(dt);
    void *a = be->alloc(be, es * M * K), *b = be->alloc(be, es * N * K), *c = be->alloc(be, 4 * (size_t)M * N);
    double rate = 0;
    if (a && b && c) {
        bt_tensor A = bt_view2(a, dt, BT_DEV_CPU, M, K), B = bt_view2(b, dt, BT_DEV_CPU, N, K);
        bt_tensor C = bt_view2(c, BT_F32, BT_DEV_CPU, M, N);
        be->matmul(be, &A, 0, &B, 1, &C, NULL, 1.0f, 0.0f, BT_EPI_NONE, NULL);
        int n = 0;
        double t0 = now_s(), t;
        do {
            be->matmul(be, &A, 0, &B, 1, &C, NULL, 1.0f, 0.0f, BT_EPI_NONE, NULL);
            n++;
        } while ((t = now_s() - t0) < 0.3);
        rate = 2.0 * M * N * K * n / t / 1e12;
    }
    be->free(be, a);
    be->free(be, b);
    be->free(be, c);
    return rate;
}

int bt_plan_device_of(bt_backend *be, int threads, int speed, bt_plan_device *out)
{
    memset(out, 0, sizeof *out);
    size_t fr = 0, tot = 0;
    int rc = be->mem_info(be, &fr, &tot);
    if (rc) return rc;
    out->memory = tot;
    out->devices = 1;
    out->measured = 1;
    if (be->device == BT_DEV_CPU) {
        snprintf(out->name, sizeof out->name, "cpu");
        snprintf(out->desc, sizeof out->desc, "this machine's CPU (%d threads; memory: MemTotal or the cgroup limit)",
                 default_threads(threads));
        out->family = BT_COUNT_CPU;
        out->overhead = (size_t)CPU_OVERHEAD_MIB * MIB;
        if (speed) {
            out->tflops_fp32 = out->tflops_tf32 = cpu_gemm_tflops(be, BT_F32);
            out->tflops_16 = cpu_gemm_tflops(be, BT_F16);
        }
        out->efficiency = 0.8;
        return 0;
    }
    snprintf(out->name, sizeof out->name, "gpu");
    snprintf(out->desc, sizeof out->desc, "this machine's GPU 0 (sm_%d; measured memory, estimated throughput)", be->sm);
    out->family = BT_COUNT_CUDA;
    out->sm = be->sm;
    /* what is gone right after creation: the context, cuBLASLt and its workspace */
    out->fixed = BT_CUDA_LT_WORKSPACE;
    out->overhead = tot > fr + out->fixed ? tot - fr - out->fixed : 0;
    out->granularity = 2 * MIB;
    for (size_t i = 0; i < N_GPUS; i++) /* the throughput of the nearest known architecture */
        if (gpus[i].sm <= be->sm) {
            out->tflops_fp32 = gpus[i].fp32;
            out->tflops_tf32 = gpus[i].tf32;
            out->tflops_16 = gpus[i].f16;
        }
    out->efficiency = 0.4;
    return 0;
}

int bt_plan_device_get(const char *name, int threads, bt_plan_device *out)
{
    memset(out, 0, sizeof *out);
    if (!strcmp(name, "cpu") || !strcmp(name, "gpu")) {
        int gpu = !strcmp(name, "gpu");
        bt_backend *be = gpu ? bt_backend_cuda_create(0) : bt_backend_cpu_create(threads);
        if (!be)
            return bt_fail_context(gpu ? BT_ENOINPUT : BT_EINTERNAL, "--device %s%s", name,
                                   gpu ? ": no usable GPU here; name one of p100, t4, t4x2, a100-40, a100-80, h100" : "");
        int rc = bt_plan_device_of(be, threads, 1, out);
        be->destroy(be);
        return rc;
    }
    for (size_t i = 0; i < N_GPUS; i++) {
        if (strcmp(name, gpus[i].name)) continue;
        snprintf(out->name, sizeof out->name, "%s", gpus[i].name);
        snprintf(out->desc, sizeof out->desc, "%s", gpus[i].desc);
        out->family = BT_COUNT_CUDA;
        out->sm = gpus[i].sm;
        out->devices = gpus[i].devices;
        out->memory = (size_t)(gpus[i].mem_gib * GIB);
        out->overhead = (size_t)(gpus[i].overhead_mib * (double)MIB);
        out->fixed = BT_CUDA_LT_WORKSPACE;
        out->granularity = 2 * MIB;
        out->tflops_fp32 = gpus[i].fp32;
        out->tflops_tf32 = gpus[i].tf32;
        out->tflops_16 = gpus[i].f16;
        out->efficiency = 0.4;
        return 0;
    }
    return bt_fail(BT_EUSAGE, "--device %s: unknown device; use one of %s", name, bt_plan_device_names());
}

/* ------------------------------------------------------------ the input */

static bt_task task_of(int job_task)
{
    switch (job_task) {
    case BT_JOB_TASK_MLM: return BT_TASK_MLM;
    case BT_JOB_TASK_TOKEN_CLASSIFY: return BT_TASK_TOKEN_CLS;
    default: return BT_TASK_SEQ_CLS;
    }
}

int bt_plan_input_of(const bt_job *job, const bt_plan_device *dev, bt_plan_input *in, char *describe, size_t n)
{
    memset(in, 0, sizeof *in);
    char where[256] = "";
    int k = bt_job_key_index("train", "precision");
    if (k >= 0 && job->origin && job->origin[k].file) bt_job_where(job, k, where, sizeof where);
    bt_device d = dev->family == BT_COUNT_CPU ? BT_DEV_CPU : BT_DEV_CUDA;
    int rc = bt_precision_pick(job->train.precision, (bt_precision_device){d, dev->sm}, where, &in->precision, describe, n);
    if (rc) return rc;
    bt_bert_config cfg;
    if ((rc = bt_bert_config_load(job->model.path, &cfg))) return rc;
    in->model_dir = job->model.path;
    in->task = task_of(job->job.task);
    int pt = job->model.problem_type;
    in->problem = pt == BT_JOB_PROBLEM_MULTI ? BT_LOSS_MULTI : pt == BT_JOB_PROBLEM_REGRESSION ? BT_LOSS_REGRESSION
                                                                                               : BT_LOSS_SINGLE;
    in->num_labels = job->model.num_labels > 0 ? (int)job->model.num_labels
                   : job->data.labels.n > 0 ? job->data.labels.n : cfg.num_labels;
    if (in->problem == BT_LOSS_REGRESSION) in->num_labels = 1;
    else if (in->num_labels < 2) in->num_labels = 2;
    in->doc_attn_dim = job->job.task == BT_JOB_TASK_CLASSIFY_LONG ? bt_task_longdoc_attn_dim(job) : 0;
    in->recompute = (bt_recompute)job->train.recompute;
    in->seq = (int)job->data.max_seq_len;
    if (in->seq > cfg.max_pos) in->seq = cfg.max_pos; /* the runner refuses it; plan what the model allows */
    int has_eval = (job->data.eval && job->data.eval[0]) || job->data.eval_split > 0;
    in->eval_batch = !has_eval ? 0 : job->train.eval_batch_size > 0 ? (int)job->train.eval_batch_size : -1;
    in->threads = default_threads((int)job->runtime.threads);
    in->accum = (int)job->train.grad_accum;
    return 0;
}

/* -------------------------------------------------------------- memory */

/* A batch of n examples of seq tokens (id 0, every token labelled 0: the
 * most a micro-batch can hold). */
typedef struct {
    int32_t *tok;
    const int32_t **rows;
    int *len;
    int32_t *lab;
    float *targ;
    bt_batch b;
} plan_batch;

static void batch_make(plan_batch *p, int n, int seq, int C)
{
    p->tok = bt_xcalloc((size_t)seq, sizeof *p->tok);
    p->rows = bt_xcalloc((size_t)n, sizeof *p->rows);
    p->len = bt_xcalloc((size_t)n, sizeof *p->len);
    p->lab = bt_xcalloc((size_t)n, sizeof *p->lab);
    p->targ = bt_xcalloc((size_t)n * (size_t)C, sizeof *p->targ);
    for (int i = 0; i < n; i++) {
        p->rows[i] = p->tok;
        p->len[i] = seq;
    }
    p->b = (bt_batch){.n = n, .ids = p->rows, .len = p->len, .label = p->lab, .target = p->targ,
                      .token_labels = p->rows};
}

static void batch_free(plan_batch *p)
{
    free(p->tok); free(p->rows); free(p->len); free(p->lab); free(p->targ);
}

static size_t round_to(size_t x, size_t g) { return g ? (x + g - 1) / g * g : x; }

/* One training step (and one evaluation batch) of the model on be: of two
 * micro-batches when the job accumulates (the second one's gradients are
 * computed in a buffer of their own, engine/train.h), else of one. */
static int run_step(bt_bert *m, const bt_plan_input *in, int micro, int eval_batch)
{
    bt_train_config tc = {.optim = {.lr = 1e-5f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f},
                          .total_steps = 1, .max_grad_norm = 1.0f};
    bt_trainer *t = NULL;
    int rc = bt_trainer_create(m, &tc, &t);
    if (rc) return rc;
    int C = bt_bert_logits_cols(m);
    plan_batch pb;
    batch_make(&pb, micro, in->seq, C);
    bt_step_info info;
    bt_batch two[2] = {pb.b, pb.b};
    rc = bt_train_step(t, two, in->accum > 1 ? 2 : 1, &info);
    batch_free(&pb);
    if (!rc && eval_batch > 0) {
        float loss;
        batch_make(&pb, eval_batch, in->seq, C);
        rc = bt_bert_eval(m, &pb.b, &loss, NULL);
        batch_free(&pb);
    }
    bt_trainer_free(t);
    return rc;
}

int bt_plan_memory_at(const bt_plan_input *in, const bt_plan_device *dev, int micro, bt_plan_memory *out)
{
    memset(out, 0, sizeof *out);
    bt_count_profile prof = {dev->family, dev->sm, in->threads, dev->granularity, dev->memory};
    bt_backend *be = bt_backend_count_create(&prof);
    if (!be) return BT_EINTERNAL;
    int eval = in->eval_batch < 0 ? micro : in->eval_batch;
    bt_bert_opts mo = {.task = in->task, .num_labels = in->num_labels, .problem = in->problem,
                       .max_batch = micro > eval ? micro : eval, .max_seq = in->seq, .training = 1,
                       .doc_attn_dim = in->doc_attn_dim, .precision = in->precision, .recompute = in->recompute,
                       .no_weights = 1};
    bt_bert *m = NULL;
    int rc = bt_bert_create(be, in->model_dir, &mo, &m);
    if (!rc) rc = run_step(m, in, micro, eval);
    if (!rc) {
        bt_bert_memory bm;
        bt_bert_memory_of(m, &bm);
        size_t g = dev->granularity;
        out->params = round_to(bm.params, g);
        out->copy16 = round_to(bm.copy16, g);
        out->grads = round_to(bm.grads, g);
        out->moments = 2 * round_to(bm.params, g);
        out->activations = round_to(bm.arena, g);
        out->probs = bm.probs;
        out->engine = be->peak_bytes(be);
        size_t held = out->params + out->copy16 + out->grads + out->moments + out->activations;
        out->workspace = out->engine > held ? out->engine - held : 0;
        out->fixed = dev->fixed;
        out->overhead = dev->overhead;
        out->peak = out->engine + out->fixed + out->overhead;
    }
    bt_bert_free(m);
    be->destroy(be);
    return rc;
}

int bt_plan_max_micro(const bt_plan_input *in, const bt_plan_device *dev, size_t limit, int cap, int *out)
{
    *out = 0;
    bt_plan_memory pm;
    int lo = 0, hi = 1, rc;
    /* grow until it does not fit (or the cap), then bisect: the peak grows with the micro-batch */
    while (1) {
        rc = bt_plan_memory_at(in, dev, hi, &pm);
        if (rc && hi == 1) return rc; /* the job itself is wrong */
        if (rc) { /* beyond the address space the counting backend can reserve: far too big */
            bt_err_clear();
            break;
        }
        if (pm.peak > limit) break;
        lo = hi;
        if (hi >= cap) break;
        hi = hi * 2 > cap ? cap : hi * 2;
    }
    if (lo == hi) {
        *out = lo;
        return 0;
    }
    while (hi - lo > 1) {
        int mid = lo + (hi - lo) / 2;
        rc = bt_plan_memory_at(in, dev, mid, &pm);
        if (rc) bt_err_clear();
        if (!rc && pm.peak <= limit) lo = mid;
        else hi = mid;
    }
    *out = lo;
    return 0;
}

double bt_plan_example_flops(const bt_plan_input *in, const bt_bert_config *c)
{
    double S = in->seq, D = c->hidden, I = c->inter, L = c->layers, V = c->vocab, E = c->emb > 0 ? c->emb : D;
    double dense = 2.0 * (4.0 * D * D + 2.0 * D * I); /* per token per layer: Q,K,V,O and the FFN */
    double attn = 4.0 * S * D;                         /* per token per layer: q.k and P.v */
    if (c->family == BT_FAMILY_DEBERTA) /* DeBERTa: q.pk (c2p) and k.pq (p2c) per score, */
        attn += 2.0 * S * D * (c->rel_c2p + c->rel_p2c); /* and the backward's (x3 below) */
    double fwd_layer = S * (dense + attn);
    double head = in->task == BT_TASK_MLM ? S * 2.0 * (D * E + E * V) : 2.0 * D * D; /* MLM: D -> E -> V */
    /* backward = 2 x forward; the recomputing attention backward adds q.k once more */
    double train = 3.0 * (L * fwd_layer + head) + L * S * 2.0 * S * D;
    if (in->recompute == BT_RECOMPUTE_FULL) train += L * fwd_layer;
    else if (in->recompute == BT_RECOMPUTE_ATTENTION) train += L * S * (2.0 * 3.0 * D * D + attn);
    return train;
}

size_t bt_plan_limit(const bt_job *job, const bt_plan_device *dev)
{
    double lim = job->runtime.memory_limit;
    size_t mem = dev->memory;
    if (lim < 0) return (size_t)(-lim * (double)mem);
    if (lim > 0 && (size_t)lim < mem) return (size_t)lim;
    return mem;
}
