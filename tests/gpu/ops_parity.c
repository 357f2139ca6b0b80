/* tests/gpu/ops_parity.c — every op of kernels/backend.h on the CUDA backend
 * against the CPU backend (the reference), plus run-to-run determinism.
 *
 * Owns: the GPU parity checks. Needs a GPU, so `make test` does not run it;
 * tests/gpu/run.sh builds and runs it (exit 0 all pass, 1 a failure, 77 no GPU).
 * Must not: reach into either backend's internals: everything goes through
 * the bt_backend vtable, as the engine does.
 *
 * Method, per op and per precision:
 *  - fresh random inputs; for F16/BF16 the inputs are rounded on the GPU and
 *    the CPU reference runs in F32 on exactly those rounded values;
 *  - F16/BF16 also against the CPU backend computing in the SAME dtype
 *    (checks named "... =cpu16"): both round once on store, so they agree to
 *    within rounding-boundary flips: tol16 = 2 ulps (F16 2e-3, BF16 1e-2),
 *    F32 outputs of 16-bit inputs 2e-5, bit-exact where the arithmetic is the
 *    same sequence of adds (embeddings, gathers, convert);
 *  - the mixed dtypes the engine uses (16-bit projection + F32 residual into
 *    layer norm, 16-bit LN input with F32 gradients, 16-bit GEMMs into F32);
 *  - GPU outputs are poisoned (all bytes 0xFF: NaN in every float dtype)
 *    before each run, so an element the op forgets to write fails;
 *  - error metric per element: |gpu - cpu| / (|cpu| + rms(cpu)); the check
 *    passes when the maximum is <= tol (F32 1e-5, TF32 2e-3, F16/BF16 vs F32
 *    1e-2); NaN/Inf never passes;
 *  - the GPU op runs twice; the raw output bytes must be identical;
 *  - the engine: a random BERT (D 128, 2 layers) trains 4 steps on both
 *    backends in fp32, tf32 (vs the CPU's fp32), fp16 and bf16: losses,
 *    loss scale, skipped steps and weights agree, and two GPU runs are
 *    byte-identical (checks named "engine ...");
 *  - the disentangled (DeBERTa) attention: ctx, probs, dqkv and dpos of the
 *    GPU's rel_attention_fwd/bwd against the CPU's (checks "rel_attention");
 *  - attention: the GPU backward (always from lse) against both CPU
 *    backwards (stored probabilities; recomputed from lse: "cpu-recompute"),
 *    at lengths on both sides of the CPU's 256 switch, and again on a second
 *    GPU backend forced to 16-row query tiles (BATON_CUDA_ATT_SMALL_TILES=1,
 *    the layout a P100 runs: checks named "... tile16");
 *  - the runtime overhead `baton plan` assumes for this GPU's profile
 *    (runner/plan.c) against what creating the backend took (check "plan
 *    runtime overhead").
 * Usage: ops_parity [-v] [-k substring]   (-k runs only checks whose name contains it)
 */
#include "engine/bert.h"
#include "engine/train.h"
#include "kernels/backend.h"
#include "kernels/workspace.h"
#include "runner/plan.h"
#include "state/safetensors.h"
#include "util/err.h"
#include "util/file.h"
#include "util/mem.h"

#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>

int bt_cuda_status(bt_backend *be);          /* kernels/cuda/backend_cuda.cu */
void bt_cuda_set_tf32(bt_backend *be, int on);
bt_backend *bt_cuda_impl_create(int device); /* linked statically here, not through the loader */

static bt_backend *CPU, *GPU, *GPU_SMALL;
static const char *att_tag = ""; /* " tile16" while GPU is the small-tile backend */
static int n_checks, n_fail, verbose;
static const char *only;
static size_t smem_optin;

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float frand(float lo, float hi)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    uint64_t x = rng_state * 0x2545F4914F6CDD1Dull;
    return lo + (hi - lo) * (float)((x >> 40) * (1.0 / 16777216.0));
}
static float *hrand(int64_t n, float lo, float hi)
{
    float *h = malloc(sizeof(float) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) h[i] = frand(lo, hi);
    return h;
}
static const char *dtname(bt_dtype d) { return d == BT_F32 ? "f32" : d == BT_F16 ? "f16" : d == BT_BF16 ? "bf16" : "i32"; }

static bt_tensor mk(bt_backend *be, bt_dtype dt, int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    void *p = be->alloc(be, (size_t)(n ? n : 1) * bt_dtype_size(dt));
    if (!p) {
        fprintf(stderr, "alloc failed: %s\n", bt_errmsg());
        exit(1);
    }
    return bt_view(p, dt, be->device, ndim, shape);
}
#define SHAPE(...) ((const int64_t[]){__VA_ARGS__}), (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t))
#define MK(be, dt, ...) mk(be, dt, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]){__VA_ARGS__})

static void rel(bt_backend *be, bt_tensor *t) { be->free(be, t->data); t->data = NULL; }

/* CPU F32 tensor holding h */
static bt_tensor cpu_from(const float *h, bt_tensor shape_of)
{
    bt_tensor t = mk(CPU, BT_F32, shape_of.ndim, shape_of.shape);
    memcpy(t.data, h, sizeof(float) * (size_t)bt_numel(&t));
    return t;
}

/* GPU tensor of dtype dt from host F32 data; h is overwritten with the values
 * as rounded to dt (what the CPU reference must see). */
static bt_tensor gpu_from(float *h, bt_dtype dt, const int64_t *shape, int ndim)
{
    bt_tensor f = mk(GPU, BT_F32, ndim, shape);
    int64_t n = bt_numel(&f);
    GPU->upload(GPU, f.data, h, sizeof(float) * (size_t)n);
    if (dt == BT_F32) return f;
    bt_tensor t = mk(GPU, dt, ndim, shape);
    GPU->convert(GPU, &f, &t);
    GPU->convert(GPU, &t, &f);
    GPU->download(GPU, h, f.data, sizeof(float) * (size_t)n);
    rel(GPU, &f);
    return t;
}
static bt_tensor gpu_i32(const int32_t *h, int64_t n)
{
    bt_tensor t = MK(GPU, BT_I32, n);
    GPU->upload(GPU, t.data, h, sizeof(int32_t) * (size_t)n);
    return t;
}
static bt_tensor cpu_i32(const int32_t *h, int64_t n)
{
    bt_tensor t = MK(CPU, BT_I32, n);
    memcpy(t.data, h, sizeof(int32_t) * (size_t)n);
    return t;
}

static void poison(bt_tensor *t)
{
    size_t b = (size_t)bt_numel(t) * bt_dtype_size(t->dtype);
    void *h = malloc(b ? b : 1);
    memset(h, 0xFF, b);
    GPU->upload(GPU, t->data, h, b);
    free(h);
}
static void *raw(bt_tensor *t)
{
    size_t b = (size_t)bt_numel(t) * bt_dtype_size(t->dtype);
    void *h = malloc(b ? b : 1);
    GPU->download(GPU, h, t->data, b);
    return h;
}
/* GPU tensor -> host F32 (converted on the GPU) */
static float *g2h(bt_tensor *t)
{
    int64_t n = bt_numel(t);
    float *h = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (t->dtype == BT_F32) {
        GPU->download(GPU, h, t->data, sizeof(float) * (size_t)n);
        return h;
    }
    bt_tensor f = mk(GPU, BT_F32, t->ndim, t->shape);
    GPU->convert(GPU, t, &f);
    GPU->download(GPU, h, f.data, sizeof(float) * (size_t)n);
    rel(GPU, &f);
    return h;
}

static int selected(const char *name) { return !only || strstr(name, only) != NULL; }

static void check(const char *name, const float *ref, const float *got, int64_t n, double tol)
{
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)ref[i] * ref[i];
    double rms = n ? sqrt(ss / (double)n) : 0.0, worst = 0.0;
    int64_t at = -1, bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double e;
        if (!isfinite(got[i]) || !isfinite(ref[i])) e = (got[i] == ref[i]) ? 0.0 : INFINITY;
        else e = fabs((double)got[i] - ref[i]) / (fabs(ref[i]) + rms + 1e-30);
        if (!(e <= tol)) bad++;
        if (!(e <= worst)) { worst = e; at = i; }
    }
    n_checks++;
    if (bad) {
        n_fail++;
        printf("FAIL %-48s max err %.3g (tol %.0e) at %lld: gpu %.9g cpu %.9g; %lld of %lld bad\n", name, worst, tol,
               (long long)at, at >= 0 ? got[at] : 0.0, at >= 0 ? ref[at] : 0.0, (long long)bad, (long long)n);
    } else if (verbose) {
        printf("ok   %-48s max err %.3g (tol %.0e), n=%lld\n", name, worst, tol, (long long)n);
    }
}
static void check_bytes(const char *name, const void *a, const void *b, size_t bytes)
{
    n_checks++;
    if (memcmp(a, b, bytes) != 0) {
        n_fail++;
        printf("FAIL %-48s two runs differ (not deterministic)\n", name);
    } else if (verbose) {
        printf("ok   %-48s bit-identical across runs\n", name);
    }
}
static void check_det(const char *name, bt_tensor *t, void **first)
{
    void *now = raw(t);
    if (!*first) {
        *first = now;
        return;
    }
    char buf[160];
    snprintf(buf, sizeof buf, "%s [determinism]", name);
    check_bytes(buf, *first, now, (size_t)bt_numel(t) * bt_dtype_size(t->dtype));
    free(now);
    free(*first);
    *first = NULL;
}
static double tol_of(bt_dtype d) { return d == BT_F32 ? 1e-5 : 1e-2; }
/* GPU vs the CPU computing in the same 16-bit dtype: 2 ulps */
static double tol16(bt_dtype d) { return d == BT_F16 ? 2e-3 : 1e-2; }

