/* tests/gpu/engine_parity.c — the training engine on the CUDA backend against
 * the CPU backend, in every precision: fp32, tf32 (against the CPU's fp32),
 * fp16 (dynamic loss scaling) and bf16.
 *
 * Owns: the engine-level GPU check. A random BERT (V 512, D 128, 2 layers,
 * dropout 0.1) is written to a temp dir; each backend trains it STEPS steps
 * (2 micro-batches each, AdamW, clipping, warmup) from the same weights and
 * data. Checks: per-step losses, skipped steps and loss scale agree; the
 * weight CHANGE (w_end - w_start) agrees per tensor (relative L2; the key
 * bias, whose gradient is rounding noise, is left out as in the reference
 * tests); two GPU runs give byte-identical weights. An fp16 run starting at
 * a loss scale of 2^21 (F16 overflows in the first two steps) must skip the
 * same steps on both backends.
 * Tolerances (first contact with a GPU may refine them; see docs/cuda.md):
 * fp32 losses 1e-4 / updates 1e-2; tf32, fp16, bf16 2e-3 / 1e-1. Calibration
 * on the CPU: bf16 against fp32 differs by 1.8e-4 in the losses and 6e-2 in
 * the updates (fp16: 8e-5, 1.8e-2), so two backends rounding the same values
 * must stay inside the precision's own effect; a kernel bug lands far out.
 * The memory plan (`baton plan`): the same training replayed on the counting
 * backend modelling this device must predict the backend's peak_bytes()
 * within 1% + 3 MiB (the CUB sort buffers are an estimate on the GPU; on the
 * CPU the two are equal), in fp32 and fp16 with recompute none and full.
 * Usage: engine_parity [-v] [--cpu-vs-cpu]   (exit 0 pass, 1 fail, 77 no GPU)
 * --cpu-vs-cpu runs the same comparison between two CPU backends (1 and 2
 * threads): it proves the program itself on a machine without a GPU.
 * Must not: reach into either backend; everything goes through the engine.
 */
#include "engine/bert.h"
#include "engine/train.h"
#include "kernels/backend.h"
#include "state/safetensors.h"
#include "util/err.h"
#include "util/file.h"
#include "util/mem.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if BATON_CUDA
bt_backend *bt_cuda_impl_create(int device); /* linked statically here, not through the loader */
#endif

enum { V = 512, D = 128, L = 2, H = 4, I = 256, P = 64, T = 2, C = 3, B = 4, S = 24, STEPS = 5 };
static int verbose, n_checks, n_fail;

