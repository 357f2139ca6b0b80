/* tests/unit/ops_ref.h — shared by the tests/unit/test_ops_*.c executables.
 *
 * Owns: naive double-precision reference implementations of the ops of
 * kernels/backend.h (written from the formulas, never from the backend's
 * code), a deterministic test RNG, tensor-view shorthands, central-difference
 * gradients of the references, and comparison helpers that say where the
 * worst element is when they fail.
 * Must not: call any backend internals; tests go through the bt_backend vtable.
 * Everything is static (each test_*.c is its own executable).
 */
#ifndef BATON_TESTS_OPS_REF_H
#define BATON_TESTS_OPS_REF_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "kernels/backend.h"
#include "kernels/philox.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UNUSED __attribute__((unused))

/* ---- deterministic test data (splitmix64) ---- */
static uint64_t ref_rng_state = 0x9E3779B97F4A7C15ull;
static UNUSED void ref_seed(uint64_t s) { ref_rng_state = s * 0x9E3779B97F4A7C15ull + 1; }
static UNUSED uint64_t ref_next(void)
{
    uint64_t z = (ref_rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static UNUSED double ref_u01(void) { return (double)(ref_next() >> 11) * (1.0 / 9007199254740992.0); }
static UNUSED float *ref_rand(int64_t n, float lo, float hi)
{
    float *x = calloc((size_t)(n ? n : 1), sizeof(float));
    for (int64_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * ref_u01());
    return x;
}
static UNUSED float *ref_zeros(int64_t n) { return calloc((size_t)(n ? n : 1), sizeof(float)); }
static UNUSED float *ref_copy(const float *x, int64_t n)
{
    float *y = ref_zeros(n);
    memcpy(y, x, sizeof(float) * (size_t)n);
    return y;
}
static UNUSED double *ref_dbl(const float *x, int64_t n)
{
    double *y = calloc((size_t)(n ? n : 1), sizeof(double));
    for (int64_t i = 0; i < n; i++) y[i] = x[i];
    return y;
}

/* ---- tensor views (host memory is device memory on the CPU backend) ---- */
static UNUSED bt_tensor tv1(void *p, int64_t n) { return bt_view1(p, BT_F32, BT_DEV_CPU, n); }
static UNUSED bt_tensor tv2(void *p, int64_t r, int64_t c) { return bt_view2(p, BT_F32, BT_DEV_CPU, r, c); }
static UNUSED bt_tensor tvi(int32_t *p, int64_t n) { return bt_view1(p, BT_I32, BT_DEV_CPU, n); }
static UNUSED bt_tensor tvn(void *p, bt_dtype dt, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
    int64_t s[4] = {d0, d1, d2, d3};
    return bt_view(p, dt, BT_DEV_CPU, ndim, s);
}

/* ---- comparisons ---- */
/* max |got - want| relative to max(|want|_inf, floor); fails with the worst index. */
static UNUSED void ref_check_close_(const float *got, const double *want, int64_t n, double tol, double floor,
                                    const char *what, const char *file, int line)
{
    double scale = floor, worst = 0.0;
    int64_t wi = -1;
    for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        if (!(e <= worst)) { worst = e; wi = i; } /* also catches NaN */
    }
    if (!(worst <= tol * scale)) {
        fprintf(stderr, "%s:%d: %s: worst element %lld: got %.9g want %.9g (|err| %.3g > tol %.3g x scale %.3g)\n",
                file, line, what, (long long)wi, wi >= 0 ? got[wi] : 0.0, wi >= 0 ? want[wi] : 0.0, worst, tol,
                scale);
        fail();
    }
}
#define check_close(got, want, n, tol, what) ref_check_close_(got, want, n, tol, 1e-6, what, __FILE__, __LINE__)

static UNUSED void ref_check_close_f_(const float *got, const float *want, int64_t n, double tol,
                                      const char *what, const char *file, int line)
{
    double *w = ref_dbl(want, n);
    ref_check_close_(got, w, n, tol, 1e-6, what, file, line);
    free(w);
}
#define check_close_f(got, want, n, tol, what) ref_check_close_f_(got, want, n, tol, what, __FILE__, __LINE__)

#define check_bits(a, b, n, what)                                                                \
    do {                                                                                         \
        if (memcmp((a), (b), sizeof(float) * (size_t)(n)) != 0) {                                \
            fprintf(stderr, "%s:%d: %s: results differ bitwise between identical runs\n",       \
                    __FILE__, __LINE__, what);                                                   \
            fail();                                                                              \
        }                                                                                        \
    } while (0)

/* ---- central differences of a scalar function of a double vector ---- */
typedef double (*ref_scalar_fn)(void *ctx, const double *x);
static UNUSED void ref_fd_grad(ref_scalar_fn f, void *ctx, double *x, int64_t n, double h, double *grad)
{
    for (int64_t i = 0; i < n; i++) {
        double x0 = x[i];
        x[i] = x0 + h;
        double fp = f(ctx, x);
        x[i] = x0 - h;
        double fm = f(ctx, x);
        x[i] = x0;
        grad[i] = (fp - fm) / (2.0 * h);
    }
}

/* ---- references ---- */
/* 0.5 x (1 + erf(x/sqrt2)) and 0.5 x (1 + tanh(u)), in forms that stay
 * accurate in the negative tail (1 + erf(z) = erfc(-z), 1 + tanh u = 2/(1+e^-2u)). */
static UNUSED double ref_gelu_erf(double x) { return 0.5 * x * erfc(-x / sqrt(2.0)); }
static UNUSED double ref_gelu_tanh(double x)
{
    double u = sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x);
    return x / (1.0 + exp(-2.0 * u));
}
static UNUSED double ref_act(int act, double x)
{
    switch (act) {
    case BT_ACT_GELU_ERF: return ref_gelu_erf(x);
    case BT_ACT_GELU_TANH: return ref_gelu_tanh(x);
    case BT_ACT_RELU: return x > 0 ? x : 0;
    default: return tanh(x);
    }
}