/* A CPU tensor of dtype dt holding the values of CPU F32 tensor f (exact when
 * they were rounded to dt already, as gpu_from arranges). */
static bt_tensor cpu_as(const bt_tensor *f, bt_dtype dt)
{
    bt_tensor t = mk(CPU, dt, f->ndim, f->shape);
    CPU->convert(CPU, f, &t);
    return t;
}
/* CPU tensor -> malloc'd host F32 */
static float *c2h(const bt_tensor *t)
{
    int64_t n = bt_numel(t);
    float *h = malloc(sizeof(float) * (size_t)(n ? n : 1));
    bt_tensor f = bt_view(h, BT_F32, BT_DEV_CPU, t->ndim, t->shape);
    CPU->convert(CPU, t, &f);
    return h;
}
static void check16(const char *name, const bt_tensor *cpu16, const float *got, double tol)
{
    char n2[200];
    snprintf(n2, sizeof n2, "%s =cpu16", name);
    float *ref = c2h(cpu16);
    check(n2, ref, got, bt_numel(cpu16), tol);
    free(ref);
}

/* ------------------------------------------------------------------------ */
/* matmul, bias_grad                                                         */

static void t_matmul(bt_dtype dt, bt_dtype ct, int tf32, int M, int K, int N, int ta, int tb, int use_bias,
                     int epi, float alpha, float beta)
{
    char name[128];
    snprintf(name, sizeof name, "matmul %s->%s%s %dx%dx%d t%d%d b%d e%d a%.1f b%.1f", dtname(dt), dtname(ct),
             tf32 ? " tf32" : "", M, K, N, ta, tb, use_bias, epi, alpha, beta);
    if (!selected(name)) return;
    int64_t as0 = ta ? K : M, as1 = ta ? M : K, bs0 = tb ? N : K, bs1 = tb ? K : N;
    float *ha = hrand(as0 * as1, -1, 1), *hb = hrand(bs0 * bs1, -1, 1), *hc = hrand((int64_t)M * N, -1, 1);
    float *hbias = hrand(N, -1, 1);
    bt_tensor ga = gpu_from(ha, dt, SHAPE(as0, as1)), gb = gpu_from(hb, dt, SHAPE(bs0, bs1));
    bt_tensor gc0 = gpu_from(hc, ct, SHAPE(M, N)); /* the beta*C input */
    bt_tensor gbias = gpu_from(hbias, BT_F32, SHAPE(N));
    bt_tensor gc = MK(GPU, ct, M, N), gpre = MK(GPU, ct, M, N);
    bt_tensor ca = cpu_from(ha, ga), cb = cpu_from(hb, gb), cc = cpu_from(hc, gc0), cbias = cpu_from(hbias, gbias);
    bt_tensor cpre = MK(CPU, BT_F32, M, N);
    CPU->matmul(CPU, &ca, ta, &cb, tb, &cc, use_bias ? &cbias : NULL, alpha, beta, epi, epi ? &cpre : NULL);
    bt_cuda_set_tf32(GPU, tf32);
    void *d1 = NULL, *d2 = NULL;
    float *out = NULL, *pre = NULL;
    for (int rep = 0; rep < 2; rep++) {
        GPU->copy(GPU, gc.data, gc0.data, (size_t)M * N * bt_dtype_size(ct));
        poison(&gpre);
        GPU->matmul(GPU, &ga, ta, &gb, tb, &gc, use_bias ? &gbias : NULL, alpha, beta, epi, epi ? &gpre : NULL);
        GPU->sync(GPU);
        if (rep == 0) {
            out = g2h(&gc);
            if (epi) pre = g2h(&gpre);
        }
        check_det(name, &gc, &d1);
        if (epi) check_det(name, &gpre, &d2);
    }
    bt_cuda_set_tf32(GPU, 0);
    /* TF32 rounds every input to 10 mantissa bits: the error of a K-term dot
     * product has a std of ~4e-4 x rms(C), so the max over 1e5 outputs of
     * err / (|ref| + rms) sits near 1e-3; 2e-3 leaves room without hiding bugs. */
    double tol = ct != BT_F32 || dt != BT_F32 ? 1e-2 : tf32 ? 2e-3 : 1e-5;
    check(name, cc.data, out, (int64_t)M * N, tol);
    if (epi) {
        char n2[160];
        snprintf(n2, sizeof n2, "%s pre_act", name);
        check(n2, cpre.data, pre, (int64_t)M * N, tol);
    }
    if (dt != BT_F32) { /* the CPU backend in the same dtypes */
        float *h0 = g2h(&gc0);
        bt_tensor c0f = cpu_from(h0, gc0);
        bt_tensor a16 = cpu_as(&ca, dt), b16 = cpu_as(&cb, dt), c16 = cpu_as(&c0f, ct), p16 = MK(CPU, ct, M, N);
        CPU->matmul(CPU, &a16, ta, &b16, tb, &c16, use_bias ? &cbias : NULL, alpha, beta, epi, epi ? &p16 : NULL);
        double t16 = ct == BT_F32 ? 2e-5 : tol16(ct);
        check16(name, &c16, out, t16);
        if (epi) {
            char n2[160];
            snprintf(n2, sizeof n2, "%s pre_act", name);
            check16(n2, &p16, pre, t16);
        }
        free(h0);
        rel(CPU, &c0f); rel(CPU, &a16); rel(CPU, &b16); rel(CPU, &c16); rel(CPU, &p16);
    }
    free(out); free(pre); free(ha); free(hb); free(hc); free(hbias);
    rel(GPU, &ga); rel(GPU, &gb); rel(GPU, &gc0); rel(GPU, &gbias); rel(GPU, &gc); rel(GPU, &gpre);
    rel(CPU, &ca); rel(CPU, &cb); rel(CPU, &cc); rel(CPU, &cbias); rel(CPU, &cpre);
}

static void t_bias_grad(bt_dtype dt, int M, int N, int acc)
{
    char name[96];
    snprintf(name, sizeof name, "bias_grad %s %dx%d acc%d", dtname(dt), M, N, acc);
    if (!selected(name)) return;
    float *hy = hrand((int64_t)M * N, -1, 1), *hb = hrand(N, -1, 1);
    bt_tensor gy = gpu_from(hy, dt, SHAPE(M, N)), gb0 = gpu_from(hb, BT_F32, SHAPE(N)), gb = MK(GPU, BT_F32, N);
    bt_tensor cy = cpu_from(hy, gy), cb = cpu_from(hb, gb0);
    CPU->bias_grad(CPU, &cy, &cb, acc);
    void *d = NULL;
    float *out = NULL;
    for (int rep = 0; rep < 2; rep++) {
        if (acc) GPU->copy(GPU, gb.data, gb0.data, sizeof(float) * N);
        else poison(&gb);
        GPU->bias_grad(GPU, &gy, &gb, acc);
        if (!rep) out = g2h(&gb);
        check_det(name, &gb, &d);
    }
    check(name, cb.data, out, N, dt == BT_F32 ? 1e-5 : 1e-2);
    if (dt != BT_F32) {
        bt_tensor y16 = cpu_as(&cy, dt), b2 = cpu_from(hb, gb0);
        CPU->bias_grad(CPU, &y16, &b2, acc);
        check16(name, &b2, out, 2e-5);
        rel(CPU, &y16); rel(CPU, &b2);
    }
    free(out); free(hy); free(hb);
    rel(GPU, &gy); rel(GPU, &gb0); rel(GPU, &gb); rel(CPU, &cy); rel(CPU, &cb);
}

/* ------------------------------------------------------------------------ */
/* elementwise                                                               */

