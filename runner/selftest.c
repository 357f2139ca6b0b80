/* runner/selftest.c — the comparison of the first-contact self-check (see
 * selftest.h): three small random models (two BERTs, a DeBERTa-v3-like one)
 * trained for a few steps on a device
 * backend and on the CPU reference, through the engine's own API (exactly
 * what `baton run` calls), then losses, gradients and weight updates compared.
 *
 * Owns: the self-check models (shapes, data, hyper-parameters), the error
 * measures and tolerances, and the result's JSON and text forms.
 * Must not: decide what happens on a mismatch (selftest_gate.c does), read
 * or write records, or touch any file but its temporary model directory.
 *
 * Both train in the precision training will use (engine/bert.h), the CPU
 * reference in fp32 for tf32 (it has none); in fp16 the loss scaler runs, and
 * a step skipped for overflow must be skipped on both.
 * Cases (each STEPS optimizer steps, the second with two micro-batches so
 * gradient accumulation runs; dropout 0.1 on, so the Philox masks must agree;
 * grad clipping at 1.0, so sum_squares and the clip coefficient run):
 *   classify  V=128 D=128 L=2 H=2 (head dim 64, as BERT-base) I=256, 3 labels,
 *             pairs (token types 0/1), a padding id inside one sequence,
 *             lengths up to 45 (not a multiple of any kernel tile)
 *   mlm       V=96 D=96 L=1 H=3 (head dim 32, as MiniLM) I=192, tied decoder,
 *             about 20% of the tokens labelled
 *   deberta   V=112 D=64 L=1 H=2 I=128, 3 labels, model_type deberta-v2 as
 *             deberta-v3-*: the disentangled attention (rel_attention_fwd/bwd,
 *             p2c|c2p, log position buckets 16 over 32 and the clamp, lengths
 *             up to 40), rel LayerNorm, no position or type table, the
 *             ContextPooler with its dropout
 * Measures (relative; the worst over steps and tensors is reported):
 *   loss    |l_dev - l_ref| / |l_ref| per step;
 *   grad    ||g_dev - g_ref|| / ||g_ref|| per tensor and step;
 *   weight  ||u_dev - u_ref|| / ||u_ref|| per tensor, u = w_end - w_start:
 *           the change training made, since the weights themselves move by
 *           only ~lr per step and would hide an error in the update.
 * The verdict takes the worst tensor, except in bf16, where it takes the
 * model-wide figure (all tensors at once; the worst tensor is reported):
 * bf16 rounding flips an element by one ulp (2^-8) wherever the two
 * devices' fp32 sums straddle a rounding boundary, so two correct devices
 * differ by ~1e-2 in a small tensor (measured with the noise stand-in: 0.8 to
 * 1.5e-2 for any noise from 1e-8 to 1e-5, against the 2e-2 limit) and by
 * 0.6-1.1e-2 model-wide. fp16 (10-bit mantissa) stays near 1.5e-3 per tensor.
 * The key projections' biases are left out of grad and weight: softmax is
 * shift-invariant, so their gradient is zero in exact arithmetic and both
 * backends hold rounding noise there (DeBERTa's p2c term gives them one; it
 * is left out all the same: the keys' weights carry the same products). The gradient norm of each step (from
 * sum_squares, what clipping uses) is compared as a gradient too.
 * Adam's eps is 1e-2 with lr 5e-3 (gradients are ~1e-3), so an update is
 * nearly linear in the gradient: with eps 1e-8 an element whose gradient is
 * rounding noise moves by +-lr, its sign decided by the rounding, and two
 * correct devices would differ by 2 lr there. Measured with the noise
 * stand-in (kernels/backend_fault.h, every matmul/attention/layer-norm output
 * x += r u (|x| + rms)): r = 1e-6 gives errors <= 2e-5, r = 1e-3 about 1e-2;
 * a 1e-3 fault in any op gives >= 7e-4.
 */
#include "runner/selftest.h"

#include "engine/bert.h"
#include "engine/train.h"
#include "engine/model_weights.h"
#include "runner/watchdog.h"
#include "state/safetensors.h"
#include "util/err.h"
#include "util/file.h"
#include "util/mem.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STEPS 3
#define LR 5e-3f  /* with EPS: updates ~0.5 |g| per step, ~1% of a weight */
#define EPS 1e-2f
static const int micro_per_step[STEPS] = {1, 2, 1};
#define MAX_B 4