static uint64_t rs = 0x243F6A8885A308D3ull;
static float frand(void) /* [-1, 1) */
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (float)((rs >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

static void add_t(bt_st_entry *e, float **data, int *n, const char *name, int ndim, int64_t s0, int64_t s1, float base,
                  float amp)
{
    size_t numel = (size_t)s0 * (ndim == 2 ? (size_t)s1 : 1);
    data[*n] = bt_xmalloc(numel * sizeof(float));
    for (size_t k = 0; k < numel; k++) data[*n][k] = base + amp * frand();
    memset(&e[*n], 0, sizeof e[*n]);
    e[*n].name = bt_xstrdup(name);
    e[*n].dtype = BT_ST_F32;
    e[*n].ndim = ndim;
    e[*n].shape[0] = s0;
    e[*n].shape[1] = s1;
    e[*n].data = data[*n];
    (*n)++;
}

static char *write_model(void)
{
    char tmpl[] = "/tmp/baton-gpu-bert-XXXXXX";
    char *dir = bt_xstrdup(mkdtemp(tmpl));
    char *cfg = bt_xasprintf("{\"model_type\":\"bert\",\"vocab_size\":%d,\"hidden_size\":%d,\"num_hidden_layers\":%d,"
                             "\"num_attention_heads\":%d,\"intermediate_size\":%d,\"max_position_embeddings\":%d,"
                             "\"type_vocab_size\":%d,\"hidden_act\":\"gelu\",\"hidden_dropout_prob\":0.1,"
                             "\"attention_probs_dropout_prob\":0.1,\"layer_norm_eps\":1e-12,"
                             "\"initializer_range\":0.02,\"pad_token_id\":0,\"num_labels\":%d}\n",
                             V, D, L, H, I, P, T, C);
    char *cp = bt_path_join(dir, "config.json");
    if (bt_write_file_atomic(cp, cfg, strlen(cfg))) { fprintf(stderr, "%s\n", bt_errmsg()); exit(1); }
    free(cp);
    free(cfg);
    bt_st_entry e[64];
    float *data[64];
    int n = 0;
    char nm[128];
    const float w = 0.05f;
    add_t(e, data, &n, "embeddings.word_embeddings.weight", 2, V, D, 0, w);
    add_t(e, data, &n, "embeddings.position_embeddings.weight", 2, P, D, 0, w);
    add_t(e, data, &n, "embeddings.token_type_embeddings.weight", 2, T, D, 0, w);
    add_t(e, data, &n, "embeddings.LayerNorm.weight", 1, D, 0, 1, 0.1f);
    add_t(e, data, &n, "embeddings.LayerNorm.bias", 1, D, 0, 0, 0.1f);
    for (int l = 0; l < L; l++) {
        static const char *q[] = {"query", "key", "value"};
        for (int k = 0; k < 3; k++) {
            snprintf(nm, sizeof nm, "encoder.layer.%d.attention.self.%s.weight", l, q[k]); add_t(e, data, &n, nm, 2, D, D, 0, w);
            snprintf(nm, sizeof nm, "encoder.layer.%d.attention.self.%s.bias", l, q[k]); add_t(e, data, &n, nm, 1, D, 0, 0, w);
        }
        snprintf(nm, sizeof nm, "encoder.layer.%d.attention.output.dense.weight", l); add_t(e, data, &n, nm, 2, D, D, 0, w);
        snprintf(nm, sizeof nm, "encoder.layer.%d.attention.output.dense.bias", l); add_t(e, data, &n, nm, 1, D, 0, 0, w);
        snprintf(nm, sizeof nm, "encoder.layer.%d.attention.output.LayerNorm.weight", l); add_t(e, data, &n, nm, 1, D, 0, 1, 0.1f);
        snprintf(nm, sizeof nm, "encoder.layer.%d.attention.output.LayerNorm.bias", l); add_t(e, data, &n, nm, 1, D, 0, 0, 0.1f);
        snprintf(nm, sizeof nm, "encoder.layer.%d.intermediate.dense.weight", l); add_t(e, data, &n, nm, 2, I, D, 0, w);
        snprintf(nm, sizeof nm, "encoder.layer.%d.intermediate.dense.bias", l); add_t(e, data, &n, nm, 1, I, 0, 0, w);
        snprintf(nm, sizeof nm, "encoder.layer.%d.output.dense.weight", l); add_t(e, data, &n, nm, 2, D, I, 0, w);
        snprintf(nm, sizeof nm, "encoder.layer.%d.output.dense.bias", l); add_t(e, data, &n, nm, 1, D, 0, 0, w);
        snprintf(nm, sizeof nm, "encoder.layer.%d.output.LayerNorm.weight", l); add_t(e, data, &n, nm, 1, D, 0, 1, 0.1f);
        snprintf(nm, sizeof nm, "encoder.layer.%d.output.LayerNorm.bias", l); add_t(e, data, &n, nm, 1, D, 0, 0, 0.1f);
    }
    add_t(e, data, &n, "pooler.dense.weight", 2, D, D, 0, w);
    add_t(e, data, &n, "pooler.dense.bias", 1, D, 0, 0, w);
    add_t(e, data, &n, "classifier.weight", 2, C, D, 0, w);
    add_t(e, data, &n, "classifier.bias", 1, C, 0, 0, w);
    char *mp = bt_path_join(dir, "model.safetensors");
    if (bt_st_write_file(mp, e, (size_t)n, NULL)) { fprintf(stderr, "%s\n", bt_errmsg()); exit(1); }
    free(mp);
    for (int i = 0; i < n; i++) {
        free(data[i]);
        free((char *)e[i].name);
    }
    return dir;
}

static void remove_model(char *dir)
{
    char *a = bt_path_join(dir, "config.json"), *b = bt_path_join(dir, "model.safetensors");
    unlink(a);
    unlink(b);
    rmdir(dir);
    free(a);
    free(b);
    free(dir);
}

/* Synthetic data: 2 micro-batches of B examples per step, lengths 8..S. */
static int32_t ids[STEPS][2][B][S], tts[STEPS][2][B][S], lab[STEPS][2][B];
static int lens[STEPS][2][B];
static void make_data(void)
{
    for (int s = 0; s < STEPS; s++)
        for (int k = 0; k < 2; k++)
            for (int b = 0; b < B; b++) {
                int len = 8 + (int)((frand() + 1) * 0.5f * (S - 8));
                if (len > S) len = S;
                lens[s][k][b] = len;
                lab[s][k][b] = (int32_t)((frand() + 1) * 1.5f) % C;
                for (int t = 0; t < len; t++) {
                    ids[s][k][b][t] = t == 0 ? 2 : 1 + (int32_t)((frand() + 1) * 0.5f * (V - 2));
                    tts[s][k][b][t] = t > len / 2;
                }
            }
}

typedef struct {
    float loss[STEPS];
    int skipped[STEPS];
    double scale[STEPS];
    float *w0, *w; /* weights before and after */
    size_t total;
} run_result;

static bt_recompute run_recompute; /* the plan check runs the step with recompute modes */

static int run(bt_backend *be, const char *dir, bt_precision prec, double init_scale, run_result *r)
{
    bt_bert_opts o = {.task = BT_TASK_SEQ_CLS, .num_labels = C, .max_batch = B, .max_seq = S, .training = 1,
                      .seed = 11, .precision = prec, .recompute = run_recompute};
    bt_bert *m = NULL;
    bt_trainer *t = NULL;
    int rc = bt_bert_create(be, dir, &o, &m);
    if (rc) return rc;
    bt_train_config tc = {.optim = {.lr = 1e-3f, .weight_decay = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f},
                          .schedule = BT_SCHED_LINEAR, .warmup_steps = 1, .total_steps = 20, .max_grad_norm = 1.0f,
                          .loss_scale_init = init_scale};
    if ((rc = bt_trainer_create(m, &tc, &t))) goto out;
    r->total = bt_bert_total_floats(m);
    r->w0 = bt_xmalloc(r->total * sizeof(float));
    r->w = bt_xmalloc(r->total * sizeof(float));
    bt_bert_download_params(m, r->w0);
    for (int s = 0; s < STEPS; s++) {
        const int32_t *pi[2][B], *pt[2][B];
        bt_batch mb[2];
        for (int k = 0; k < 2; k++) {
            for (int b = 0; b < B; b++) {
                pi[k][b] = ids[s][k][b];
                pt[k][b] = tts[s][k][b];
            }
            mb[k] = (bt_batch){.n = B, .ids = pi[k], .type_ids = pt[k], .len = lens[s][k], .label = lab[s][k]};
        }
        bt_step_info info;
        if ((rc = bt_train_step(t, mb, 2, &info))) goto out;
        r->loss[s] = info.loss;
        r->skipped[s] = info.skipped;
        r->scale[s] = info.loss_scale;
    }
    bt_bert_download_params(m, r->w);
out:
    bt_trainer_free(t);
    bt_bert_free(m);
    return rc;
}

static void report(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(int ok, const char *fmt, ...)
{
    va_list ap;
    n_checks++;
    if (!ok) n_fail++;
    if (ok && !verbose) return;
    printf("%s ", ok ? "ok  " : "FAIL");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

/* Relative L2 difference of the updates, per tensor, worst one. */
static double update_diff(bt_backend *be, const char *dir, const run_result *a, const run_result *b, char *worst,
                          size_t n)
{
    bt_bert_opts o = {.task = BT_TASK_SEQ_CLS, .num_labels = C, .max_batch = 1, .max_seq = 1, .training = 0};
    bt_bert *m = NULL;
    if (bt_bert_create(be, dir, &o, &m)) return INFINITY;
    double w = 0;
    for (size_t i = 0; i < bt_bert_nparams(m); i++) {
        const bt_bert_param *p = bt_bert_param_at(m, i);
        if (strstr(p->name, "attention.self.key.bias")) continue;
        double num = 0, den = 0;
        for (size_t k = 0; k < p->numel; k++) {
            double da = (double)a->w[p->off + k] - a->w0[p->off + k], db = (double)b->w[p->off + k] - b->w0[p->off + k];
            num += (da - db) * (da - db);
            den += db * db;
        }
        double r = den > 0 ? sqrt(num / den) : sqrt(num);
        if (!(r <= w)) {
            w = r;
            snprintf(worst, n, "%s", p->name);
        }
    }
    bt_bert_free(m);
    return w;
}

static void compare(const char *name, bt_backend *ref_be, bt_backend *be, const char *dir, bt_precision ref_p,
                    bt_precision p, double init_scale, double tl, double tw)
{
    run_result a = {0}, b = {0}, b2 = {0};
    int rc = run(ref_be, dir, ref_p, init_scale, &a);
    if (!rc) rc = run(be, dir, p, init_scale, &b);
    if (!rc) rc = run(be, dir, p, init_scale, &b2);
    if (rc) {
        report(0, "%s: %s", name, bt_errmsg());
        return;
    }
    double lw = 0;
    int same_skips = 1;
    for (int s = 0; s < STEPS; s++) {
        lw = fmax(lw, fabs((double)b.loss[s] - a.loss[s]) / fabs(a.loss[s]));
        same_skips &= a.skipped[s] == b.skipped[s] && a.scale[s] == b.scale[s];
        if (verbose)
            printf("     %s step %d: loss %.6f / %.6f, skipped %d / %d, scale %g / %g\n", name, s + 1, a.loss[s],
                   b.loss[s], a.skipped[s], b.skipped[s], a.scale[s], b.scale[s]);
    }
    report(lw <= tl, "%s: losses, max relative difference %.3g (tol %.0e)", name, lw, tl);
    report(same_skips, "%s: skipped steps and loss scales equal", name);
    char worst[160] = "";
    double uw = update_diff(ref_be, dir, &a, &b, worst, sizeof worst);
    report(uw <= tw, "%s: weight updates, worst tensor %s relative L2 %.3g (tol %.0e)", name, worst, uw, tw);
    report(memcmp(b.w, b2.w, b.total * sizeof(float)) == 0, "%s: two runs byte-identical", name);
    free(a.w0); free(a.w); free(b.w0); free(b.w); free(b2.w0); free(b2.w);
}

/* The training of run() on a fresh backend (make_be) against the counting
 * backend of the same family: peak bytes. */
static void plan_check(bt_backend *(*make_be)(void), const char *dir, bt_precision p, bt_recompute rc)
{
    bt_backend *be = make_be();
    if (!be) {
        report(0, "plan %s: backend: %s", bt_precision_name(p), bt_errmsg());
        return;
    }
    bt_count_profile prof = {be->device == BT_DEV_CPU ? BT_COUNT_CPU : BT_COUNT_CUDA, be->sm, 1, 0, (size_t)1 << 34};
    bt_backend *cnt = bt_backend_count_create(&prof);
    run_result a = {0}, b = {0};
    run_recompute = rc;
    int e = run(be, dir, p, 0, &a);
    if (!e) e = run(cnt, dir, p, 0, &b);
    run_recompute = BT_RECOMPUTE_NONE;
    size_t real = be->peak_bytes(be), plan = cnt->peak_bytes(cnt);
    double diff = fabs((double)plan - (double)real);
    if (e) report(0, "plan %s recompute %s: %s", bt_precision_name(p), bt_recompute_name(rc), bt_errmsg());
    else
        report(diff <= 0.01 * (double)real + 3.0 * 1048576.0,
               "plan %s recompute %s: counted %zu bytes, %s backend's peak %zu (%.2f%%)", bt_precision_name(p),
               bt_recompute_name(rc), plan, be->name, real, 100.0 * diff / (double)real);
    free(a.w0); free(a.w); free(b.w0); free(b.w);
    cnt->destroy(cnt);
    be->destroy(be);
}

static bt_backend *make_cpu2(void) { return bt_backend_cpu_create(1); }
#if BATON_CUDA
static bt_backend *make_gpu(void) { return bt_cuda_impl_create(0); }
#endif

int main(int argc, char **argv)
{
    int cpu2 = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-v")) verbose = 1;
        else if (!strcmp(argv[i], "--cpu-vs-cpu")) cpu2 = 1;
    }
    bt_backend *ref = bt_backend_cpu_create(1), *be = NULL;
    int sm = 0;
    if (cpu2) {
        be = bt_backend_cpu_create(2);
    } else {
#if BATON_CUDA
        be = bt_cuda_impl_create(0);
        if (!be) {
            printf("skip: no usable CUDA device (%s)\n", bt_errmsg());
            return 77;
        }
        sm = be->sm;
#else
        printf("skip: built without CUDA (use --cpu-vs-cpu)\n");
        return 77;
#endif
    }
    if (!ref || !be) {
        fprintf(stderr, "backend creation failed: %s\n", bt_errmsg());
        return 1;
    }
    printf("engine parity: %s (sm %d) against the CPU backend\n", be->name, sm);
    make_data();
    char *dir = write_model();
    compare("engine fp32", ref, be, dir, BT_PREC_FP32, BT_PREC_FP32, 0, 1e-4, 1e-2);
    if (!cpu2 && sm >= 80) compare("engine tf32", ref, be, dir, BT_PREC_FP32, BT_PREC_TF32, 0, 2e-3, 1e-1);
    compare("engine fp16", ref, be, dir, BT_PREC_FP16, BT_PREC_FP16, 0, 2e-3, 1e-1);
    compare("engine fp16 overflow", ref, be, dir, BT_PREC_FP16, BT_PREC_FP16, 2097152.0, 2e-3, 1e-1);
    if (be->dtype_ok(be, BT_BF16)) compare("engine bf16", ref, be, dir, BT_PREC_BF16, BT_PREC_BF16, 0, 2e-3, 1e-1);
    bt_backend *(*mk)(void) = make_cpu2;
#if BATON_CUDA
    if (!cpu2) mk = make_gpu;
#endif
    for (int k = 0; k < 4; k++)
        plan_check(mk, dir, k & 1 ? BT_PREC_FP16 : BT_PREC_FP32, k & 2 ? BT_RECOMPUTE_FULL : BT_RECOMPUTE_NONE);
    remove_model(dir);
    printf("%s: %d checks, %d failed\n", n_fail ? "FAIL" : "PASS", n_checks, n_fail);
    be->destroy(be);
    ref->destroy(ref);
    return n_fail ? 1 : 0;
}