static void t_elementwise(bt_dtype dt, int64_t n)
{
    char name[96];
    float *hx = hrand(n, -3, 3), *hy = hrand(n, -2, 2), *hd = hrand(n, -1, 1);
    bt_tensor gx = gpu_from(hx, dt, SHAPE(n)), gy = gpu_from(hy, dt, SHAPE(n)), gd = gpu_from(hd, dt, SHAPE(n));
    bt_tensor go = MK(GPU, dt, n);
    bt_tensor cx = cpu_from(hx, gx), cy = cpu_from(hy, gy), cd = cpu_from(hd, gd), co = MK(CPU, BT_F32, n);
    double tol = tol_of(dt);
    for (int act = BT_ACT_GELU_ERF; act <= BT_ACT_TANH; act++) {
        for (int bwd = 0; bwd < 2; bwd++) {
            for (int acc = 0; acc < (bwd ? 2 : 1); acc++) {
                snprintf(name, sizeof name, "act_%s %s act%d acc%d n=%lld", bwd ? "bwd" : "fwd", dtname(dt), act, acc,
                         (long long)n);
                if (!selected(name)) continue;
                memcpy(co.data, hy, sizeof(float) * n);
                if (bwd) CPU->act_bwd(CPU, act, &cx, &cd, &co, acc);
                else CPU->act_fwd(CPU, act, &cx, &co);
                bt_tensor x16 = {0}, d16 = {0}, o16 = {0};
                if (dt != BT_F32) {
                    x16 = cpu_as(&cx, dt), d16 = cpu_as(&cd, dt), o16 = cpu_as(&cy, dt);
                    if (bwd) CPU->act_bwd(CPU, act, &x16, &d16, &o16, acc);
                    else CPU->act_fwd(CPU, act, &x16, &o16);
                }
                void *d = NULL;
                float *out = NULL;
                for (int rep = 0; rep < 2; rep++) {
                    if (acc) GPU->copy(GPU, go.data, gy.data, (size_t)n * bt_dtype_size(dt));
                    else poison(&go);
                    if (bwd) GPU->act_bwd(GPU, act, &gx, &gd, &go, acc);
                    else GPU->act_fwd(GPU, act, &gx, &go);
                    if (!rep) out = g2h(&go);
                    check_det(name, &go, &d);
                }
                check(name, co.data, out, n, tol);
                if (dt != BT_F32) {
                    check16(name, &o16, out, tol16(dt));
                    rel(CPU, &x16); rel(CPU, &d16); rel(CPU, &o16);
                }
                free(out);
            }
        }
    }
    /* dropout (p = 0.1 and 0, with an unaligned element count) */
    for (int k = 0; k < 2; k++) {
        float p = k ? 0.0f : 0.1f;
        bt_dropout_key key = {12345, 7, 1, 3, BT_SITE_FFN_OUT};
        snprintf(name, sizeof name, "dropout %s p=%.1f n=%lld", dtname(dt), p, (long long)n);
        if (!selected(name)) continue;
        CPU->dropout(CPU, &cx, &co, p, key);
        void *d = NULL;
        float *out = NULL;
        for (int rep = 0; rep < 2; rep++) {
            poison(&go);
            GPU->dropout(GPU, &gx, &go, p, key);
            if (!rep) out = g2h(&go);
            check_det(name, &go, &d);
        }
        check(name, co.data, out, n, tol);
        if (dt != BT_F32) {
            bt_tensor x16 = cpu_as(&cx, dt), o16 = MK(CPU, dt, n);
            CPU->dropout(CPU, &x16, &o16, p, key);
            check16(name, &o16, out, tol16(dt));
            rel(CPU, &x16); rel(CPU, &o16);
        }
        int64_t zc = 0, zg = 0;
        for (int64_t i = 0; i < n; i++) {
            zc += ((float *)co.data)[i] == 0.0f;
            zg += out[i] == 0.0f;
        }
        n_checks++;
        if (zc != zg) {
            n_fail++;
            printf("FAIL %-48s mask differs: %lld zeros on cpu, %lld on gpu\n", name, (long long)zc, (long long)zg);
        }
        free(out);
    }
    /* add, scale */
    snprintf(name, sizeof name, "add %s n=%lld", dtname(dt), (long long)n);
    if (selected(name)) {
        CPU->add(CPU, &cx, &cy, &co);
        poison(&go);
        GPU->add(GPU, &gx, &gy, &go);
        float *out = g2h(&go);
        check(name, co.data, out, n, tol);
        if (dt != BT_F32) {
            bt_tensor x16 = cpu_as(&cx, dt), y16 = cpu_as(&cy, dt);
            CPU->add(CPU, &x16, &y16, &x16);
            check16(name, &x16, out, 0); /* one add, one rounding: bit-exact */
            rel(CPU, &x16); rel(CPU, &y16);
        }
        free(out);
    }
    snprintf(name, sizeof name, "scale %s n=%lld", dtname(dt), (long long)n);
    if (selected(name)) {
        memcpy(co.data, hx, sizeof(float) * n);
        CPU->scale(CPU, &co, 0.37f);
        GPU->copy(GPU, go.data, gx.data, (size_t)n * bt_dtype_size(dt));
        GPU->scale(GPU, &go, 0.37f);
        float *out = g2h(&go);
        check(name, co.data, out, n, tol);
        if (dt != BT_F32) {
            bt_tensor x16 = cpu_as(&cx, dt);
            CPU->scale(CPU, &x16, 0.37f);
            check16(name, &x16, out, 0);
            rel(CPU, &x16);
        }
        free(out);
    }
    /* convert F32 -> dt must round exactly as the CPU does */
    snprintf(name, sizeof name, "convert f32->%s n=%lld", dtname(dt), (long long)n);
    if (selected(name) && dt != BT_F32) {
        float *h = hrand(n, -70000, 70000); /* f16 overflow range too */
        for (int64_t i = 0; i < n / 4; i++) h[i] *= 1e-6f; /* subnormals */
        bt_tensor gf = gpu_from(h, BT_F32, SHAPE(n)), cf = cpu_from(h, gf);
        bt_tensor ch = mk(CPU, dt, 1, &n), cb = MK(CPU, BT_F32, n);
        CPU->convert(CPU, &cf, &ch);
        CPU->convert(CPU, &ch, &cb);
        poison(&go);
        GPU->convert(GPU, &gf, &go);
        void *a = raw(&go);
        check_bytes(name, ch.data, a, (size_t)n * 2);
        free(a);
        free(h);
        rel(GPU, &gf); rel(CPU, &cf); rel(CPU, &ch); rel(CPU, &cb);
    }
    free(hx); free(hy); free(hd);
    rel(GPU, &gx); rel(GPU, &gy); rel(GPU, &gd); rel(GPU, &go);
    rel(CPU, &cx); rel(CPU, &cy); rel(CPU, &cd); rel(CPU, &co);
}

/* ------------------------------------------------------------------------ */
/* layer norm                                                                */

static void t_layernorm(bt_dtype dt, int R, int D, int use_res)
{
    char name[96];
    snprintf(name, sizeof name, "layernorm %s %dx%d res%d", dtname(dt), R, D, use_res);
    if (!selected(name)) return;
    float *hx = hrand((int64_t)R * D, -2, 3), *hr = hrand((int64_t)R * D, -1, 1);
    float *hg = hrand(D, 0.5f, 1.5f), *hb = hrand(D, -0.5f, 0.5f), *hdy = hrand((int64_t)R * D, -1, 1);
    float *hdg = hrand(D, -1, 1), *hdb = hrand(D, -1, 1);
    bt_tensor gx = gpu_from(hx, dt, SHAPE(R, D)), gr = gpu_from(hr, dt, SHAPE(R, D));
    bt_tensor gg = gpu_from(hg, BT_F32, SHAPE(D)), gb = gpu_from(hb, BT_F32, SHAPE(D));
    bt_tensor gdy = gpu_from(hdy, dt, SHAPE(R, D));
    bt_tensor gdg0 = gpu_from(hdg, BT_F32, SHAPE(D)), gdb0 = gpu_from(hdb, BT_F32, SHAPE(D));
    bt_tensor gy = MK(GPU, dt, R, D), gh = MK(GPU, dt, R, D), gm = MK(GPU, BT_F32, R), gs = MK(GPU, BT_F32, R);
    bt_tensor gdh = MK(GPU, dt, R, D), gdg = MK(GPU, BT_F32, D), gdb = MK(GPU, BT_F32, D);
    bt_tensor cx = cpu_from(hx, gx), cr = cpu_from(hr, gr), cg = cpu_from(hg, gg), cb = cpu_from(hb, gb);
    bt_tensor cdy = cpu_from(hdy, gdy), cdg = cpu_from(hdg, gdg0), cdb = cpu_from(hdb, gdb0);
    bt_tensor cy = MK(CPU, BT_F32, R, D), ch = MK(CPU, BT_F32, R, D), cm = MK(CPU, BT_F32, R), cs = MK(CPU, BT_F32, R);
    bt_tensor cdh = MK(CPU, BT_F32, R, D);
    CPU->layernorm_fwd(CPU, &cx, use_res ? &cr : NULL, &cg, &cb, 1e-12f, &cy, &cm, &cs, &ch);
    CPU->layernorm_bwd(CPU, &ch, &cdy, &cg, &cm, &cs, &cdh, &cdg, &cdb);
    void *d[6] = {0};
    float *oy = NULL, *om = NULL, *os = NULL, *odh = NULL, *odg = NULL, *odb = NULL;
    for (int rep = 0; rep < 2; rep++) {
        poison(&gy); poison(&gh); poison(&gm); poison(&gs); poison(&gdh);
        GPU->copy(GPU, gdg.data, gdg0.data, sizeof(float) * D);
        GPU->copy(GPU, gdb.data, gdb0.data, sizeof(float) * D);
        GPU->layernorm_fwd(GPU, &gx, use_res ? &gr : NULL, &gg, &gb, 1e-12f, &gy, &gm, &gs, &gh);
        GPU->layernorm_bwd(GPU, &gh, &gdy, &gg, &gm, &gs, &gdh, &gdg, &gdb);
        if (!rep) {
            oy = g2h(&gy); om = g2h(&gm); os = g2h(&gs); odh = g2h(&gdh); odg = g2h(&gdg); odb = g2h(&gdb);
        }
        check_det(name, &gy, &d[0]); check_det(name, &gm, &d[1]); check_det(name, &gs, &d[2]);
        check_det(name, &gdh, &d[3]); check_det(name, &gdg, &d[4]); check_det(name, &gdb, &d[5]);
    }
    double tol = tol_of(dt);
    char n2[128];
    snprintf(n2, sizeof n2, "%s y", name); check(n2, cy.data, oy, (int64_t)R * D, tol);
    snprintf(n2, sizeof n2, "%s mean", name); check(n2, cm.data, om, R, tol);
    snprintf(n2, sizeof n2, "%s rstd", name); check(n2, cs.data, os, R, tol);
    snprintf(n2, sizeof n2, "%s dh", name); check(n2, cdh.data, odh, (int64_t)R * D, dt == BT_F32 ? 1e-5 : 2e-2);
    snprintf(n2, sizeof n2, "%s dgamma", name); check(n2, cdg.data, odg, D, dt == BT_F32 ? 1e-5 : 1e-2);
    snprintf(n2, sizeof n2, "%s dbeta", name); check(n2, cdb.data, odb, D, dt == BT_F32 ? 1e-5 : 1e-2);
    if (dt != BT_F32) { /* all 16-bit on the CPU too */
        bt_tensor x16 = cpu_as(&cx, dt), r16 = cpu_as(&cr, dt), dy16 = cpu_as(&cdy, dt);
        bt_tensor y16 = MK(CPU, dt, R, D), h16 = MK(CPU, dt, R, D), dh16 = MK(CPU, dt, R, D);
        bt_tensor dg2 = cpu_from(hdg, gdg0), db2 = cpu_from(hdb, gdb0);
        CPU->layernorm_fwd(CPU, &x16, use_res ? &r16 : NULL, &cg, &cb, 1e-12f, &y16, &cm, &cs, &h16);
        CPU->layernorm_bwd(CPU, &h16, &dy16, &cg, &cm, &cs, &dh16, &dg2, &db2);
        snprintf(n2, sizeof n2, "%s y", name); check16(n2, &y16, oy, tol16(dt));
        snprintf(n2, sizeof n2, "%s dh", name); check16(n2, &dh16, odh, 2 * tol16(dt));
        snprintf(n2, sizeof n2, "%s dgamma", name); check16(n2, &dg2, odg, 1e-4);
        rel(CPU, &x16); rel(CPU, &r16); rel(CPU, &dy16); rel(CPU, &y16); rel(CPU, &h16); rel(CPU, &dh16);
        rel(CPU, &dg2); rel(CPU, &db2);
    }
    free(oy); free(om); free(os); free(odh); free(odg); free(odb);
    free(hx); free(hr); free(hg); free(hb); free(hdy); free(hdg); free(hdb);
    bt_tensor *gt[] = {&gx, &gr, &gg, &gb, &gdy, &gdg0, &gdb0, &gy, &gh, &gm, &gs, &gdh, &gdg, &gdb};
    for (size_t i = 0; i < sizeof gt / sizeof *gt; i++) rel(GPU, gt[i]);
    bt_tensor *ct[] = {&cx, &cr, &cg, &cb, &cdy, &cdg, &cdb, &cy, &ch, &cm, &cs, &cdh};
    for (size_t i = 0; i < sizeof ct / sizeof *ct; i++) rel(CPU, ct[i]);
}