typedef struct {
    const char *name;
    bt_task task;
    int V, D, L, H, I, P, C; /* C: labels (classify) */
    int B, Smax;
    int pairs;               /* token types 0/1 */
    int deberta;             /* DeBERTa-v3-like (model_type deberta-v2): the disentangled attention */
} st_case;

static const st_case cases[] = {
    {"classify", BT_TASK_SEQ_CLS, 128, 128, 2, 2, 256, 64, 3, 4, 45, 1, 0},
    {"mlm", BT_TASK_MLM, 96, 96, 1, 3, 192, 32, 0, 3, 29, 0, 0},
    {"deberta", BT_TASK_SEQ_CLS, 112, 64, 1, 2, 128, 64, 3, 4, 40, 0, 1},
};
#define DEBERTA_SPAN 16 /* position_buckets; max_relative_positions 32 < Smax: log buckets and the clamp */
#define N_CASES (int)(sizeof cases / sizeof cases[0])

double bt_selftest_limit(bt_precision precision) { return precision == BT_PREC_FP32 ? 1e-4 : 2e-2; }

/* ------------------------------------------------------------ the models */

static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

typedef struct { uint64_t s; } st_rng;
static uint32_t rnd(st_rng *r) { r->s = mix(r->s); return (uint32_t)(r->s >> 32); }
static float unif(st_rng *r) { return (float)(rnd(r) * (2.0 / 4294967296.0) - 1.0); } /* [-1, 1) */

typedef struct {
    char name[96];
    int ndim;
    int64_t s0, s1;
    float center, spread; /* values center + spread * U[-1, 1) */
} st_spec;

typedef struct {
    float center, spread; /* values center + spread * U[-1, 1) */
} st_values;

/* The tensors of a model being written, in order. */
typedef struct {
    st_spec s[96];
    int n;
} st_specs;

/* Appends a tensor of shape [a] (b == 0) or [a,b], named fmt with layer l
 * (fmt may hold one %d), with values v. */
static void spec(st_specs *t, int64_t a, int64_t b, st_values v, const char *fmt, int l)
{
    st_spec *s = &t->s[t->n++];
    snprintf(s->name, sizeof s->name, fmt, l);
    s->ndim = b ? 2 : 1;
    s->s0 = a;
    s->s1 = b;
    s->center = v.center;
    s->spread = v.spread;
}

/* config.json of case k into dir: a BERT, or a DeBERTa-v3-like model (no
 * position or type table, log position buckets, p2c|c2p, rel LayerNorm). */
static int write_config(const char *dir, const st_case *k)
{
    char *cfg = bt_xasprintf(
        "{%s\"vocab_size\":%d,\"hidden_size\":%d,\"num_hidden_layers\":%d,"
        "\"num_attention_heads\":%d,\"intermediate_size\":%d,\"max_position_embeddings\":%d,"
        "\"type_vocab_size\":%d,\"hidden_act\":\"gelu\",\"hidden_dropout_prob\":0.1,"
        "\"attention_probs_dropout_prob\":0.1,\"layer_norm_eps\":1e-12,\"initializer_range\":0.05,"
        "\"pad_token_id\":0,\"num_labels\":%d}\n",
        k->deberta ? "\"model_type\":\"deberta-v2\",\"relative_attention\":true,\"position_biased_input\":false,"
                     "\"position_buckets\":16,\"max_relative_positions\":32,\"pos_att_type\":\"p2c|c2p\","
                     "\"share_att_key\":true,\"norm_rel_ebd\":\"layer_norm\",\"pooler_dropout\":0.1,"
                   : "\"model_type\":\"bert\",",
        k->V, k->D, k->L, k->H, k->I, k->P, k->deberta ? 0 : 2, k->C > 0 ? k->C : 2);
    char *cp = bt_path_join(dir, "config.json");
    int rc = bt_write_file_atomic(cp, cfg, strlen(cfg));
    free(cp);
    free(cfg);
    return rc;
}

