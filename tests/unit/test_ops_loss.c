/* tests/unit/test_ops_loss.c — CPU backend: losses (softmax cross-entropy with
 * ignore_index, BCE with logits, MSE), AdamW, sum_squares and all_finite;
 * against double references, finite differences, torch's own bits (AdamW) and
 * bit-identical reruns. */
#include "ops_ref.h"

static bt_backend *be;

static int setup(void **state) { (void)state; be = ref_backend(2); return 0; }
static int teardown(void **state) { (void)state; be->destroy(be); return 0; }

/* ---- losses: references ---- */
enum { L_XENT, L_BCE, L_MSE };
struct loss_ctx { int kind, N, C; const int32_t *labels; const double *t; };
static double loss_ref(void *c_, const double *x)
{
    struct loss_ctx *c = c_;
    double L = 0;
    int cnt = 0;
    for (int i = 0; i < c->N; i++) {
        if (c->kind == L_XENT) {
            if (c->labels[i] == -100) continue;
            double mx = -INFINITY, s = 0;
            for (int j = 0; j < c->C; j++) mx = fmax(mx, x[i * c->C + j]);
            for (int j = 0; j < c->C; j++) s += exp(x[i * c->C + j] - mx);
            L += mx + log(s) - x[i * c->C + c->labels[i]];
            cnt++;
        } else {
            for (int j = 0; j < c->C; j++) {
                double v = x[i * c->C + j], t = c->t[i * c->C + j];
                if (c->kind == L_BCE) L += -(t * (-log1p(exp(-v))) + (1 - t) * (-v - log1p(exp(-v))));
                else L += (v - t) * (v - t);
                cnt++;
            }
        }
    }
    return cnt ? L / cnt : 0.0;
}

static void run_loss(int kind, int N, int C, float *x, int32_t *labels, float *t, float gs, float *loss, float *dx)
{
    bt_tensor tx = tv2(x, N, C), tl = tvi(labels, N), tt = tv2(t, N, C), tloss = tv1(loss, 1), tdx = tv2(dx, N, C);
    if (kind == L_XENT) be->softmax_xent(be, &tx, &tl, gs, &tloss, &tdx);
    else if (kind == L_BCE) be->bce_logits(be, &tx, &tt, gs, &tloss, &tdx);
    else be->mse(be, &tx, &tt, gs, &tloss, &tdx);
}

static void test_losses_fd(void **state)
{
    (void)state;
    ref_seed(31);
    enum { N = 7, C = 5 };
    int32_t labels[N] = {0, 4, -100, 2, 2, -100, 1};
    const char *names[] = {"softmax_xent", "bce_logits", "mse"};
    for (int kind = L_XENT; kind <= L_MSE; kind++) {
        float *x = ref_rand(N * C, -3, 3), *t = ref_rand(N * C, 0, 1), *dx = ref_rand(N * C, 9, 9), loss = -1;
        if (kind == L_BCE) for (int i = 0; i < N * C; i += 3) t[i] = (float)(i & 1); /* hard and soft targets */
        float gs = 2.5f;
        run_loss(kind, N, C, x, labels, t, gs, &loss, dx);
        double *xd = ref_dbl(x, N * C), *td = ref_dbl(t, N * C), *g = calloc(N * C, sizeof(double));
        struct loss_ctx c = {kind, N, C, labels, td};
        double want = loss_ref(&c, xd);
        if (fabs(loss - want) > 1e-6 * fmax(1.0, fabs(want))) {
            fprintf(stderr, "%s: loss %.9g, want %.9g\n", names[kind], loss, want);
            fail();
        }
        ref_fd_grad(loss_ref, &c, xd, N * C, 1e-6, g);
        for (int i = 0; i < N * C; i++) g[i] *= gs;
        char what[64];
        snprintf(what, sizeof what, "%s dlogits (x grad_scale) vs finite differences", names[kind]);
        check_close(dx, g, N * C, 1e-5, what);
        if (kind == L_XENT) /* ignored rows: exactly zero gradient */
            for (int j = 0; j < C; j++) assert_true(dx[2 * C + j] == 0.0f && dx[5 * C + j] == 0.0f);
        free(x); free(t); free(dx); free(xd); free(td); free(g);
    }
}