/* The engine's mixed dtypes: a 16-bit projection x plus the F32 residual
 * stream res into F32 y and h (and their F32 backward); the MLM head's 16-bit
 * LN input h with F32 dy/dh. CPU and GPU compute the same F32 values from the
 * same inputs: F32 tolerances. */
static void t_layernorm_mixed(bt_dtype dt, int R, int D)
{
    char name[96], n2[128];
    snprintf(name, sizeof name, "layernorm mixed %s+f32 %dx%d", dtname(dt), R, D);
    if (!selected(name)) return;
    float *hx = hrand((int64_t)R * D, -2, 3), *hr = hrand((int64_t)R * D, -1, 1), *hdy = hrand((int64_t)R * D, -1, 1);
    float *hg = hrand(D, 0.5f, 1.5f), *hb = hrand(D, -0.5f, 0.5f);
    bt_tensor gx = gpu_from(hx, dt, SHAPE(R, D)), gr = gpu_from(hr, BT_F32, SHAPE(R, D));
    bt_tensor gdy = gpu_from(hdy, BT_F32, SHAPE(R, D));
    bt_tensor gg = gpu_from(hg, BT_F32, SHAPE(D)), gb = gpu_from(hb, BT_F32, SHAPE(D));
    bt_tensor gy = MK(GPU, BT_F32, R, D), gh = MK(GPU, BT_F32, R, D), gm = MK(GPU, BT_F32, R), gs = MK(GPU, BT_F32, R);
    bt_tensor gdh = MK(GPU, BT_F32, R, D), gdg = MK(GPU, BT_F32, D), gdb = MK(GPU, BT_F32, D);
    bt_tensor cxf = cpu_from(hx, gx), cx = cpu_as(&cxf, dt), cr = cpu_from(hr, gr), cdy = cpu_from(hdy, gdy);
    bt_tensor cg = cpu_from(hg, gg), cb = cpu_from(hb, gb);
    bt_tensor cy = MK(CPU, BT_F32, R, D), ch = MK(CPU, BT_F32, R, D), cm = MK(CPU, BT_F32, R), cs = MK(CPU, BT_F32, R);
    bt_tensor cdh = MK(CPU, BT_F32, R, D), cdg = MK(CPU, BT_F32, D), cdb = MK(CPU, BT_F32, D);
    /* residual: 16-bit x + F32 res */
    CPU->layernorm_fwd(CPU, &cx, &cr, &cg, &cb, 1e-12f, &cy, &cm, &cs, &ch);
    CPU->layernorm_bwd(CPU, &ch, &cdy, &cg, &cm, &cs, &cdh, &cdg, &cdb);
    void *d[2] = {0};
    float *oy = NULL, *oh = NULL, *odh = NULL, *odg = NULL;
    for (int rep = 0; rep < 2; rep++) {
        poison(&gy); poison(&gh); poison(&gm); poison(&gs); poison(&gdh);
        GPU->memset0(GPU, gdg.data, sizeof(float) * D);
        GPU->memset0(GPU, gdb.data, sizeof(float) * D);
        GPU->layernorm_fwd(GPU, &gx, &gr, &gg, &gb, 1e-12f, &gy, &gm, &gs, &gh);
        GPU->layernorm_bwd(GPU, &gh, &gdy, &gg, &gm, &gs, &gdh, &gdg, &gdb);
        if (!rep) { oy = g2h(&gy); oh = g2h(&gh); odh = g2h(&gdh); odg = g2h(&gdg); }
        check_det(name, &gy, &d[0]); check_det(name, &gdh, &d[1]);
    }
    snprintf(n2, sizeof n2, "%s y", name); check(n2, cy.data, oy, (int64_t)R * D, 1e-5);
    snprintf(n2, sizeof n2, "%s h", name); check(n2, ch.data, oh, (int64_t)R * D, 0);
    snprintf(n2, sizeof n2, "%s dh", name); check(n2, cdh.data, odh, (int64_t)R * D, 1e-5);
    snprintf(n2, sizeof n2, "%s dgamma", name); check(n2, cdg.data, odg, D, 1e-5);
    free(oy); free(oh); free(odh); free(odg);
    /* MLM head: 16-bit x without residual -> F32 y; backward from the 16-bit h with F32 dy, dh */
    snprintf(name, sizeof name, "layernorm mixed %s-in f32-grad %dx%d", dtname(dt), R, D);
    CPU->layernorm_fwd(CPU, &cx, NULL, &cg, &cb, 1e-12f, &cy, &cm, &cs, NULL);
    memset(cdg.data, 0, sizeof(float) * D);
    memset(cdb.data, 0, sizeof(float) * D);
    CPU->layernorm_bwd(CPU, &cx, &cdy, &cg, &cm, &cs, &cdh, &cdg, &cdb);
    poison(&gy); poison(&gdh);
    GPU->memset0(GPU, gdg.data, sizeof(float) * D);
    GPU->memset0(GPU, gdb.data, sizeof(float) * D);
    GPU->layernorm_fwd(GPU, &gx, NULL, &gg, &gb, 1e-12f, &gy, &gm, &gs, NULL);
    GPU->layernorm_bwd(GPU, &gx, &gdy, &gg, &gm, &gs, &gdh, &gdg, &gdb);
    oy = g2h(&gy); odh = g2h(&gdh); odg = g2h(&gdg);
    snprintf(n2, sizeof n2, "%s y", name); check(n2, cy.data, oy, (int64_t)R * D, 1e-5);
    snprintf(n2, sizeof n2, "%s dh", name); check(n2, cdh.data, odh, (int64_t)R * D, 1e-5);
    snprintf(n2, sizeof n2, "%s dgamma", name); check(n2, cdg.data, odg, D, 1e-5);
    free(oy); free(odh); free(odg);
    free(hx); free(hr); free(hdy); free(hg); free(hb);
    bt_tensor *gt[] = {&gx, &gr, &gdy, &gg, &gb, &gy, &gh, &gm, &gs, &gdh, &gdg, &gdb};
    for (size_t i = 0; i < sizeof gt / sizeof *gt; i++) rel(GPU, gt[i]);
    bt_tensor *ct[] = {&cxf, &cx, &cr, &cdy, &cg, &cb, &cy, &ch, &cm, &cs, &cdh, &cdg, &cdb};
    for (size_t i = 0; i < sizeof ct / sizeof *ct; i++) rel(CPU, ct[i]);
}

/* ------------------------------------------------------------------------ */
/* attention                                                                 */