/* The tensors of case k under baton's canonical names (every tensor of
 * BertModel, DeBERTa's relative embeddings, the heads). */
static void model_specs(const st_case *k, st_specs *t)
{
    const float w = 0.0866f, b = 0.02f; /* U[-w, w) has std 0.05 */
    const st_values W = {0, w}, B = {0, b}, G = {1, 0.1f}; /* weights, biases, LayerNorm gains */
    t->n = 0;
    spec(t, k->V, k->D, W, "embeddings.word_embeddings.weight", 0);
    if (!k->deberta) spec(t, k->P, k->D, W, "embeddings.position_embeddings.weight", 0);
    if (!k->deberta) spec(t, 2, k->D, W, "embeddings.token_type_embeddings.weight", 0);
    spec(t, k->D, 0, G, "embeddings.LayerNorm.weight", 0);
    spec(t, k->D, 0, B, "embeddings.LayerNorm.bias", 0);
    if (k->deberta) {
        spec(t, 2 * DEBERTA_SPAN, k->D, W, "encoder.rel_embeddings.weight", 0);
        spec(t, k->D, 0, G, "encoder.LayerNorm.weight", 0);
        spec(t, k->D, 0, B, "encoder.LayerNorm.bias", 0);
    }
    for (int l = 0; l < k->L; l++) {
        static const char *const qkv[] = {"query", "key", "value"};
        for (int j = 0; j < 3; j++) {
            char f[96];
            snprintf(f, sizeof f, "encoder.layer.%%d.attention.self.%s.weight", qkv[j]);
            spec(t, k->D, k->D, W, f, l);
            snprintf(f, sizeof f, "encoder.layer.%%d.attention.self.%s.bias", qkv[j]);
            spec(t, k->D, 0, B, f, l);
        }
        spec(t, k->D, k->D, W, "encoder.layer.%d.attention.output.dense.weight", l);
        spec(t, k->D, 0, B, "encoder.layer.%d.attention.output.dense.bias", l);
        spec(t, k->D, 0, G, "encoder.layer.%d.attention.output.LayerNorm.weight", l);
        spec(t, k->D, 0, B, "encoder.layer.%d.attention.output.LayerNorm.bias", l);
        spec(t, k->I, k->D, W, "encoder.layer.%d.intermediate.dense.weight", l);
        spec(t, k->I, 0, B, "encoder.layer.%d.intermediate.dense.bias", l);
        spec(t, k->D, k->I, W, "encoder.layer.%d.output.dense.weight", l);
        spec(t, k->D, 0, B, "encoder.layer.%d.output.dense.bias", l);
        spec(t, k->D, 0, G, "encoder.layer.%d.output.LayerNorm.weight", l);
        spec(t, k->D, 0, B, "encoder.layer.%d.output.LayerNorm.bias", l);
    }
    if (k->task == BT_TASK_SEQ_CLS) {
        spec(t, k->D, k->D, W, "pooler.dense.weight", 0);
        spec(t, k->D, 0, B, "pooler.dense.bias", 0);
        spec(t, k->C, k->D, W, "classifier.weight", 0);
        spec(t, k->C, 0, B, "classifier.bias", 0);
    } else {
        spec(t, k->D, k->D, W, "cls.predictions.transform.dense.weight", 0);
        spec(t, k->D, 0, B, "cls.predictions.transform.dense.bias", 0);
        spec(t, k->D, 0, G, "cls.predictions.transform.LayerNorm.weight", 0);
        spec(t, k->D, 0, B, "cls.predictions.transform.LayerNorm.bias", 0);
        spec(t, k->V, 0, B, "cls.predictions.bias", 0);
    }
}

/* config.json + model.safetensors of case k into dir (write_config,
 * model_specs; weights uniform with std ~0.05, DeBERTa's under
 * DebertaV2ForSequenceClassification's names). */