static void test_losses_edge_cases(void **state)
{
    (void)state;
    enum { N = 2, C = 3 };
    float x[N * C] = {1e4f, -1e4f, 0.0f, -100.0f, 100.0f, 50.0f}, t[N * C] = {1, 0, 1, 0, 1, 0}, dx[N * C], loss;
    int32_t labels[N] = {1, 0};
    /* huge logits: finite loss and gradients */
    run_loss(L_XENT, N, C, x, labels, t, 1.0f, &loss, dx);
    assert_true(isfinite(loss) && fabs(loss - (2e4 + 200) / 2) < 1.0);
    for (int i = 0; i < N * C; i++) assert_true(isfinite(dx[i]));
    run_loss(L_BCE, N, C, x, labels, t, 1.0f, &loss, dx);
    assert_true(isfinite(loss) && fabs(loss - (0.6931472 + 50.0) / 6) < 1e-5);
    for (int i = 0; i < N * C; i++) assert_true(isfinite(dx[i]));
    /* every label ignored: loss 0, gradient 0 */
    int32_t none[N] = {-100, -100};
    run_loss(L_XENT, N, C, x, none, t, 1.0f, &loss, dx);
    assert_true(loss == 0.0f);
    for (int i = 0; i < N * C; i++) assert_true(dx[i] == 0.0f);
}

/* ---- AdamW ---- */
static void adamw_ref(double *p, const double *g, double *m, double *v, int n, double lr, double b1, double b2,
                      double eps, double wd, double gs, int step)
{
    for (int i = 0; i < n; i++) {
        double gi = g[i] * gs;
        p[i] *= 1 - lr * wd;
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        p[i] -= lr / (1 - pow(b1, step)) * m[i] / (sqrt(v[i]) / sqrt(1 - pow(b2, step)) + eps);
    }
}

static void test_adamw_vs_double(void **state)
{
    (void)state;
    ref_seed(32);
    int n = 50000; /* above the parallel threshold */
    float *p = ref_rand(n, -1, 1), *m = ref_zeros(n), *v = ref_zeros(n);
    double *pd = ref_dbl(p, n), *md = calloc(n, sizeof(double)), *vd = calloc(n, sizeof(double));
    double *p0 = ref_dbl(p, n), *delta = calloc(n, sizeof(double));
    for (int step = 1; step <= 6; step++) {
        float *g = ref_rand(n, -1, 1);
        for (int i = 0; i < n; i += 7) g[i] *= 1e-6f; /* eps-dominated elements */
        double *gd = ref_dbl(g, n);
        bt_adamw_args a = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f,
                           .grad_scale = 0.5f, .step = step};
        bt_tensor tp = tv1(p, n), tg = tv1(g, n), tm = tv1(m, n), tv = tv1(v, n);
        be->adamw(be, &tp, &tg, &tm, &tv, &a);
        adamw_ref(pd, gd, md, vd, n, 1e-3, 0.9, 0.999, 1e-8, 0.01, 0.5, step);
        free(g); free(gd);
    }
    check_close(m, md, n, 1e-6, "adamw m");
    check_close(v, vd, n, 1e-6, "adamw v");
    /* the parameter moved by ~6 lr: compare the movement */
    float *moved = ref_zeros(n);
    for (int i = 0; i < n; i++) { moved[i] = (float)((double)p[i] - p0[i]); delta[i] = pd[i] - p0[i]; }
    check_close(moved, delta, n, 1e-3, "adamw parameter update");
    free(p); free(m); free(v); free(pd); free(md); free(vd); free(p0); free(delta); free(moved);
}

/* Bits produced by torch 1.13.1 (CPU, AVX2) for torch.optim.AdamW(lr=1e-3,
 * betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01), three steps on these
 * inputs. The backend mirrors torch's float op order (including its fused
 * multiply-adds), so it reproduces them exactly. */