static void t_attention(bt_dtype dt, int B, int S, int H, int Dh, float p, int dead_batch)
{
    char name[128];
    snprintf(name, sizeof name, "attention%s %s B%d S%d H%d Dh%d p%.1f dead%d", att_tag, dtname(dt), B, S, H, Dh, p,
             dead_batch);
    if (!selected(name)) return;
    if (Dh > 64 && smem_optin < 90 * 1024) {
        if (verbose) printf("skip %-48s (needs sm_80+ shared memory)\n", name);
        return;
    }
    int64_t nqkv = (int64_t)B * S * 3 * H * Dh, nctx = (int64_t)B * S * H * Dh;
    float *hq = hrand(nqkv, -2, 2), *hdc = hrand(nctx, -1, 1);
    int32_t *hm = malloc(sizeof(int32_t) * (size_t)B * S);
    for (int b = 0; b < B; b++)
        for (int s = 0; s < S; s++) hm[b * S + s] = (b == dead_batch) ? 0 : (s < S - b * (S / 3)) ? 1 : 0;
    float scale = 1.0f / sqrtf((float)Dh);
    bt_dropout_key key = {777, 3, 0, 5, BT_SITE_ATTN_PROBS};
    bt_tensor gq = gpu_from(hq, dt, SHAPE(B, S, 3, H, Dh)), gdc = gpu_from(hdc, dt, SHAPE(B, S, H, Dh));
    bt_tensor gm = gpu_i32(hm, (int64_t)B * S);
    bt_tensor gc = MK(GPU, dt, B, S, H, Dh), gl = MK(GPU, BT_F32, B, H, S), gdq = MK(GPU, dt, B, S, 3, H, Dh);
    bt_tensor cq = cpu_from(hq, gq), cdc = cpu_from(hdc, gdc), cm = cpu_i32(hm, (int64_t)B * S);
    bt_tensor cc = MK(CPU, BT_F32, B, S, H, Dh), cl = MK(CPU, BT_F32, B, H, S), cp = MK(CPU, BT_F32, B, H, S, S);
    bt_tensor cdq = MK(CPU, BT_F32, B, S, 3, H, Dh);
    CPU->attention_fwd(CPU, &cq, &cm, B, S, H, Dh, scale, p, key, &cc, &cp, &cl);
    CPU->attention_bwd(CPU, &cq, &cm, B, S, H, Dh, scale, p, key, &cc, &cp, &cl, &cdc, &cdq);
    void *d[3] = {0};
    float *oc = NULL, *ol = NULL, *odq = NULL;
    for (int rep = 0; rep < 2; rep++) {
        poison(&gc); poison(&gl); poison(&gdq);
        GPU->attention_fwd(GPU, &gq, &gm, B, S, H, Dh, scale, p, key, &gc, NULL, &gl);
        GPU->attention_bwd(GPU, &gq, &gm, B, S, H, Dh, scale, p, key, &gc, NULL, &gl, &gdc, &gdq);
        if (!rep) { oc = g2h(&gc); ol = g2h(&gl); odq = g2h(&gdq); }
        check_det(name, &gc, &d[0]); check_det(name, &gl, &d[1]); check_det(name, &gdq, &d[2]);
    }
    double tol = dt == BT_F32 ? 1e-5 : 1e-2;
    char n2[160];
    snprintf(n2, sizeof n2, "%s ctx", name); check(n2, cc.data, oc, nctx, tol);
    for (int64_t i = 0; i < (int64_t)B * H * S; i++) /* dead rows: -FLT_MAX on both, would swamp the rms */
        if (((float *)cl.data)[i] < -1e30f && ol[i] < -1e30f) ((float *)cl.data)[i] = ol[i] = 0.0f;
    snprintf(n2, sizeof n2, "%s lse", name); check(n2, cl.data, ol, (int64_t)B * H * S, tol);
    snprintf(n2, sizeof n2, "%s dqkv", name); check(n2, cdq.data, odq, nqkv, dt == BT_F32 ? 1e-5 : 2e-2);
    { /* the CPU backward that recomputes P from lse, as the engine runs it past S = 256 */
        bt_tensor cdq2 = MK(CPU, BT_F32, B, S, 3, H, Dh);
        CPU->attention_bwd(CPU, &cq, &cm, B, S, H, Dh, scale, p, key, &cc, NULL, &cl, &cdc, &cdq2);
        snprintf(n2, sizeof n2, "%s dqkv vs cpu-recompute", name);
        check(n2, cdq2.data, odq, nqkv, dt == BT_F32 ? 1e-5 : 2e-2);
        rel(CPU, &cdq2);
    }
    if (dt != BT_F32) {
        bt_tensor q16 = cpu_as(&cq, dt), dc16 = cpu_as(&cdc, dt), c16 = MK(CPU, dt, B, S, H, Dh);
        bt_tensor dq16 = MK(CPU, dt, B, S, 3, H, Dh);
        CPU->attention_fwd(CPU, &q16, &cm, B, S, H, Dh, scale, p, key, &c16, &cp, &cl);
        CPU->attention_bwd(CPU, &q16, &cm, B, S, H, Dh, scale, p, key, &c16, &cp, &cl, &dc16, &dq16);
        snprintf(n2, sizeof n2, "%s ctx", name); check16(n2, &c16, oc, tol16(dt));
        /* the GPU's backward uses rowsum(dctx * stored 16-bit ctx), the CPU's rowsum(P * dP) */
        snprintf(n2, sizeof n2, "%s dqkv", name); check16(n2, &dq16, odq, 2 * tol16(dt));
        CPU->attention_fwd(CPU, &q16, &cm, B, S, H, Dh, scale, p, key, &c16, NULL, &cl);
        CPU->attention_bwd(CPU, &q16, &cm, B, S, H, Dh, scale, p, key, &c16, NULL, &cl, &dc16, &dq16);
        snprintf(n2, sizeof n2, "%s dqkv vs cpu-recompute", name); check16(n2, &dq16, odq, 2 * tol16(dt));
        rel(CPU, &q16); rel(CPU, &dc16); rel(CPU, &c16); rel(CPU, &dq16);
    }
    if (dt == BT_F32 && S <= 256) { /* the optional probs output */
        bt_tensor gp = MK(GPU, BT_F32, B, H, S, S);
        poison(&gp);
        GPU->attention_fwd(GPU, &gq, &gm, B, S, H, Dh, scale, p, key, &gc, &gp, &gl);
        float *op = g2h(&gp);
        snprintf(n2, sizeof n2, "%s probs", name);
        check(n2, cp.data, op, (int64_t)B * H * S * S, 1e-5);
        free(op);
        rel(GPU, &gp);
    }
    free(oc); free(ol); free(odq); free(hq); free(hdc); free(hm);
    bt_tensor *gt[] = {&gq, &gdc, &gm, &gc, &gl, &gdq};
    for (size_t i = 0; i < sizeof gt / sizeof *gt; i++) rel(GPU, gt[i]);
    bt_tensor *ct[] = {&cq, &cdc, &cm, &cc, &cl, &cp, &cdq};
    for (size_t i = 0; i < sizeof ct / sizeof *ct; i++) rel(CPU, ct[i]);
}

/* DeBERTa's disentangled attention (rel_attention_fwd/bwd) against the CPU:
 * ctx, probs, dqkv, dpos; padding keys and padding query rows; a relidx
 * that clamps (R < 2S - 1). 16-bit: the GPU's rounded inputs in the F32
 * CPU reference, within the 16-bit tolerances. */
static void t_relattn(bt_dtype dt, int B, int S, int H, int Dh, int R, int c2p, int p2c, float p)
{
    char name[128];
    snprintf(name, sizeof name, "rel_attention %s B%d S%d H%d Dh%d R%d c2p%d p2c%d p%.1f", dtname(dt), B, S, H, Dh,
             R, c2p, p2c, p);
    if (!selected(name)) return;
    int64_t nq = (int64_t)B * S * 3 * H * Dh, nc = (int64_t)B * S * H * Dh, np = (int64_t)R * 3 * H * Dh;
    int64_t npr = (int64_t)B * H * S * S;
    float *hq = hrand(nq, -2, 2), *hp = hrand(np, -1, 1), *hdc = hrand(nc, -1, 1);
    int32_t *hm = malloc(sizeof(int32_t) * (size_t)B * S), *hr = malloc(sizeof(int32_t) * (size_t)(2 * S - 1));
    for (int b = 0; b < B; b++)
        for (int s2 = 0; s2 < S; s2++) hm[b * S + s2] = s2 < S - b * (S / 3);
    for (int d = 0; d < 2 * S - 1; d++) {
        int v = d - (S - 1) + R / 2;
        hr[d] = v < 0 ? 0 : v > R - 1 ? R - 1 : v;
    }
    bt_rel_attn a = {B, S, H, Dh, R, c2p, p2c, 1.0f / sqrtf((float)Dh * (float)(1 + c2p + p2c)), p,
                     {778, 4, 1, 6, BT_SITE_ATTN_PROBS}};
    bt_tensor gq = gpu_from(hq, dt, SHAPE(B, S, 3, H, Dh)), gp = gpu_from(hp, dt, SHAPE(R, 3, H, Dh));
    bt_tensor gdc = gpu_from(hdc, dt, SHAPE(B, S, H, Dh)), gm = gpu_i32(hm, (int64_t)B * S), gr = gpu_i32(hr, 2 * S - 1);
    bt_tensor gc = MK(GPU, dt, B, S, H, Dh), gpr = MK(GPU, BT_F32, B, H, S, S), gdq = MK(GPU, dt, B, S, 3, H, Dh);
    bt_tensor gdp = MK(GPU, dt, R, 3, H, Dh);
    bt_tensor cq = cpu_from(hq, gq), cp = cpu_from(hp, gp), cdc = cpu_from(hdc, gdc);
    bt_tensor cm = cpu_i32(hm, (int64_t)B * S), cr = cpu_i32(hr, 2 * S - 1);
    bt_tensor cc = MK(CPU, BT_F32, B, S, H, Dh), cpr = MK(CPU, BT_F32, B, H, S, S), cdq = MK(CPU, BT_F32, B, S, 3, H, Dh);
    bt_tensor cdp = MK(CPU, BT_F32, R, 3, H, Dh);
    CPU->rel_attention_fwd(CPU, &cq, &cp, &cr, &cm, &a, &cc, &cpr);
    CPU->rel_attention_bwd(CPU, &cq, &cp, &cr, &cm, &a, &cpr, &cdc, &cdq, &cdp);
    void *d[4] = {0};
    float *oc = NULL, *opr = NULL, *odq = NULL, *odp = NULL;
    for (int rep = 0; rep < 2; rep++) {
        poison(&gc); poison(&gpr); poison(&gdq); poison(&gdp);
        GPU->rel_attention_fwd(GPU, &gq, &gp, &gr, &gm, &a, &gc, &gpr);
        GPU->rel_attention_bwd(GPU, &gq, &gp, &gr, &gm, &a, &gpr, &gdc, &gdq, &gdp);
        if (!rep) { oc = g2h(&gc); opr = g2h(&gpr); odq = g2h(&gdq); odp = g2h(&gdp); }
        check_det(name, &gc, &d[0]); check_det(name, &gpr, &d[1]); check_det(name, &gdq, &d[2]);
        check_det(name, &gdp, &d[3]);
    }
    char n2[192];
    double tol = dt == BT_F32 ? 1e-5 : 1e-2, tolg = dt == BT_F32 ? 1e-5 : 2e-2;
    snprintf(n2, sizeof n2, "%s ctx", name); check(n2, cc.data, oc, nc, tol);
    snprintf(n2, sizeof n2, "%s probs", name); check(n2, cpr.data, opr, npr, tol);
    snprintf(n2, sizeof n2, "%s dqkv", name); check(n2, cdq.data, odq, nq, tolg);
    snprintf(n2, sizeof n2, "%s dpos", name); check(n2, cdp.data, odp, np, tolg);
    free(oc); free(opr); free(odq); free(odp); free(hq); free(hp); free(hdc); free(hm); free(hr);
    bt_tensor *gt[] = {&gq, &gp, &gdc, &gm, &gr, &gc, &gpr, &gdq, &gdp};
    for (size_t i = 0; i < sizeof gt / sizeof *gt; i++) rel(GPU, gt[i]);
    bt_tensor *ct[] = {&cq, &cp, &cdc, &cm, &cr, &cc, &cpr, &cdq, &cdp};
    for (size_t i = 0; i < sizeof ct / sizeof *ct; i++) rel(CPU, ct[i]);
}