static int write_model(const char *dir, int ci)
{
    const st_case *k = &cases[ci];
    int rc = write_config(dir, k);
    if (rc) return rc;
    st_specs t;
    model_specs(k, &t);
    for (int i = 0; k->deberta && i < t.n; i++) {
        char hf[96];
        const char *name = bt_hf_name(t.s[i].name, "DebertaV2ForSequenceClassification", hf, sizeof hf);
        if (!name) return bt_fail(BT_EINTERNAL, "self-check: no DeBERTa name for %s", t.s[i].name);
        snprintf(t.s[i].name, sizeof t.s[i].name, "%s", name);
    }
    const st_spec *s = t.s;
    const int n = t.n;
    bt_st_entry e[96];
    float *data[96];
    st_rng r = {0x5E1F7E57ull + (uint64_t)ci};
    for (int i = 0; i < n; i++) {
        size_t numel = (size_t)s[i].s0 * (s[i].ndim == 2 ? (size_t)s[i].s1 : 1);
        data[i] = bt_xmalloc(numel * sizeof(float));
        for (size_t j = 0; j < numel; j++) data[i][j] = s[i].center + s[i].spread * unif(&r);
        memset(&e[i], 0, sizeof e[i]);
        e[i].name = s[i].name;
        e[i].dtype = BT_ST_F32;
        e[i].ndim = s[i].ndim;
        e[i].shape[0] = s[i].s0;
        e[i].shape[1] = s[i].s1;
        e[i].data = data[i];
    }
    char *mp = bt_path_join(dir, "model.safetensors");
    rc = bt_st_write_file(mp, e, (size_t)n, NULL);
    free(mp);
    for (int i = 0; i < n; i++) free(data[i]);
    return rc;
}

/* One micro-batch of case k, a pure function of (case, step, micro). */
typedef struct {
    int32_t ids[MAX_B][64], types[MAX_B][64], tl[MAX_B][64];
    const int32_t *pid[MAX_B], *pty[MAX_B], *ptl[MAX_B];
    int len[MAX_B];
    int32_t label[MAX_B];
    bt_batch b;
} st_batch;

static void make_batch(int ci, int step, int micro, st_batch *sb)
{
    const st_case *k = &cases[ci];
    memset(sb, 0, sizeof *sb);
    st_rng r = {((uint64_t)ci << 40) ^ ((uint64_t)step << 20) ^ (uint64_t)micro ^ 0xBA7011ull};
    int labelled = 0;
    for (int i = 0; i < k->B; i++) {
        int len = i == 0 ? k->Smax : 4 + (int)(rnd(&r) % (uint32_t)(k->Smax - 3));
        sb->len[i] = len;
        for (int s = 0; s < len; s++) {
            sb->ids[i][s] = s == 0 ? 2 : 1 + (int32_t)(rnd(&r) % (uint32_t)(k->V - 1));
            sb->types[i][s] = k->pairs && s >= len / 2;
            sb->tl[i][s] = -100;
            if (k->task == BT_TASK_MLM && s > 0 && rnd(&r) % 5 == 0) {
                sb->tl[i][s] = 1 + (int32_t)(rnd(&r) % (uint32_t)(k->V - 1));
                labelled++;
            }
        }
        if (i == 1 && len > 3) sb->ids[i][len / 3] = 0; /* a padding id inside a sequence: no gradient */
        sb->label[i] = k->C > 0 ? (int32_t)(rnd(&r) % (uint32_t)k->C) : 0;
        sb->pid[i] = sb->ids[i];
        sb->pty[i] = sb->types[i];
        sb->ptl[i] = sb->tl[i];
    }
    if (k->task == BT_TASK_MLM && !labelled) sb->tl[0][1] = 5;
    sb->b.n = k->B;
    sb->b.ids = sb->pid;
    sb->b.type_ids = k->pairs ? sb->pty : NULL;
    sb->b.len = sb->len;
    sb->b.label = k->task == BT_TASK_SEQ_CLS ? sb->label : NULL;
    sb->b.token_labels = k->task == BT_TASK_MLM ? sb->ptl : NULL;
}

/* ------------------------------------------------------------- training */

typedef struct {
    size_t total;           /* floats in the parameter allocation */
    float *w0, *w1;         /* weights before and after */
    float *g[STEPS];        /* gradients of each step (before clipping) */
    float loss[STEPS];
    double gnorm[STEPS];    /* global gradient norm of each step (sum_squares) */
    int skipped[STEPS];     /* fp16: the step overflowed and was skipped (loss scale halved) */
    /* the parameter table (same on every backend) */
    size_t np;
    char **names;
    size_t *off, *numel;
} st_trace;