/* C[M,N] = alpha op(A) op(B) + beta C0 + bias, then epilogue; pre gets the value before it. */
static UNUSED void ref_matmul(const double *A, int tA, const double *B, int tB, int M, int N, int K,
                              double alpha, double beta, const double *C0, const double *bias, int epi,
                              double *C, double *pre)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                double a = tA ? A[(int64_t)k * M + i] : A[(int64_t)i * K + k];
                double b = tB ? B[(int64_t)j * K + k] : B[(int64_t)k * N + j];
                s += a * b;
            }
            double v = alpha * s + (beta != 0.0 ? beta * C0[(int64_t)i * N + j] : 0.0) + (bias ? bias[j] : 0.0);
            if (pre) pre[(int64_t)i * N + j] = v;
            C[(int64_t)i * N + j] = epi == BT_EPI_GELU_ERF ? ref_gelu_erf(v) : epi == BT_EPI_GELU_TANH ? ref_gelu_tanh(v) : v;
        }
}

/* y = LN(x + res) over rows of D; mean/rstd optional outputs. */
static UNUSED void ref_layernorm(const double *x, const double *res, const double *g, const double *b, double eps,
                                 int R, int D, double *y, double *mean, double *rstd)
{
    for (int r = 0; r < R; r++) {
        double m = 0, v = 0;
        for (int j = 0; j < D; j++) m += x[r * D + j] + (res ? res[r * D + j] : 0);
        m /= D;
        for (int j = 0; j < D; j++) {
            double d = x[r * D + j] + (res ? res[r * D + j] : 0) - m;
            v += d * d;
        }
        v /= D;
        double s = 1.0 / sqrt(v + eps);
        if (mean) mean[r] = m;
        if (rstd) rstd[r] = s;
        for (int j = 0; j < D; j++) y[r * D + j] = (x[r * D + j] + (res ? res[r * D + j] : 0) - m) * s * g[j] + b[j];
    }
}

/* Attention reference. qkv [B,S,3,H,Dh]; mask [B,S] or NULL; keep: per element of
 * [B,H,S,S] a multiplier (NULL = no dropout). ctx [B,S,H,Dh]; probs [B,H,S,S] optional. */
static UNUSED void ref_attention(const double *qkv, const int32_t *mask, int B, int S, int H, int Dh, double scale,
                                 const double *keep, double *ctx, double *probs)
{
    double *s = calloc((size_t)S, sizeof(double));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < S; i++) {
                const double *q = qkv + (((int64_t)b * S + i) * 3 + 0) * H * Dh + h * Dh;
                double mx = -INFINITY;
                for (int j = 0; j < S; j++) {
                    const double *k = qkv + (((int64_t)b * S + j) * 3 + 1) * H * Dh + h * Dh;
                    double d = 0;
                    for (int e = 0; e < Dh; e++) d += q[e] * k[e];
                    s[j] = d * scale + ((mask && mask[b * S + j] == 0) ? -3.4028234663852886e38 : 0.0);
                    mx = fmax(mx, s[j]);
                }
                double sum = 0;
                for (int j = 0; j < S; j++) sum += (s[j] = exp(s[j] - mx));
                int64_t row = (((int64_t)b * H + h) * S + i) * S;
                double *c = ctx + ((int64_t)b * S + i) * H * Dh + h * Dh;
                for (int e = 0; e < Dh; e++) c[e] = 0;
                for (int j = 0; j < S; j++) {
                    double p = s[j] / sum;
                    if (probs) probs[row + j] = p;
                    double pd = keep ? p * keep[row + j] : p;
                    const double *v = qkv + (((int64_t)b * S + j) * 3 + 2) * H * Dh + h * Dh;
                    for (int e = 0; e < Dh; e++) c[e] += pd * v[e];
                }
            }
    free(s);
}

/* Dropout multipliers straight from the documented per-element rule. */
static UNUSED double *ref_dropout_mult(bt_dropout_key k, int64_t n, float p)
{
    double *m = calloc((size_t)(n ? n : 1), sizeof(double));
    double sc = 1.0f / (1.0f - p);
    for (int64_t i = 0; i < n; i++)
        m[i] = bt_dropout_keep_raw(k.seed, k.step, k.micro, k.layer, k.site, (uint64_t)i, p) ? sc : 0.0;
    return m;
}

static UNUSED bt_backend *ref_backend(int threads)
{
    bt_backend *be = bt_backend_cpu_create(threads);
    if (!be) {
        fprintf(stderr, "bt_backend_cpu_create(%d) failed\n", threads);
        exit(1);
    }
    return be;
}

#endif