/* ------------------------------------------------------------------------ */
/* embeddings, gathers                                                       */

static void t_embed(bt_dtype dt, int N, int D, int V, int P)
{
    char name[96];
    snprintf(name, sizeof name, "embed %s N%d D%d V%d", dtname(dt), N, D, V);
    if (!selected(name)) return;
    int32_t *ids = malloc(sizeof(int32_t) * N), *pids = malloc(sizeof(int32_t) * N), *tids = malloc(sizeof(int32_t) * N);
    for (int i = 0; i < N; i++) {
        ids[i] = (int32_t)(frand(0, 1) * 40) % V; /* many repeats, includes pad id 0 */
        pids[i] = i % P;
        tids[i] = (i / 7) % 2;
    }
    float *hw = hrand((int64_t)V * D, -1, 1), *hp = hrand((int64_t)P * D, -1, 1), *ht = hrand(2 * (int64_t)D, -1, 1);
    float *hdo = hrand((int64_t)N * D, -1, 1);
    bt_tensor gi = gpu_i32(ids, N), gpi = gpu_i32(pids, N), gti = gpu_i32(tids, N);
    bt_tensor gw = gpu_from(hw, BT_F32, SHAPE(V, D)), gp = gpu_from(hp, BT_F32, SHAPE(P, D));
    bt_tensor gt = gpu_from(ht, BT_F32, SHAPE(2, D)), gdo = gpu_from(hdo, dt, SHAPE(N, D));
    bt_tensor go = MK(GPU, dt, N, D);
    bt_tensor ci = cpu_i32(ids, N), cpi = cpu_i32(pids, N), cti = cpu_i32(tids, N);
    bt_tensor cw = cpu_from(hw, gw), cp = cpu_from(hp, gp), ct = cpu_from(ht, gt), cdo = cpu_from(hdo, gdo);
    bt_tensor co = MK(CPU, BT_F32, N, D);
    CPU->embed_fwd(CPU, &ci, &cpi, &cti, &cw, &cp, &ct, &co);
    void *d = NULL;
    float *out = NULL;
    for (int rep = 0; rep < 2; rep++) {
        poison(&go);
        GPU->embed_fwd(GPU, &gi, &gpi, &gti, &gw, &gp, &gt, &go);
        if (!rep) out = g2h(&go);
        check_det(name, &go, &d);
    }
    char n2[128];
    snprintf(n2, sizeof n2, "%s fwd", name);
    check(n2, co.data, out, (int64_t)N * D, tol_of(dt));
    if (dt != BT_F32) { /* the same two adds, one rounding: bit-exact */
        bt_tensor o16 = MK(CPU, dt, N, D);
        CPU->embed_fwd(CPU, &ci, &cpi, &cti, &cw, &cp, &ct, &o16);
        check16(n2, &o16, out, 0);
        rel(CPU, &o16);
    }
    free(out);
    /* backward: accumulate into the tables' current values (as gradients) */
    bt_tensor gdw = MK(GPU, BT_F32, V, D), gdp = MK(GPU, BT_F32, P, D), gdt = MK(GPU, BT_F32, 2, D);
    CPU->embed_bwd(CPU, &ci, &cpi, &cti, &cdo, 0, &cw, &cp, &ct);
    void *dd[3] = {0};
    float *ow = NULL, *op = NULL, *ot = NULL;
    for (int rep = 0; rep < 2; rep++) {
        GPU->copy(GPU, gdw.data, gw.data, sizeof(float) * V * D);
        GPU->copy(GPU, gdp.data, gp.data, sizeof(float) * P * D);
        GPU->copy(GPU, gdt.data, gt.data, sizeof(float) * 2 * D);
        GPU->embed_bwd(GPU, &gi, &gpi, &gti, &gdo, 0, &gdw, &gdp, &gdt);
        if (!rep) { ow = g2h(&gdw); op = g2h(&gdp); ot = g2h(&gdt); }
        check_det(name, &gdw, &dd[0]); check_det(name, &gdp, &dd[1]); check_det(name, &gdt, &dd[2]);
    }
    /* The GPU sums a table row's tokens in one sequence, as the CPU, when
     * there are no more tokens than table rows (N <= rows: bit-exact), else
     * in row slices (kernels/cuda/cuda_ops.cu): the same up to rounding. */
    double tw = N <= V ? 0 : tol_of(BT_F32), tp = N <= P ? 0 : tol_of(BT_F32), tt = N <= 2 ? 0 : tol_of(BT_F32);
    snprintf(n2, sizeof n2, "%s bwd word", name); check(n2, cw.data, ow, (int64_t)V * D, dt == BT_F32 ? tw : 1e-2);
    if (dt != BT_F32 && N <= V) { /* a 16-bit dout into F32 tables: the same adds in the same order */
        float *h0 = g2h(&gw);
        bt_tensor w2 = cpu_from(h0, gw), do16 = cpu_as(&cdo, dt);
        CPU->embed_bwd(CPU, &ci, &cpi, &cti, &do16, 0, &w2, NULL, NULL);
        snprintf(n2, sizeof n2, "%s bwd word", name); check16(n2, &w2, ow, 0);
        free(h0);
        rel(CPU, &w2); rel(CPU, &do16);
    }
    snprintf(n2, sizeof n2, "%s bwd pos", name); check(n2, cp.data, op, (int64_t)P * D, dt == BT_F32 ? tp : 1e-2);
    snprintf(n2, sizeof n2, "%s bwd type", name); check(n2, ct.data, ot, 2 * (int64_t)D, dt == BT_F32 ? tt : 1e-2);
    free(ow); free(op); free(ot);
    /* gather_rows fwd/bwd (rows with repeats) */
    int32_t rows[37];
    for (int i = 0; i < 37; i++) rows[i] = (int32_t)(frand(0, 1) * 10) % N;
    bt_tensor gr = gpu_i32(rows, 37), cr = cpu_i32(rows, 37);
    bt_tensor gg = MK(GPU, dt, 37, D), cg = MK(CPU, BT_F32, 37, D);
    CPU->gather_rows(CPU, &cdo, &cr, &cg);
    poison(&gg);
    GPU->gather_rows(GPU, &gdo, &gr, &gg);
    out = g2h(&gg);
    snprintf(n2, sizeof n2, "gather_rows %s N%d D%d", dtname(dt), N, D);
    check(n2, cg.data, out, 37 * (int64_t)D, 0);
    free(out);
    bt_tensor gs = MK(GPU, BT_F32, N, D), cs = MK(CPU, BT_F32, N, D);
    memcpy(cs.data, hdo, sizeof(float) * N * D);
    GPU->upload(GPU, gs.data, hdo, sizeof(float) * N * D);
    CPU->gather_rows_bwd(CPU, &cg, &cr, &cs);
    GPU->gather_rows_bwd(GPU, &gg, &gr, &gs);
    out = g2h(&gs);
    snprintf(n2, sizeof n2, "gather_rows_bwd %s N%d D%d", dtname(dt), N, D);
    check(n2, cs.data, out, (int64_t)N * D, dt == BT_F32 ? 0 : 1e-2);
    free(out);
    free(ids); free(pids); free(tids); free(hw); free(hp); free(ht); free(hdo);
    bt_tensor *gts[] = {&gi, &gpi, &gti, &gw, &gp, &gt, &gdo, &go, &gdw, &gdp, &gdt, &gr, &gg, &gs};
    for (size_t i = 0; i < sizeof gts / sizeof *gts; i++) rel(GPU, gts[i]);
    bt_tensor *cts[] = {&ci, &cpi, &cti, &cw, &cp, &ct, &cdo, &co, &cr, &cg, &cs};
    for (size_t i = 0; i < sizeof cts / sizeof *cts; i++) rel(CPU, cts[i]);
}

/* ------------------------------------------------------------------------ */
/* losses                                                                    */