static void trace_free(st_trace *t)
{
    free(t->w0);
    free(t->w1);
    for (int s = 0; s < STEPS; s++) free(t->g[s]);
    for (size_t i = 0; i < t->np; i++) free(t->names[i]);
    free(t->names);
    free(t->off);
    free(t->numel);
    memset(t, 0, sizeof *t);
}

static int train_case(bt_backend *be, const char *dir, int ci, bt_precision prec, st_trace *t)
{
    const st_case *k = &cases[ci];
    bt_bert_opts mo = {.task = k->task, .num_labels = k->C, .problem = k->C ? BT_LOSS_SINGLE : BT_LOSS_AUTO,
                       .max_batch = k->B, .max_seq = k->Smax, .training = 1, .seed = 1234, .precision = prec};
    bt_train_config tc = {
        .optim = {.lr = LR, .weight_decay = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = EPS},
        .schedule = BT_SCHED_CONSTANT, .total_steps = STEPS, .max_grad_norm = 1.0f,
    };
    bt_bert *m = NULL;
    bt_trainer *tr = NULL;
    int rc = bt_bert_create(be, dir, &mo, &m);
    if (!rc) rc = bt_trainer_create(m, &tc, &tr);
    if (rc) goto out;
    t->total = bt_bert_total_floats(m);
    t->np = bt_bert_nparams(m);
    t->names = bt_xcalloc(t->np, sizeof *t->names);
    t->off = bt_xcalloc(t->np, sizeof *t->off);
    t->numel = bt_xcalloc(t->np, sizeof *t->numel);
    for (size_t i = 0; i < t->np; i++) {
        const bt_bert_param *p = bt_bert_param_at(m, i);
        t->names[i] = bt_xstrdup(p->name);
        t->off[i] = p->off;
        t->numel[i] = p->numel;
    }
    t->w0 = bt_xmalloc(t->total * sizeof(float));
    t->w1 = bt_xmalloc(t->total * sizeof(float));
    bt_bert_download_params(m, t->w0);
    for (int s = 0; s < STEPS && !rc; s++) {
        st_batch mb[2];
        bt_batch b[2];
        for (int j = 0; j < micro_per_step[s]; j++) {
            make_batch(ci, s, j, &mb[j]);
            b[j] = mb[j].b;
        }
        bt_step_info info;
        rc = bt_train_step(tr, b, micro_per_step[s], &info);
        if (rc) break;
        t->loss[s] = info.loss;
        t->gnorm[s] = info.grad_norm;
        t->skipped[s] = info.skipped;
        t->g[s] = bt_xmalloc(t->total * sizeof(float));
        be->download(be, t->g[s], bt_bert_grads_dev(m), t->total * sizeof(float));
    }
    if (!rc) bt_bert_download_params(m, t->w1);
out:
    bt_trainer_free(tr);
    bt_bert_free(m);
    if (rc) bt_fail_context(rc, "self-check model '%s' in %s on the %s backend", k->name, bt_precision_name(prec),
                            be->name);
    return rc;
}

/* ------------------------------------------------------------ measures */

/* Left out of grad/weight: zero gradient in exact arithmetic (see the top). */
static int skipped(const char *name) { return strstr(name, "attention.self.key.bias") != NULL; }

static double rel_err(double diff2, double ref2, double floor2)
{
    if (!isfinite(diff2)) return INFINITY;
    double den = ref2 > floor2 ? ref2 : floor2;
    if (den <= 0) return diff2 > 0 ? INFINITY : 0.0;
    return sqrt(diff2 / den);
}

/* Worst per-tensor relative difference of d vs r (or of d - d0 vs r - r0). */
/* Relative differences of d vs r (or of d - d0 vs r - r0, the updates) over
 * the tensors: the worst tensor's (*worst its index) and the model-wide one. */
typedef struct {
    double tensor, model;
    size_t worst;
} st_diff;