static void test_adamw_matches_torch_bits(void **state)
{
    (void)state;
    float p[8] = {0.5f, -0.25f, 1e-3f, -2.0f, 0.0f, 3.0f, -1e-4f, 0.125f}, m[8] = {0}, v[8] = {0};
    float g[3][8] = {{0.1f, -0.2f, 1e-6f, 3.0f, -0.5f, 0.0f, 1e-3f, -7.0f},
                     {0.05f, 0.3f, -1e-5f, 2.5f, 0.25f, 1e-8f, -2e-3f, 6.0f},
                     {-0.4f, 0.1f, 2e-6f, -1.0f, 0.0f, -1e-7f, 5e-4f, -3.0f}};
    const uint32_t wp[8] = {0x3eff3806u, 0xbe7f95fau, 0x3a8c0212u, 0xc0002933u, 0x3ac0f69eu, 0x4040018fu, 0xba1c8c0cu, 0x3e014405u};
    const uint32_t wm[8] = {0xbce075f8u, 0x3caa64c3u, 0xb526295bu, 0x3ebc6a80u, 0xbc9374bbu, 0xb21c5639u, 0xb84d855au, 0xbea76c8bu};
    const uint32_t wv[8] = {0x3934db15u, 0x39129f58u, 0x29ec3594u, 0x3c84ebe2u, 0x39a38b94u, 0x233a4f6fu, 0x31b42ebau, 0x3dc03cd9u};
    bt_tensor tp = tv1(p, 8), tm = tv1(m, 8), tv = tv1(v, 8);
    for (int s = 0; s < 3; s++) {
        bt_tensor tg = tv1(g[s], 8);
        bt_adamw_args a = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f,
                           .grad_scale = 1.0f, .step = s + 1};
        be->adamw(be, &tp, &tg, &tm, &tv, &a);
    }
    assert_memory_equal(m, wm, sizeof wm);
    assert_memory_equal(v, wv, sizeof wv);
    assert_memory_equal(p, wp, sizeof wp);
}

/* ---- global checks ---- */
static void test_sum_squares(void **state)
{
    (void)state;
    ref_seed(33);
    int64_t ns[4] = {3, 100000, 1, 16384 * 2 + 5};
    float *x[4];
    bt_tensor ts[4];
    double want = 0;
    for (int t = 0; t < 4; t++) {
        x[t] = ref_rand(ns[t], -2, 2);
        ts[t] = tv1(x[t], ns[t]);
        for (int64_t i = 0; i < ns[t]; i++) want += (double)x[t][i] * x[t][i];
    }
    double got = be->sum_squares(be, ts, 4);
    assert_true(fabs(got - want) <= 1e-12 * want);
    assert_true(be->sum_squares(be, ts, 4) == got); /* bitwise rerun */
    bt_backend *b1 = ref_backend(1);
    assert_true(b1->sum_squares(b1, ts, 4) == got); /* fixed chunks: thread-count independent */
    b1->destroy(b1);
    assert_true(be->sum_squares(be, ts, 0) == 0.0);
    /* beyond float range per element squared stays exact in double */
    x[2][0] = 1e30f;
    assert_true(be->sum_squares(be, &ts[2], 1) == (double)1e30f * (double)1e30f);
    for (int t = 0; t < 4; t++) free(x[t]);
}

static void test_all_finite(void **state)
{
    (void)state;
    ref_seed(34);
    int n = 70001;
    float *a = ref_rand(n, -1, 1), *b = ref_rand(5, -1, 1);
    bt_tensor ts[2] = {tv1(a, n), tv1(b, 5)};
    assert_int_equal(be->all_finite(be, ts, 2), 1);
    a[0] = FLT_MAX; b[4] = -FLT_MAX;
    assert_int_equal(be->all_finite(be, ts, 2), 1);
    float bad[3] = {NAN, INFINITY, -INFINITY};
    int64_t where[3] = {0, n / 2, n - 1};
    for (int k = 0; k < 3; k++)
        for (int w = 0; w < 3; w++) {
            float keep = a[where[w]];
            a[where[w]] = bad[k];
            assert_int_equal(be->all_finite(be, ts, 2), 0);
            a[where[w]] = keep;
        }
    b[2] = NAN; /* in the second tensor */
    assert_int_equal(be->all_finite(be, ts, 2), 0);
    assert_int_equal(be->all_finite(be, ts, 1), 1);
    free(a); free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_losses_fd),
        cmocka_unit_test(test_losses_edge_cases),
        cmocka_unit_test(test_adamw_vs_double),
        cmocka_unit_test(test_adamw_matches_torch_bits),
        cmocka_unit_test(test_sum_squares),
        cmocka_unit_test(test_all_finite),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