static void t_losses(bt_dtype dt, int N, int C)
{
    char name[96];
    float *hx = hrand((int64_t)N * C, -4, 4), *ht = hrand((int64_t)N * C, 0, 1);
    int32_t *lab = malloc(sizeof(int32_t) * N);
    for (int i = 0; i < N; i++) lab[i] = (i % 5 == 3) ? -100 : (int32_t)(frand(0, 1) * C) % C;
    bt_tensor gx = gpu_from(hx, dt, SHAPE(N, C)), gt = gpu_from(ht, BT_F32, SHAPE(N, C)), gl = gpu_i32(lab, N);
    bt_tensor gd = MK(GPU, dt, N, C), gloss = MK(GPU, BT_F32, 1);
    bt_tensor cx = cpu_from(hx, gx), ct = cpu_from(ht, gt), cl = cpu_i32(lab, N);
    bt_tensor cd = MK(CPU, BT_F32, N, C), closs = MK(CPU, BT_F32, 1);
    for (int which = 0; which < 3; which++) {
        const char *wn = which == 0 ? "softmax_xent" : which == 1 ? "bce_logits" : "mse";
        snprintf(name, sizeof name, "%s %s N%d C%d", wn, dtname(dt), N, C);
        if (!selected(name)) continue;
        float gs = 64.0f;
        if (which == 0) CPU->softmax_xent(CPU, &cx, &cl, gs, &closs, &cd);
        else if (which == 1) CPU->bce_logits(CPU, &cx, &ct, gs, &closs, &cd);
        else CPU->mse(CPU, &cx, &ct, gs, &closs, &cd);
        void *d[2] = {0};
        float *od = NULL, *ol = NULL;
        for (int rep = 0; rep < 2; rep++) {
            poison(&gd); poison(&gloss);
            if (which == 0) GPU->softmax_xent(GPU, &gx, &gl, gs, &gloss, &gd);
            else if (which == 1) GPU->bce_logits(GPU, &gx, &gt, gs, &gloss, &gd);
            else GPU->mse(GPU, &gx, &gt, gs, &gloss, &gd);
            if (!rep) { od = g2h(&gd); ol = g2h(&gloss); }
            check_det(name, &gd, &d[0]); check_det(name, &gloss, &d[1]);
        }
        char n2[128];
        snprintf(n2, sizeof n2, "%s loss", name); check(n2, closs.data, ol, 1, 1e-5);
        snprintf(n2, sizeof n2, "%s grad", name); check(n2, cd.data, od, (int64_t)N * C, tol_of(dt));
        if (dt != BT_F32) {
            bt_tensor x16 = cpu_as(&cx, dt), d16 = MK(CPU, dt, N, C);
            if (which == 0) CPU->softmax_xent(CPU, &x16, &cl, gs, &closs, &d16);
            else if (which == 1) CPU->bce_logits(CPU, &x16, &ct, gs, &closs, &d16);
            else CPU->mse(CPU, &x16, &ct, gs, &closs, &d16);
            snprintf(n2, sizeof n2, "%s loss", name); check16(n2, &closs, ol, 1e-5);
            snprintf(n2, sizeof n2, "%s grad", name); check16(n2, &d16, od, tol16(dt));
            rel(CPU, &x16); rel(CPU, &d16);
        }
        free(od); free(ol);
    }
    free(hx); free(ht); free(lab);
    rel(GPU, &gx); rel(GPU, &gt); rel(GPU, &gl); rel(GPU, &gd); rel(GPU, &gloss);
    rel(CPU, &cx); rel(CPU, &ct); rel(CPU, &cl); rel(CPU, &cd); rel(CPU, &closs);
}

/* ------------------------------------------------------------------------ */
/* optimizer and global checks                                               */

static void t_adamw(int64_t n)
{
    const char *name = "adamw (bit-exact with the CPU)";
    if (!selected(name)) return;
    float *hp = hrand(n, -1, 1), *hg = hrand(n, -0.1f, 0.1f), *hm = hrand(n, -0.01f, 0.01f), *hv = hrand(n, 0, 1e-3f);
    bt_tensor gp = gpu_from(hp, BT_F32, SHAPE(n)), gg = gpu_from(hg, BT_F32, SHAPE(n));
    bt_tensor gm = gpu_from(hm, BT_F32, SHAPE(n)), gv = gpu_from(hv, BT_F32, SHAPE(n));
    bt_tensor cp = cpu_from(hp, gp), cg = cpu_from(hg, gg), cm = cpu_from(hm, gm), cv = cpu_from(hv, gv);
    for (int step = 1; step <= 3; step++) {
        bt_adamw_args a = {2e-5f, 0.9f, 0.999f, 1e-8f, 0.01f, step == 2 ? 0.5f : 1.0f, step};
        CPU->adamw(CPU, &cp, &cg, &cm, &cv, &a);
        GPU->adamw(GPU, &gp, &gg, &gm, &gv, &a);
    }
    float *op = g2h(&gp), *om = g2h(&gm), *ov = g2h(&gv);
    check_bytes("adamw p (bit-exact)", cp.data, op, sizeof(float) * n);
    check_bytes("adamw m (bit-exact)", cm.data, om, sizeof(float) * n);
    check_bytes("adamw v (bit-exact)", cv.data, ov, sizeof(float) * n);
    free(op); free(om); free(ov); free(hp); free(hg); free(hm); free(hv);
    rel(GPU, &gp); rel(GPU, &gg); rel(GPU, &gm); rel(GPU, &gv);
    rel(CPU, &cp); rel(CPU, &cg); rel(CPU, &cm); rel(CPU, &cv);
}

static void t_global(void)
{
    if (!selected("sum_squares") && !selected("all_finite")) return;
    int64_t sizes[5] = {1, 1000, 16384, 16385, 300001};
    bt_tensor gts[5], cts[5];
    float *hs[5];
    for (int i = 0; i < 5; i++) {
        hs[i] = hrand(sizes[i], -2, 2);
        gts[i] = gpu_from(hs[i], BT_F32, SHAPE(sizes[i]));
        cts[i] = cpu_from(hs[i], gts[i]);
    }
    double c = CPU->sum_squares(CPU, cts, 5), g1 = GPU->sum_squares(GPU, gts, 5), g2 = GPU->sum_squares(GPU, gts, 5);
    n_checks += 2;
    if (!(fabs(c - g1) <= 1e-10 * fabs(c))) {
        n_fail++;
        printf("FAIL sum_squares: cpu %.17g gpu %.17g\n", c, g1);
    } else if (verbose) printf("ok   sum_squares: cpu %.17g gpu %.17g\n", c, g1);
    if (memcmp(&g1, &g2, sizeof g1) != 0) {
        n_fail++;
        printf("FAIL sum_squares [determinism]\n");
    }
    int f1 = GPU->all_finite(GPU, gts, 5);
    float bad[2] = {INFINITY, NAN};
    int ok = f1 == 1;
    for (int k = 0; k < 2; k++) {
        GPU->upload(GPU, (float *)gts[4].data + 299999, &bad[k], sizeof(float));
        ok &= GPU->all_finite(GPU, gts, 5) == 0;
        GPU->upload(GPU, (float *)gts[4].data + 299999, &hs[4][299999], sizeof(float));
    }
    /* a half tensor with an overflow */
    float big[4] = {1, 2, 70000, 3};
    bt_tensor gh = gpu_from(big, BT_F16, SHAPE(4));
    ok &= GPU->all_finite(GPU, &gh, 1) == 0;
    rel(GPU, &gh);
    /* 16-bit gradients' sum of squares on both backends */
    for (int k = 0; k < 2; k++) {
        bt_dtype dt = k ? BT_BF16 : BT_F16;
        float *h = hrand(50001, -3, 3);
        bt_tensor g16 = gpu_from(h, dt, SHAPE(50001)), cf = cpu_from(h, g16), c16 = cpu_as(&cf, dt);
        double sc = CPU->sum_squares(CPU, &c16, 1), sg = GPU->sum_squares(GPU, &g16, 1);
        n_checks++;
        if (!(fabs(sc - sg) <= 1e-10 * fabs(sc))) {
            n_fail++;
            printf("FAIL sum_squares %s: cpu %.17g gpu %.17g\n", dtname(dt), sc, sg);
        } else if (verbose) printf("ok   sum_squares %s: cpu %.17g gpu %.17g\n", dtname(dt), sc, sg);
        ok &= CPU->all_finite(CPU, &c16, 1) == 1 && GPU->all_finite(GPU, &g16, 1) == 1;
        free(h);
        rel(GPU, &g16); rel(CPU, &cf); rel(CPU, &c16);
    }
    n_checks++;
    if (!ok) {
        n_fail++;
        printf("FAIL all_finite\n");
    } else if (verbose) printf("ok   all_finite\n");
    for (int i = 0; i < 5; i++) {
        free(hs[i]);
        rel(GPU, &gts[i]);
        rel(CPU, &cts[i]);
    }
}

/* ------------------------------------------------------------------------ */
/* the runtime overhead `baton plan` assumes (runner/plan.c)                 */

/* What creating the backend took from the GPU (context, cuBLASLt, its
 * workspace) against the profile of this architecture's plan device. */
static void plan_overhead_check(bt_backend *be, int sm)
{
    size_t fr = 0, tot = 0;
    if (be->mem_info(be, &fr, &tot)) {
        printf("FAIL plan runtime overhead: mem_info: %s\n", bt_errmsg());
        n_checks++;
        n_fail++;
        return;
    }
    const char *prof = sm == 60 ? "p100" : sm == 75 ? "t4" : sm == 80 ? "a100-40" : sm == 90 ? "h100" : NULL;
    double used = (double)(tot - fr) / 1048576.0;
    printf("runtime: %.0f MiB of %.0f MiB in use after creating the backend (context, cuBLASLt, its %zu MiB "
           "workspace)\n", used, tot / 1048576.0, (size_t)BT_CUDA_LT_WORKSPACE >> 20);
    bt_plan_device d;
    if (!prof || bt_plan_device_get(prof, 0, &d)) return;
    double assumed = (double)(d.overhead + d.fixed) / 1048576.0;
    n_checks++;
    int ok = used <= assumed;
    if (!ok) n_fail++;
    if (!ok || verbose)
        printf("%s plan runtime overhead: measured %.0f MiB, profile %s assumes %.0f MiB (runner/plan.c: raise it)\n",
               ok ? "ok  " : "FAIL", used, prof, assumed);
}

typedef struct { bt_backend **bes; float **bufs; size_t n; int rc; } async_args;