static st_diff diff_of(const st_trace *t, const float *d, const float *r, const float *d0, const float *r0)
{
    st_diff out = {0, 0, 0};
    double all_ref2 = 0, all_diff2 = 0;
    size_t alln = 0;
    double *ref2 = bt_xcalloc(t->np, sizeof *ref2), *diff2 = bt_xcalloc(t->np, sizeof *diff2);
    for (size_t i = 0; i < t->np; i++) {
        if (skipped(t->names[i])) continue;
        for (size_t j = t->off[i]; j < t->off[i] + t->numel[i]; j++) {
            double x = r[j] - (r0 ? r0[j] : 0.0f), y = d[j] - (d0 ? d0[j] : 0.0f);
            ref2[i] += x * x;
            diff2[i] += (y - x) * (y - x);
        }
        all_ref2 += ref2[i];
        all_diff2 += diff2[i];
        alln += t->numel[i];
    }
    for (size_t i = 0; i < t->np; i++) {
        if (skipped(t->names[i])) continue;
        /* a tensor that is all zero in the reference (no token of a type,
         * say) is measured against 1e-6 of the average tensor of its size */
        double floor2 = alln ? 1e-12 * all_ref2 * (double)t->numel[i] / (double)alln : 0;
        double e = rel_err(diff2[i], ref2[i], floor2);
        if (!(e <= out.tensor)) {
            out.tensor = e;
            out.worst = i;
        }
    }
    out.model = rel_err(all_diff2, all_ref2, 0);
    free(ref2);
    free(diff2);
    return out;
}

/* Keeps the worst of the gradients (weights = 0) or weight updates (1): the
 * judged figure (per tensor, or model-wide where res->model_wide), the worst
 * tensor's, and where. */
static void keep(bt_selftest_result *res, st_diff df, int weights, const char *where, const char *name)
{
    double *err = weights ? &res->weight_err : &res->grad_err;
    double *tensor_err = weights ? &res->weight_tensor_err : &res->grad_tensor_err;
    char *at = weights ? res->weight_at : res->grad_at;
    size_t cap = weights ? sizeof res->weight_at : sizeof res->grad_at;
    double judged = res->model_wide ? df.model : df.tensor;
    if (!(df.tensor <= *tensor_err)) *tensor_err = df.tensor;
    if (judged <= *err) return;
    *err = judged;
    if (res->model_wide)
        snprintf(at, cap, "%s, model-wide (worst tensor %.3g: %s)", where, df.tensor, name);
    else
        snprintf(at, cap, "%s: %s", where, name);
}

static void compare_case(int ci, const st_trace *d, const st_trace *r, bt_selftest_result *res)
{
    const char *cn = cases[ci].name;
    char where[64];
    for (int s = 0; s < STEPS; s++) {
        if (d->skipped[s] != r->skipped[s]) { /* fp16 overflow on one side only */
            res->grad_err = res->grad_tensor_err = INFINITY;
            snprintf(res->grad_at, sizeof res->grad_at, "%s step %d: fp16 overflow (step skipped) on the %s only", cn,
                     s + 1, d->skipped[s] ? "GPU" : "CPU");
            continue;
        }
        double e = fabs((double)d->loss[s] - (double)r->loss[s]) / fmax(fabs((double)r->loss[s]), 1e-6);
        if (!isfinite(d->loss[s])) e = INFINITY;
        if (!(e <= res->loss_err)) {
            res->loss_err = e;
            snprintf(res->loss_at, sizeof res->loss_at, "%s step %d (%.7g vs %.7g on the CPU)", cn, s + 1,
                     d->loss[s], r->loss[s]);
        }
        if (d->skipped[s]) continue; /* both overflowed: no gradients to compare (inf) */
        e = fabs(d->gnorm[s] - r->gnorm[s]) / fmax(r->gnorm[s], 1e-30);
        if (!isfinite(d->gnorm[s])) e = INFINITY;
        if (!(e <= res->grad_err)) {
            res->grad_err = e;
            snprintf(res->grad_at, sizeof res->grad_at, "%s step %d: the global gradient norm (%.7g vs %.7g on "
                     "the CPU)", cn, s + 1, d->gnorm[s], r->gnorm[s]);
        }
        st_diff df = diff_of(r, d->g[s], r->g[s], NULL, NULL);
        snprintf(where, sizeof where, "%s step %d", cn, s + 1);
        keep(res, df, 0, where, r->names[df.worst]);
    }
    st_diff df = diff_of(r, d->w1, r->w1, d->w0, r->w0);
    snprintf(where, sizeof where, "%s after %d steps", cn, STEPS);
    keep(res, df, 1, where, r->names[df.worst]);
}