static void *async_main(void *arg)
{
    async_args *a = arg;
    size_t half = a->n / 2;
    float *hi[2] = {a->bufs[0] + half, a->bufs[1] + half};
    bt_backend *be = a->bes[0];
    a->rc = be->collective(be, a->bes, 2, hi, a->n - half, BT_COLL_SUM | BT_COLL_ASYNC);
    if (!a->rc) a->rc = be->collective(be, a->bes, 2, a->bufs, half, BT_COLL_SUM | BT_COLL_ASYNC);
    return NULL;
}

/* One check of t_collective: rc 0 and buf (on be) holding want's bytes. */
static void coll_check(bt_backend *be, const float *buf, float *got, const float *want, int64_t n, int rc,
                       const char *what)
{
    be->download(be, got, buf, (size_t)n * sizeof(float));
    n_checks++;
    if (rc || memcmp(got, want, (size_t)n * sizeof(float))) {
        n_fail++;
        printf("FAIL %s: rc %d, other bytes\n", what, rc);
    } else if (verbose) printf("ok   %s, n=%lld\n", what, (long long)n);
}

/* Two ASYNC sums issued from a thread of their own (as a replica's thread
 * issues a bucket), the join from this one. */
static int async_sum_on_thread(bt_backend **bes, float **bufs, size_t n)
{
    async_args a = {bes, bufs, n, -1};
    pthread_t th;
    if (pthread_create(&th, NULL, async_main, &a)) return -1;
    pthread_join(th, NULL);
    if (a.rc) return a.rc;
    return bes[0]->collective(bes[0], bes, 2, bufs, 0, BT_COLL_JOIN);
}

/* The collective between GPU 0 and GPU 1 (runtime.devices = 2): the sum
 * lands on GPU 0 with the CPU collective's bits (one rounding of a + b), the
 * broadcast copies GPU 0's buffer to GPU 1, and the sum in two ASYNC buckets
 * issued from another thread, then joined, lands the same. Skipped with one
 * GPU or without NCCL (said). */
static void t_collective(int ndev, int64_t n)
{
    if (!selected("collective")) return;
    if (ndev < 2) {
        printf("note: collective skipped: one GPU\n");
        return;
    }
    bt_backend *g1 = bt_cuda_impl_create(1);
    if (!g1) {
        printf("FAIL collective: no backend on GPU 1: %s\n", bt_errmsg());
        n_fail++;
        return;
    }
    bt_backend *bes[2] = {GPU, g1};
    if (GPU->collective(GPU, bes, 2, NULL, 0, BT_COLL_SUM)) {
        printf("note: collective skipped: %s\n", bt_errmsg());
        g1->destroy(g1);
        return;
    }
    float *ha = hrand(n, -3.0f, 3.0f), *hb = hrand(n, -1e-3f, 1e-3f), *want = malloc(n * sizeof *want);
    float *got = malloc(n * sizeof *got);
    for (int64_t i = 0; i < n; i++) want[i] = ha[i] + hb[i];
    float *bufs[2] = {GPU->alloc(GPU, n * sizeof(float)), g1->alloc(g1, n * sizeof(float))};
    GPU->upload(GPU, bufs[0], ha, n * sizeof(float));
    g1->upload(g1, bufs[1], hb, n * sizeof(float));
    int rc = GPU->collective(GPU, bes, 2, bufs, (size_t)n, BT_COLL_SUM);
    coll_check(GPU, bufs[0], got, want, n, rc, "collective sum of 2 GPUs (a + b bit for bit)");
    rc = GPU->collective(GPU, bes, 2, bufs, (size_t)n, BT_COLL_BCAST);
    coll_check(g1, bufs[1], got, want, n, rc, "collective broadcast to GPU 1 (GPU 0's bytes)");
    /* the bucketed sum's way (engine/bucket_sum.h): two ASYNC sums on the NCCL streams, from
     * another thread than the one that gave the GPUs their work, then the join; the same bits */
    GPU->upload(GPU, bufs[0], ha, n * sizeof(float));
    g1->upload(g1, bufs[1], hb, n * sizeof(float));
    rc = async_sum_on_thread(bes, bufs, (size_t)n);
    coll_check(GPU, bufs[0], got, want, n, rc, "collective sum in two ASYNC buckets + join (a + b bit for bit)");
    GPU->free(GPU, bufs[0]);
    g1->free(g1, bufs[1]);
    g1->destroy(g1);
    free(ha); free(hb); free(want); free(got);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-v")) verbose = 1;
        else if (!strcmp(argv[i], "-k") && i + 1 < argc) only = argv[++i];
    }
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("skip: no CUDA device\n");
        return 77;
    }
    struct cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    smem_optin = prop.sharedMemPerBlockOptin;
    printf("device: %s (sm_%d%d, %d SMs)\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount);
    CPU = bt_backend_cpu_create(0);
    GPU = bt_cuda_impl_create(0);
    if (!CPU || !GPU) {
        fprintf(stderr, "backend creation failed: %s\n", bt_errmsg());
        return 1;
    }
    plan_overhead_check(GPU, prop.major * 10 + prop.minor);
    setenv("BATON_CUDA_ATT_SMALL_TILES", "1", 1);
    GPU_SMALL = bt_cuda_impl_create(0);
    unsetenv("BATON_CUDA_ATT_SMALL_TILES");
    if (!GPU_SMALL) printf("note: no second backend for the 16-row tiles (%s)\n", bt_errmsg());
    int bf16_ok = prop.major >= 8;
    bt_dtype dts[3] = {BT_F32, BT_F16, BT_BF16};
    for (int k = 0; k < 3; k++) {
        bt_dtype dt = dts[k];
        if (dt == BT_BF16 && !bf16_ok) continue;
        /* GEMM: every transpose, bias/epilogue combination on odd sizes, then a BERT-sized one */
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                t_matmul(dt, dt, 0, 37, 29, 50, ta, tb, 0, BT_EPI_NONE, 1.0f, 0.0f);
        for (int epi = 0; epi <= 2; epi++) {
            t_matmul(dt, dt, 0, 64, 96, 48, 0, 1, 1, epi, 1.0f, 0.0f);
            t_matmul(dt, dt, 0, 33, 40, 24, 0, 1, 0, epi, 0.5f, 0.0f);
        }
        t_matmul(dt, dt, 0, 40, 72, 56, 0, 1, 1, BT_EPI_NONE, 1.0f, 1.0f);   /* accumulate into C */
        t_matmul(dt, dt, 0, 256, 768, 384, 0, 1, 1, BT_EPI_GELU_ERF, 1.0f, 0.0f);
        if (dt != BT_F32) t_matmul(dt, BT_F32, 0, 96, 200, 64, 1, 0, 0, BT_EPI_NONE, 1.0f, 1.0f); /* dW into F32 */
        t_bias_grad(dt, 1000, 77, 0);
        t_bias_grad(dt, 300, 64, 1);
        t_elementwise(dt, 100003);
        t_layernorm(dt, 133, 768, 1);
        t_layernorm(dt, 50, 100, 0);
        if (dt != BT_F32) t_layernorm_mixed(dt, 133, 384);
        for (int p = 0; p < 2; p++) {
            float pd = p ? 0.1f : 0.0f;
            t_attention(dt, 2, 77, 3, 64, pd, -1);
            t_attention(dt, 3, 130, 2, 32, pd, 2);
            t_attention(dt, 1, 200, 2, 40, pd, -1);
            t_attention(dt, 2, 64, 2, 128, pd, -1);
            t_attention(dt, 1, 600, 2, 64, pd, -1); /* past the CPU's stored-probability length */
        }
        if (GPU_SMALL) { /* the P100 layout (16-row query tiles) on this GPU */
            bt_backend *keep = GPU;
            GPU = GPU_SMALL;
            att_tag = " tile16";
            for (int p = 0; p < 2; p++) {
                t_attention(dt, 2, 77, 3, 64, p ? 0.1f : 0.0f, -1);
                t_attention(dt, 3, 130, 2, 32, p ? 0.1f : 0.0f, 2);
                t_attention(dt, 1, 300, 2, 64, p ? 0.1f : 0.0f, -1);
            }
            att_tag = "";
            GPU = keep;
        }
        t_embed(dt, 300, 96, 1000, 128);
        t_relattn(dt, 2, 37, 3, 16, 16, 1, 1, 0.0f); /* R < 2S - 1: clamped rows */
        t_relattn(dt, 3, 20, 2, 24, 64, 1, 0, 0.1f);
        t_relattn(dt, 1, 130, 2, 64, 512, 0, 1, 0.0f);
        t_embed(dt, 5000, 200, 50, 64); /* long runs (32 row slices), 7 column tiles, the last partial */
        t_losses(dt, 61, 7);
        t_losses(dt, 9, 3000);
    }
    if (prop.major >= 8) {
        t_matmul(BT_F32, BT_F32, 1, 64, 96, 48, 0, 1, 1, BT_EPI_NONE, 1.0f, 0.0f);
        t_matmul(BT_F32, BT_F32, 1, 256, 768, 384, 1, 0, 0, BT_EPI_NONE, 1.0f, 1.0f);
    }
    t_adamw(100003);
    t_global();
    t_collective(ndev, 1000003);
    GPU->sync(GPU);
    int st = bt_cuda_status(GPU);
    if (st) {
        printf("FAIL cuda backend status %d: %s\n", st, bt_errmsg());
        n_fail++;
    }
    printf("%s: %d checks, %d failed; peak GPU memory %.1f MiB\n", n_fail ? "FAIL" : "PASS", n_checks, n_fail,
           GPU->peak_bytes(GPU) / 1048576.0);
    if (GPU_SMALL) GPU_SMALL->destroy(GPU_SMALL);
    GPU->destroy(GPU);
    CPU->destroy(CPU);
    return n_fail ? 1 : 0;
}