static void remove_model(const char *dir)
{
    static const char *const files[] = {"config.json", "model.safetensors"};
    for (size_t i = 0; i < 2; i++) {
        char *p = bt_path_join(dir, files[i]);
        unlink(p);
        free(p);
    }
}

int bt_selftest_compare(bt_backend *dev, bt_backend *ref, bt_precision precision, bt_selftest_result *res)
{
    memset(res, 0, sizeof *res);
    res->limit = bt_selftest_limit(precision);
    res->model_wide = precision == BT_PREC_BF16;
    bt_precision ref_prec = precision == BT_PREC_TF32 ? BT_PREC_FP32 : precision; /* the CPU has no TF32 */
    int rc = BT_OK;
    double t0 = bt_now_mono();
    const char *tmp = getenv("TMPDIR");
    char *tmpl = bt_xasprintf("%s/baton-selftest-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(tmpl)) {
        rc = bt_fail(BT_EIO, "%s: cannot create a temporary directory for the self-check model (%s); set TMPDIR "
                             "to a writable directory", tmpl, strerror(errno));
        free(tmpl);
        return rc;
    }
    for (int ci = 0; ci < N_CASES && !rc; ci++) {
        st_trace tr_ref = {0}, tr_dev = {0};
        rc = write_model(tmpl, ci);
        if (!rc) rc = train_case(dev, tmpl, ci, precision, &tr_dev); /* first: it may refuse the precision */
        if (!rc) rc = train_case(ref, tmpl, ci, ref_prec, &tr_ref);
        if (!rc) compare_case(ci, &tr_dev, &tr_ref, res);
        trace_free(&tr_ref);
        trace_free(&tr_dev);
        remove_model(tmpl);
    }
    rmdir(tmpl);
    free(tmpl);
    res->cases = N_CASES;
    res->steps = STEPS;
    res->seconds = bt_now_mono() - t0;
    res->pass = !rc && res->loss_err <= res->limit && res->grad_err <= res->limit && res->weight_err <= res->limit;
    return rc;
}

/* --------------------------------------------------------------- output */

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

char *bt_selftest_result_json(const bt_selftest_result *r)
{
    json_t *o = json_pack("{s:s, s:o, s:s, s:{s:o, s:s}, s:{s:o, s:o, s:s}, s:{s:o, s:o, s:s}, s:i, s:i, s:f}",
                          "result", r->pass ? "pass" : "mismatch", "limit", num(r->limit),
                          "measure", r->model_wide ? "model-wide" : "per-tensor",
                          "loss", "error", num(r->loss_err), "at", r->loss_at,
                          "grad", "error", num(r->grad_err), "worst_tensor", num(r->grad_tensor_err), "at", r->grad_at,
                          "weight", "error", num(r->weight_err), "worst_tensor", num(r->weight_tensor_err), "at",
                          r->weight_at, "cases", r->cases, "steps", r->steps, "seconds", r->seconds);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

void bt_selftest_result_print(FILE *f, const bt_selftest_result *r, const char *indent)
{
    const char *what[3] = {"losses", "gradients", "weight updates"};
    double e[3] = {r->loss_err, r->grad_err, r->weight_err};
    const char *at[3] = {r->loss_at, r->grad_at, r->weight_at};
    for (int i = 0; i < 3; i++)
        fprintf(f, "%s%-15s worst relative error %-9.3g %s limit %g%s%s\n", indent, what[i], e[i],
                e[i] <= r->limit ? "<=" : "> ", r->limit, at[i][0] ? ", at " : "", at[i]);
    fprintf(f, "%s(gradients and weight updates judged %s; worst single tensor %.3g and %.3g)\n", indent,
            r->model_wide ? "model-wide, as bf16 needs" : "per tensor", r->grad_tensor_err, r->weight_tensor_err);
}
