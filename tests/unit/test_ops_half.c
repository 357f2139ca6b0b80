/* tests/unit/test_ops_half.c — CPU backend: every op the mixed-precision
 * engine uses, with F16 and BF16 tensors, against double references; and the
 * rounding of kernels/half.h against an independent round-to-nearest-even.
 *
 * Method: inputs are drawn in F32 and rounded to the 16-bit type, so the
 * reference (double) sees exactly the values the op sees. An output stored
 * in a 16-bit tensor is rounded once, which costs at most the unit roundoff u
 * of the format relative to the value (u = 2^-11 for F16, 2^-8 for BF16),
 * plus an absolute 2^-25 where F16 goes subnormal; the F32 arithmetic before
 * the store adds what the F32 tests allow (a few 1e-7 relative, or K 2^-24
 * sum|a||b| for a K-long dot product). Each check says which bound it uses.
 * Those bounds are tight enough to fail on a double rounding through the
 * wrong type (BF16 through F16 misses 2^-25 values, F16 through BF16 errs by
 * 2^-9) or a missed store. */
#include "ops_ref.h"
#include "kernels/half.h"
#include "util/err.h"

#include <fenv.h>

static bt_backend *be;

static int setup(void **state) { (void)state; be = ref_backend(2); return 0; }
static int teardown(void **state) { (void)state; be->destroy(be); return 0; }

static const bt_dtype DTS[2] = {BT_F16, BT_BF16};
static const char *dtn(bt_dtype d) { return d == BT_F16 ? "f16" : "bf16"; }
static double uround(bt_dtype d) { return d == BT_F16 ? ldexp(1.0, -11) : ldexp(1.0, -8); }
static double sub_abs(bt_dtype d) { return d == BT_F16 ? ldexp(1.0, -25) : 0.0; }

/* Independent round-to-nearest-even of a double to F16 / BF16 (nearbyint in
 * the default FE_TONEAREST mode), with the formats' ranges. */
static double ref_round(double x, bt_dtype dt)
{
    if (!isfinite(x) || x == 0.0) return x;
    int p = dt == BT_F16 ? 11 : 8, emin = dt == BT_F16 ? -14 : -126;
    double maxv = dt == BT_F16 ? 65504.0 : ldexp(2.0 - ldexp(1.0, -7), 127);
    int e;
    frexp(fabs(x), &e); /* |x| in [2^(e-1), 2^e) */
    e -= 1;
    if (e < emin) e = emin;
    double ulp = ldexp(1.0, e - (p - 1));
    double r = nearbyint(x / ulp) * ulp;
    if (fabs(r) > maxv) return x > 0 ? INFINITY : -INFINITY;
    return r;
}

/* ---- 16-bit host buffers ---- */
typedef struct {
    bt_dtype dt;
    int64_t n;
    uint16_t *h; /* the tensor's storage */
    double *d;   /* its exact values */
} lp;

static lp lp_from(bt_dtype dt, const float *x, int64_t n)
{
    lp b = {dt, n, calloc((size_t)(n ? n : 1), 2), calloc((size_t)(n ? n : 1), sizeof(double))};
    for (int64_t i = 0; i < n; i++) {
        b.h[i] = dt == BT_F16 ? bt_f32_to_f16(x[i]) : bt_f32_to_bf16(x[i]);
        b.d[i] = dt == BT_F16 ? bt_f16_to_f32(b.h[i]) : bt_bf16_to_f32(b.h[i]);
    }
    return b;
}
static lp lp_rand(bt_dtype dt, int64_t n, float lo, float hi)
{
    float *x = ref_rand(n, lo, hi);
    lp b = lp_from(dt, x, n);
    free(x);
    return b;
}
static lp lp_zero(bt_dtype dt, int64_t n)
{
    lp b = {dt, n, calloc((size_t)(n ? n : 1), 2), calloc((size_t)(n ? n : 1), sizeof(double))};
    return b;
}
static void lp_free(lp *b) { free(b->h); free(b->d); }
/* the tensor's current values as floats (malloc) */
static float *lp_get(const lp *b)
{
    float *f = ref_zeros(b->n);
    for (int64_t i = 0; i < b->n; i++) f[i] = b->dt == BT_F16 ? bt_f16_to_f32(b->h[i]) : bt_bf16_to_f32(b->h[i]);
    return f;
}
static bt_tensor lt1(lp *b) { return bt_view1(b->h, b->dt, BT_DEV_CPU, b->n); }
static bt_tensor lt2(lp *b, int64_t r, int64_t c) { return bt_view2(b->h, b->dt, BT_DEV_CPU, r, c); }

/* Per element: |got - want| <= rel |want| + abs[i] (abs_v: one value for all
 * when absv == NULL). NaN fails. Says where the worst ratio is. */
static void check_bound_(const float *got, const double *want, int64_t n, double rel, double abs_v,
                         const double *absv, const char *what, const char *file, int line)
{
    double worst = 0.0;
    int64_t wi = -1;
    for (int64_t i = 0; i < n; i++) {
        double lim = rel * fabs(want[i]) + (absv ? absv[i] : abs_v) + 1e-300;
        double r = fabs((double)got[i] - want[i]) / lim;
        if (!(r <= worst)) { worst = r; wi = i; }
    }
    if (!(worst <= 1.0)) {
        fprintf(stderr, "%s:%d: %s: element %lld: got %.9g want %.9g (|err| %.3g, bound %.3g)\n", file, line, what,
                (long long)wi, got[wi], want[wi], fabs(got[wi] - want[wi]),
                rel * fabs(want[wi]) + (absv ? absv[wi] : abs_v));
        fail();
    }
}
#define check_bound(got, want, n, rel, abs, what) check_bound_(got, want, n, rel, abs, NULL, what, __FILE__, __LINE__)
#define check_boundv(got, want, n, rel, absv, what) check_bound_(got, want, n, rel, 0, absv, what, __FILE__, __LINE__)

static double maxabs(const double *x, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

/* ------------------------------------------------------------------------ */
/* rounding                                                                  */

static void test_rounding_exhaustive(void **state)
{
    (void)state;
    /* every 16-bit pattern widens to the value its bits denote and narrows back to itself */
    for (uint32_t b = 0; b < 65536; b++) {
        uint16_t h = (uint16_t)b;
        float f = bt_f16_to_f32(h);
        int e = (h >> 10) & 31, m = h & 1023;
        double want = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
        if (h & 0x8000) want = -want;
        if (e == 31 && m) {
            assert_true(isnan(f));
            assert_true((bt_f32_to_f16(f) & 0x7C00) == 0x7C00 && (bt_f32_to_f16(f) & 0x3FF));
            continue;
        }
        assert_true((double)f == want);
        assert_int_equal(bt_f32_to_f16(f), h);
        float g = bt_bf16_to_f32(h);
        if (isnan(g)) continue;
        assert_int_equal(bt_f32_to_bf16(g), h);
    }
    /* random floats of every exponent: narrowing equals the independent RNE,
     * and the backend's convert op is bit-identical to kernels/half.h */
    ref_seed(101);
    enum { NR = 200000 };
    float *x = ref_zeros(NR);
    for (int i = 0; i < NR; i++) {
        uint32_t bits = (uint32_t)ref_next();
        if (i % 4 == 0) bits = (bits & 0x8000FFFFu) | ((uint32_t)(0x66 + i % 40) << 23); /* f16 subnormal range */
        if (i % 4 == 1) bits = (bits & 0xFFFF8000u) | 0x8000u;                           /* exact bf16 ties */
        if (i % 4 == 2) bits = (bits & 0xFFFFE000u) | 0x1000u;                           /* exact f16 ties */
        x[i] = bt_bits_f32(bits);
    }
    uint16_t *h = calloc(NR, 2), *bf = calloc(NR, 2);
    bt_tensor tx = tv1(x, NR), th = bt_view1(h, BT_F16, BT_DEV_CPU, NR), tb = bt_view1(bf, BT_BF16, BT_DEV_CPU, NR);
    be->convert(be, &tx, &th);
    be->convert(be, &tx, &tb);
    for (int i = 0; i < NR; i++) {
        if (isnan(x[i])) continue;
        assert_int_equal(h[i], bt_f32_to_f16(x[i]));
        assert_int_equal(bf[i], bt_f32_to_bf16(x[i]));
        double w16 = ref_round(x[i], BT_F16), wb = ref_round(x[i], BT_BF16);
        if ((double)bt_f16_to_f32(h[i]) != w16 || (double)bt_bf16_to_f32(bf[i]) != wb) {
            fprintf(stderr, "x = %.9g (0x%08x): f16 %.9g want %.9g, bf16 %.9g want %.9g\n", x[i], bt_f32_bits(x[i]),
                    bt_f16_to_f32(h[i]), w16, bt_bf16_to_f32(bf[i]), wb);
            fail();
        }
    }
    /* 16-bit -> 16-bit of the other kind goes through F32 exactly once */
    float *back = ref_zeros(NR);
    bt_tensor tback = tv1(back, NR);
    be->convert(be, &th, &tb);
    be->convert(be, &tb, &tback);
    for (int i = 0; i < NR; i++)
        if (!isnan(x[i])) assert_true((double)back[i] == ref_round(bt_f16_to_f32(h[i]), BT_BF16));
    free(x); free(h); free(bf); free(back);
}

/* ------------------------------------------------------------------------ */
/* matmul and bias_grad                                                      */

static void matmul_case(bt_dtype dt, int M, int N, int K, int tA, int tB, float beta, int bias_on, int epi, int c16)
{
    lp A = lp_rand(dt, (int64_t)M * K, -1, 1), B = lp_rand(dt, (int64_t)K * N, -1, 1);
    float *bias = ref_rand(N, -1, 1), *C0 = ref_rand((int64_t)M * N, -1, 1);
    lp C0l = lp_from(dt, C0, (int64_t)M * N);
    double *bd = ref_dbl(bias, N), *c0d = c16 ? C0l.d : ref_dbl(C0, (int64_t)M * N);
    double *want = calloc((size_t)M * N, sizeof(double)), *wpre = calloc((size_t)M * N, sizeof(double));
    double *absb = calloc((size_t)M * N, sizeof(double));
    ref_matmul(A.d, tA, B.d, tB, M, N, K, 1.0, beta, c0d, bias_on ? bd : NULL, BT_EPI_NONE, wpre, NULL);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += fabs(tA ? A.d[(int64_t)k * M + i] : A.d[(int64_t)i * K + k]) *
                     fabs(tB ? B.d[(int64_t)j * K + k] : B.d[(int64_t)k * N + j]);
            s += (bias_on ? fabs(bd[j]) : 0) + fabs(beta * c0d[(int64_t)i * N + j]);
            absb[(int64_t)i * N + j] = 2.0 * (K + 2) * ldexp(s, -24) + (c16 ? sub_abs(dt) : 0);
        }
    bt_tensor ta = tA ? lt2(&A, K, M) : lt2(&A, M, K), tb = tB ? lt2(&B, N, K) : lt2(&B, K, N);
    bt_tensor tbias = tv1(bias, N);
    lp Cl = C0l, Pl = lp_zero(dt, (int64_t)M * N);
    float *Cf = C0, *Pf = ref_zeros((int64_t)M * N);
    bt_tensor tc = c16 ? lt2(&Cl, M, N) : tv2(Cf, M, N), tp = c16 ? lt2(&Pl, M, N) : tv2(Pf, M, N);
    be->matmul(be, &ta, tA, &tb, tB, &tc, bias_on ? &tbias : NULL, 1.0f, beta, epi, epi ? &tp : NULL);
    float *got = c16 ? lp_get(&Cl) : Cf, *gpre = c16 ? lp_get(&Pl) : Pf;
    double rel = c16 ? uround(dt) : 0.0;
    char what[160];
    snprintf(what, sizeof what, "%s matmul M=%d N=%d K=%d tA=%d tB=%d beta=%g bias=%d epi=%d C=%s", dtn(dt), M, N, K,
             tA, tB, beta, bias_on, epi, c16 ? dtn(dt) : "f32");
    if (!epi) {
        check_boundv(got, wpre, (int64_t)M * N, rel, absb, what);
    } else {
        check_boundv(gpre, wpre, (int64_t)M * N, rel, absb, what);
        /* the activation of the STORED pre-activation (16-bit C), or of the F32 one */
        for (int64_t i = 0; i < (int64_t)M * N; i++)
            want[i] = epi == BT_EPI_GELU_ERF ? ref_gelu_erf(gpre[i]) : ref_gelu_tanh(gpre[i]);
        check_bound(got, want, (int64_t)M * N, rel + 4e-7, 1e-7 + (c16 ? sub_abs(dt) : 0), what);
    }
    if (c16) { free(got); free(gpre); }
    lp_free(&A); lp_free(&B); lp_free(&C0l); lp_free(&Pl);
    free(bias); free(C0); free(bd); if (!c16) free(c0d);
    free(want); free(wpre); free(absb); free(Pf);
}

static void test_matmul_half(void **state)
{
    (void)state;
    ref_seed(2);
    for (int d = 0; d < 2; d++) {
        bt_dtype dt = DTS[d];
        for (int tA = 0; tA < 2; tA++)
            for (int tB = 0; tB < 2; tB++) {
                matmul_case(dt, 7, 5, 3, tA, tB, 0.0f, 0, BT_EPI_NONE, 1);
                matmul_case(dt, 96, 40, 70, tA, tB, 0.0f, 1, BT_EPI_NONE, 1);
                matmul_case(dt, 33, 130, 90, tA, tB, 1.0f, 0, BT_EPI_NONE, 0); /* dW += dY^T X into F32 */
            }
        matmul_case(dt, 64, 48, 100, 0, 1, 1.0f, 1, BT_EPI_NONE, 1);    /* accumulate into 16-bit */
        matmul_case(dt, 80, 72, 64, 0, 1, 0.0f, 1, BT_EPI_GELU_ERF, 1);  /* linear + GELU, 16-bit out */
        matmul_case(dt, 80, 72, 64, 0, 1, 0.0f, 1, BT_EPI_GELU_TANH, 1);
        matmul_case(dt, 80, 72, 64, 0, 1, 0.0f, 1, BT_EPI_GELU_ERF, 0);  /* F32 out */
        matmul_case(dt, 1, 1, 1, 0, 1, 0.0f, 1, BT_EPI_NONE, 1);
    }
}

static void test_bias_grad_half(void **state)
{
    (void)state;
    ref_seed(3);
    for (int d = 0; d < 2; d++) {
        int M = 300, N = 37;
        lp dY = lp_rand(DTS[d], (int64_t)M * N, -1, 1);
        float *db = ref_rand(N, -1, 1);
        double *want = calloc(N, sizeof(double)), *absb = calloc(N, sizeof(double));
        for (int j = 0; j < N; j++) {
            want[j] = db[j];
            absb[j] = 1e-7 * fabs(db[j]);
            for (int i = 0; i < M; i++) { want[j] += dY.d[i * N + j]; absb[j] += 1e-7 * fabs(dY.d[i * N + j]); }
        }
        bt_tensor ty = lt2(&dY, M, N), tb = tv1(db, N);
        be->bias_grad(be, &ty, &tb, 1);
        check_boundv(db, want, N, 0, absb, "bias_grad (16-bit dY, F32 accumulate)");
        lp_free(&dY); free(db); free(want); free(absb);
    }
}

/* ------------------------------------------------------------------------ */
/* elementwise                                                               */

static double ref_act_grad(int act, double x)
{
    const double h = 1e-5 * fmax(1.0, fabs(x));
    return (ref_act(act, x + h) - ref_act(act, x - h)) / (2 * h);
}

static void test_elementwise_half(void **state)
{
    (void)state;
    ref_seed(4);
    int n = 3001;
    for (int d = 0; d < 2; d++) {
        bt_dtype dt = DTS[d];
        double u = uround(dt), sa = sub_abs(dt);
        char what[96];
        lp x = lp_rand(dt, n, -6, 6), g = lp_rand(dt, n, -2, 2), y = lp_zero(dt, n), o = lp_rand(dt, n, -1, 1);
        double *want = calloc(n, sizeof(double));
        bt_tensor tx = lt1(&x), tg = lt1(&g), ty = lt1(&y), to = lt1(&o);
        for (int act = BT_ACT_GELU_ERF; act <= BT_ACT_TANH; act++) {
            be->act_fwd(be, act, &tx, &ty);
            float *got = lp_get(&y);
            for (int i = 0; i < n; i++) want[i] = ref_act(act, x.d[i]);
            snprintf(what, sizeof what, "%s act_fwd %d", dtn(dt), act);
            check_bound(got, want, n, u + 1e-6, sa + 1e-12, what);
            free(got);
            /* backward, overwrite and accumulate (o holds 16-bit values to add to) */
            be->act_bwd(be, act, &tx, &tg, &ty, 0);
            got = lp_get(&y);
            for (int i = 0; i < n; i++) want[i] = g.d[i] * ref_act_grad(act, x.d[i]);
            /* the derivative formulas cancel in F32 (1 - tanh^2, the tails): an
             * absolute F32 error of a few 2^-24 |dy| (|dy| <= 2) on top of u */
            snprintf(what, sizeof what, "%s act_bwd %d", dtn(dt), act);
            check_bound(got, want, n, u + 1e-5, sa + 8 * ldexp(2, -24), what);
            free(got);
            float *o0 = lp_get(&o);
            be->act_bwd(be, act, &tx, &tg, &to, 1);
            got = lp_get(&o);
            for (int i = 0; i < n; i++) want[i] = o0[i] + g.d[i] * ref_act_grad(act, x.d[i]);
            snprintf(what, sizeof what, "%s act_bwd %d accumulate", dtn(dt), act);
            check_bound(got, want, n, u + 1e-5, sa + 8 * ldexp(2, -24), what);
            free(got); free(o0);
        }
        /* dropout: y = round(x * keep / (1 - p)), in place too */
        bt_dropout_key k = {.seed = 9, .step = 2, .micro = 1, .layer = 3, .site = BT_SITE_FFN_OUT};
        double *mult = ref_dropout_mult(k, n, 0.25f);
        be->dropout(be, &tx, &ty, 0.25f, k);
        float *got = lp_get(&y);
        for (int i = 0; i < n; i++) want[i] = x.d[i] * mult[i];
        snprintf(what, sizeof what, "%s dropout", dtn(dt));
        check_bound(got, want, n, u + ldexp(1, -23), sa, what);
        be->dropout(be, &tx, &tx, 0.25f, k);
        assert_memory_equal(x.h, y.h, (size_t)n * 2);
        free(got); free(mult);
        /* add (aliased output) and scale */
        lp a = lp_rand(dt, n, -3, 3), b = lp_rand(dt, n, -3, 3);
        bt_tensor tA = lt1(&a), tB = lt1(&b);
        for (int i = 0; i < n; i++) want[i] = a.d[i] + b.d[i];
        be->add(be, &tA, &tB, &tA);
        got = lp_get(&a);
        snprintf(what, sizeof what, "%s add", dtn(dt));
        check_bound(got, want, n, u + ldexp(1, -23), sa, what);
        free(got);
        for (int i = 0; i < n; i++) want[i] = b.d[i] * 0.3f;
        be->scale(be, &tB, 0.3f);
        got = lp_get(&b);
        snprintf(what, sizeof what, "%s scale", dtn(dt));
        check_bound(got, want, n, u + ldexp(1, -23), sa, what);
        free(got);
        lp_free(&a); lp_free(&b); lp_free(&x); lp_free(&g); lp_free(&y); lp_free(&o); free(want);
    }
}

/* ------------------------------------------------------------------------ */
/* layer norm                                                                */

static void test_layernorm_half(void **state)
{
    (void)state;
    ref_seed(5);
    int R = 9, Dm = 96;
    int64_t n = (int64_t)R * Dm;
    for (int d = 0; d < 2; d++) {
        bt_dtype dt = DTS[d];
        double u = uround(dt);
        lp x = lp_rand(dt, n, -2, 2);
        float *res = ref_rand(n, -1, 1), *gam = ref_rand(Dm, 0.5, 1.5), *bet = ref_rand(Dm, -0.5, 0.5);
        float *y = ref_zeros(n), *h = ref_zeros(n), *mean = ref_zeros(R), *rstd = ref_zeros(R);
        double *rd = ref_dbl(res, n), *gd = ref_dbl(gam, Dm), *bd = ref_dbl(bet, Dm);
        double *wy = calloc(n, sizeof(double)), *wm = calloc(R, sizeof(double)), *wr = calloc(R, sizeof(double));
        double *wh = calloc(n, sizeof(double));
        /* the mixed-precision residual: 16-bit projection x + F32 stream res -> F32 y, h */
        bt_tensor tx = lt2(&x, R, Dm), tres = tv2(res, R, Dm), tg = tv1(gam, Dm), tb = tv1(bet, Dm);
        bt_tensor ty = tv2(y, R, Dm), th = tv2(h, R, Dm), tm = tv1(mean, R), trs = tv1(rstd, R);
        be->layernorm_fwd(be, &tx, &tres, &tg, &tb, 1e-12f, &ty, &tm, &trs, &th);
        ref_layernorm(x.d, rd, gd, bd, 1e-12, R, Dm, wy, wm, wr);
        for (int64_t i = 0; i < n; i++) wh[i] = x.d[i] + rd[i];
        check_bound(y, wy, n, 1e-5, 1e-5, "layernorm_fwd 16-bit x + F32 res -> F32 y");
        check_bound(h, wh, n, ldexp(1, -24), 0, "layernorm_fwd h = x + res (F32)");
        check_bound(rstd, wr, R, 1e-5, 0, "layernorm_fwd rstd");
        /* all 16-bit (x, y, h): y rounded once */
        lp y16 = lp_zero(dt, n), h16 = lp_zero(dt, n);
        bt_tensor ty16 = lt2(&y16, R, Dm), th16 = lt2(&h16, R, Dm);
        be->layernorm_fwd(be, &tx, NULL, &tg, &tb, 1e-12f, &ty16, &tm, &trs, &th16);
        ref_layernorm(x.d, NULL, gd, bd, 1e-12, R, Dm, wy, wm, wr);
        float *got = lp_get(&y16), *gh = lp_get(&h16);
        check_bound(got, wy, n, u, 1e-5 * maxabs(wy, n) + sub_abs(dt), "layernorm_fwd all 16-bit");
        check_bound(gh, x.d, n, 0, 0, "layernorm_fwd h_out (16-bit copy of x)");
        free(got); free(gh);
        /* backward: 16-bit h (the MLM head's LN input) with F32 dy -> F32 dh, against the analytic gradient */
        float *dy = ref_rand(n, -1, 1), *dh = ref_zeros(n), *dg = ref_zeros(Dm), *db = ref_zeros(Dm);
        bt_tensor tdy = tv2(dy, R, Dm), tdh = tv2(dh, R, Dm), tdg = tv1(dg, Dm), tdb = tv1(db, Dm);
        be->layernorm_fwd(be, &tx, NULL, &tg, &tb, 1e-12f, &ty, &tm, &trs, NULL);
        be->layernorm_bwd(be, &tx, &tdy, &tg, &tm, &trs, &tdh, &tdg, &tdb);
        double *wdh = calloc(n, sizeof(double)), *wdg = calloc(Dm, sizeof(double)), *wdb = calloc(Dm, sizeof(double));
        ref_layernorm(x.d, NULL, gd, bd, 1e-12, R, Dm, wy, wm, wr);
        for (int r = 0; r < R; r++) {
            double a = 0, b = 0;
            for (int j = 0; j < Dm; j++) {
                double xh = (x.d[r * Dm + j] - wm[r]) * wr[r], gj = dy[r * Dm + j] * gd[j];
                a += gj; b += gj * xh;
                wdg[j] += dy[r * Dm + j] * xh;
                wdb[j] += dy[r * Dm + j];
            }
            a /= Dm; b /= Dm;
            for (int j = 0; j < Dm; j++) {
                double xh = (x.d[r * Dm + j] - wm[r]) * wr[r];
                wdh[r * Dm + j] = wr[r] * (dy[r * Dm + j] * gd[j] - a - xh * b);
            }
        }
        check_bound(dh, wdh, n, 0, 2e-5 * maxabs(wdh, n), "layernorm_bwd 16-bit h, F32 dy/dh");
        check_bound(dg, wdg, Dm, 0, 2e-5 * maxabs(wdg, Dm), "layernorm_bwd dgamma");
        check_bound(db, wdb, Dm, 0, 2e-5 * maxabs(wdb, Dm), "layernorm_bwd dbeta");
        /* all 16-bit backward: dh rounded once */
        lp dy16 = lp_from(dt, dy, n), dh16 = lp_zero(dt, n);
        bt_tensor tdy16 = lt2(&dy16, R, Dm), tdh16 = lt2(&dh16, R, Dm);
        be->layernorm_bwd(be, &tx, &tdy16, &tg, &tm, &trs, &tdh16, NULL, NULL);
        for (int r = 0; r < R; r++) {
            double a = 0, b = 0;
            for (int j = 0; j < Dm; j++) {
                double xh = (x.d[r * Dm + j] - wm[r]) * wr[r], gj = dy16.d[r * Dm + j] * gd[j];
                a += gj; b += gj * xh;
            }
            a /= Dm; b /= Dm;
            for (int j = 0; j < Dm; j++) {
                double xh = (x.d[r * Dm + j] - wm[r]) * wr[r];
                wdh[r * Dm + j] = wr[r] * (dy16.d[r * Dm + j] * gd[j] - a - xh * b);
            }
        }
        got = lp_get(&dh16);
        check_bound(got, wdh, n, u, 2e-5 * maxabs(wdh, n) + sub_abs(dt), "layernorm_bwd all 16-bit");
        free(got);
        lp_free(&x); lp_free(&y16); lp_free(&h16); lp_free(&dy16); lp_free(&dh16);
        free(res); free(gam); free(bet); free(y); free(h); free(mean); free(rstd); free(rd); free(gd); free(bd);
        free(wy); free(wm); free(wr); free(wh); free(dy); free(dh); free(dg); free(db); free(wdh); free(wdg); free(wdb);
    }
}

/* ------------------------------------------------------------------------ */
/* attention                                                                 */

/* Double reference of the attention backward (P recomputed from qkv). */
static void ref_attention_bwd(const double *qkv, const int32_t *mask, int B, int S, int H, int Dh, double scale,
                              const double *keep, const double *dctx, double *dqkv)
{
    int64_t ld = 3 * H * Dh, ldc = H * Dh;
    double *P = calloc((size_t)S * S, sizeof(double)), *dP = calloc((size_t)S * S, sizeof(double));
    memset(dqkv, 0, sizeof(double) * (size_t)B * S * ld);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const double *q = qkv + (int64_t)b * S * ld + h * Dh, *k = q + H * Dh, *v = q + 2 * H * Dh;
            double *dq = dqkv + (int64_t)b * S * ld + h * Dh, *dk = dq + H * Dh, *dv = dq + 2 * H * Dh;
            const double *dc = dctx + (int64_t)b * S * ldc + h * Dh;
            int64_t row0 = ((int64_t)b * H + h) * S * S;
            for (int i = 0; i < S; i++) {
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < S; j++) {
                    double s = 0;
                    for (int e = 0; e < Dh; e++) s += q[i * ld + e] * k[j * ld + e];
                    s = s * scale + ((mask && mask[b * S + j] == 0) ? -3.4028234663852886e38 : 0.0);
                    P[i * S + j] = s;
                    mx = fmax(mx, s);
                }
                for (int j = 0; j < S; j++) sum += (P[i * S + j] = exp(P[i * S + j] - mx));
                for (int j = 0; j < S; j++) P[i * S + j] /= sum;
            }
            for (int i = 0; i < S; i++) {
                double dot = 0;
                for (int j = 0; j < S; j++) {
                    double m = keep ? keep[row0 + (int64_t)i * S + j] : 1.0, g = 0;
                    for (int e = 0; e < Dh; e++) g += dc[i * ldc + e] * v[j * ld + e];
                    for (int e = 0; e < Dh; e++) dv[j * ld + e] += P[i * S + j] * m * dc[i * ldc + e];
                    dP[i * S + j] = g * m;
                    dot += P[i * S + j] * dP[i * S + j];
                }
                for (int j = 0; j < S; j++) {
                    double ds = P[i * S + j] * (dP[i * S + j] - dot) * scale;
                    for (int e = 0; e < Dh; e++) {
                        dq[i * ld + e] += ds * k[j * ld + e];
                        dk[j * ld + e] += ds * q[i * ld + e];
                    }
                }
            }
        }
    free(P); free(dP);
}

static void test_attention_half(void **state)
{
    (void)state;
    ref_seed(6);
    int B = 2, S = 11, Hh = 3, Dh = 8;
    int64_t nq = (int64_t)B * S * 3 * Hh * Dh, nc = (int64_t)B * S * Hh * Dh, np = (int64_t)B * Hh * S * S;
    int32_t mask[2 * 11];
    for (int j = 0; j < S; j++) { mask[j] = 1; mask[S + j] = j < 7; }
    float scale = 1.0f / sqrtf((float)Dh);
    for (int d = 0; d < 2; d++)
        for (int pd = 0; pd < 2; pd++) {
            bt_dtype dt = DTS[d];
            float p = pd ? 0.2f : 0.0f;
            bt_dropout_key k = {.seed = 5, .step = 1, .micro = 0, .layer = 1, .site = BT_SITE_ATTN_PROBS};
            lp qkv = lp_rand(dt, nq, -1.5, 1.5), ctx = lp_zero(dt, nc), dctx = lp_rand(dt, nc, -1, 1);
            lp dqkv = lp_zero(dt, nq), ctx2 = lp_zero(dt, nc), dqkv2 = lp_zero(dt, nq);
            float *probs = ref_zeros(np), *lse = ref_zeros(np / S);
            int64_t s4[4] = {B, S, 3 * Hh, Dh}, c4[4] = {B, S, Hh, Dh}, p4[4] = {B, Hh, S, S}, l3[3] = {B, Hh, S};
            bt_tensor tq = bt_view(qkv.h, dt, BT_DEV_CPU, 4, s4), tc = bt_view(ctx.h, dt, BT_DEV_CPU, 4, c4);
            bt_tensor tdc = bt_view(dctx.h, dt, BT_DEV_CPU, 4, c4), tdq = bt_view(dqkv.h, dt, BT_DEV_CPU, 4, s4);
            bt_tensor tc2 = bt_view(ctx2.h, dt, BT_DEV_CPU, 4, c4), tdq2 = bt_view(dqkv2.h, dt, BT_DEV_CPU, 4, s4);
            bt_tensor tp = bt_view(probs, BT_F32, BT_DEV_CPU, 4, p4), tl = bt_view(lse, BT_F32, BT_DEV_CPU, 3, l3);
            bt_tensor tm = tvn(mask, BT_I32, 2, B, S, 0, 0);
            be->attention_fwd(be, &tq, &tm, B, S, Hh, Dh, scale, p, k, &tc, &tp, &tl);
            be->attention_bwd(be, &tq, &tm, B, S, Hh, Dh, scale, p, k, &tc, &tp, &tl, &tdc, &tdq);
            double *keep = p > 0 ? ref_dropout_mult(k, np, p) : NULL;
            double *wc = calloc(nc, sizeof(double)), *wp = calloc(np, sizeof(double)), *wd = calloc(nq, sizeof(double));
            ref_attention(qkv.d, mask, B, S, Hh, Dh, scale, keep, wc, wp);
            ref_attention_bwd(qkv.d, mask, B, S, Hh, Dh, scale, keep, dctx.d, wd);
            char what[96];
            float *got = lp_get(&ctx);
            snprintf(what, sizeof what, "%s attention ctx p=%g", dtn(dt), p);
            check_bound(got, wc, nc, uround(dt), 4e-6 * maxabs(wc, nc) + sub_abs(dt), what);
            check_bound(probs, wp, np, 0, 2e-6, "attention probs (F32, from 16-bit q, k)");
            free(got);
            got = lp_get(&dqkv);
            snprintf(what, sizeof what, "%s attention dqkv p=%g", dtn(dt), p);
            check_bound(got, wd, nq, uround(dt), 1e-5 * maxabs(wd, nq) + sub_abs(dt), what);
            free(got);
            /* bit-identical rerun */
            be->attention_fwd(be, &tq, &tm, B, S, Hh, Dh, scale, p, k, &tc2, &tp, &tl);
            be->attention_bwd(be, &tq, &tm, B, S, Hh, Dh, scale, p, k, &tc2, &tp, &tl, &tdc, &tdq2);
            assert_memory_equal(ctx.h, ctx2.h, (size_t)nc * 2);
            assert_memory_equal(dqkv.h, dqkv2.h, (size_t)nq * 2);
            lp_free(&qkv); lp_free(&ctx); lp_free(&dctx); lp_free(&dqkv); lp_free(&ctx2); lp_free(&dqkv2);
            free(probs); free(lse); free(keep); free(wc); free(wp); free(wd);
        }
}


/* The recomputing backward (probs NULL, P from lse per 64-row tile) in 16 bits:
 * the same bound against the double reference, ctx the same bits with and
 * without stored probabilities. */
static void test_attention_half_recompute(void **state)
{
    (void)state;
    ref_seed(16);
    int B = 2, S = 70, Hh = 2, Dh = 8;
    int64_t nq = (int64_t)B * S * 3 * Hh * Dh, nc = (int64_t)B * S * Hh * Dh, np = (int64_t)B * Hh * S * S;
    int32_t mask[2 * 70];
    for (int j = 0; j < S; j++) { mask[j] = 1; mask[S + j] = j < 50; }
    float scale = 1.0f / sqrtf((float)Dh);
    for (int d = 0; d < 2; d++)
        for (int pd = 0; pd < 2; pd++) {
            bt_dtype dt = DTS[d];
            float p = pd ? 0.2f : 0.0f;
            bt_dropout_key k = {.seed = 9, .step = 2, .micro = 1, .layer = 0, .site = BT_SITE_ATTN_PROBS};
            lp qkv = lp_rand(dt, nq, -1.5, 1.5), ctx = lp_zero(dt, nc), ctx2 = lp_zero(dt, nc);
            lp dctx = lp_rand(dt, nc, -1, 1), dqkv = lp_zero(dt, nq);
            float *probs = ref_zeros(np), *lse = ref_zeros(np / S);
            int64_t s4[4] = {B, S, 3 * Hh, Dh}, c4[4] = {B, S, Hh, Dh}, p4[4] = {B, Hh, S, S}, l3[3] = {B, Hh, S};
            bt_tensor tq = bt_view(qkv.h, dt, BT_DEV_CPU, 4, s4), tc = bt_view(ctx.h, dt, BT_DEV_CPU, 4, c4);
            bt_tensor tc2 = bt_view(ctx2.h, dt, BT_DEV_CPU, 4, c4);
            bt_tensor tdc = bt_view(dctx.h, dt, BT_DEV_CPU, 4, c4), tdq = bt_view(dqkv.h, dt, BT_DEV_CPU, 4, s4);
            bt_tensor tp = bt_view(probs, BT_F32, BT_DEV_CPU, 4, p4), tl = bt_view(lse, BT_F32, BT_DEV_CPU, 3, l3);
            bt_tensor tm = tvn(mask, BT_I32, 2, B, S, 0, 0);
            be->attention_fwd(be, &tq, &tm, B, S, Hh, Dh, scale, p, k, &tc, &tp, NULL);
            be->attention_fwd(be, &tq, &tm, B, S, Hh, Dh, scale, p, k, &tc2, NULL, &tl);
            assert_memory_equal(ctx.h, ctx2.h, (size_t)nc * 2);
            be->attention_bwd(be, &tq, &tm, B, S, Hh, Dh, scale, p, k, &tc2, NULL, &tl, &tdc, &tdq);
            double *keep = p > 0 ? ref_dropout_mult(k, np, p) : NULL;
            double *wd = calloc(nq, sizeof(double));
            ref_attention_bwd(qkv.d, mask, B, S, Hh, Dh, scale, keep, dctx.d, wd);
            float *got = lp_get(&dqkv);
            char what[96];
            snprintf(what, sizeof what, "%s recomputing attention dqkv p=%g", dtn(dt), p);
            check_bound(got, wd, nq, uround(dt), 1e-5 * maxabs(wd, nq) + sub_abs(dt), what);
            free(got);
            lp_free(&qkv); lp_free(&ctx); lp_free(&ctx2); lp_free(&dctx); lp_free(&dqkv);
            free(probs); free(lse); free(keep); free(wd);
        }
}

/* ------------------------------------------------------------------------ */
/* embeddings and gathers                                                    */

static void test_embed_gather_half(void **state)
{
    (void)state;
    ref_seed(7);
    int N = 10, Dm = 24, nw = 7, np = 12, ntp = 2;
    int32_t ids[10] = {1, 0, 6, 3, 3, 0, 2, 5, 6, 1}, pos[10], tt[10], rows[4] = {9, 0, 3, 3};
    for (int i = 0; i < N; i++) { pos[i] = i; tt[i] = i % 2; }
    float *W = ref_rand(nw * Dm, -1, 1), *P = ref_rand(np * Dm, -1, 1), *T = ref_rand(ntp * Dm, -1, 1);
    for (int d = 0; d < 2; d++) {
        bt_dtype dt = DTS[d];
        lp out = lp_zero(dt, (int64_t)N * Dm);
        bt_tensor ti = tvi(ids, N), tp = tvi(pos, N), tt_ = tvi(tt, N), to = lt2(&out, N, Dm);
        bt_tensor tw = tv2(W, nw, Dm), tpp = tv2(P, np, Dm), ttt = tv2(T, ntp, Dm);
        be->embed_fwd(be, &ti, &tp, &tt_, &tw, &tpp, &ttt, &to);
        double *want = calloc((size_t)N * Dm, sizeof(double));
        for (int i = 0; i < N; i++)
            for (int j = 0; j < Dm; j++)
                want[i * Dm + j] = (double)W[ids[i] * Dm + j] + T[tt[i] * Dm + j] + P[pos[i] * Dm + j];
        float *got = lp_get(&out);
        check_bound(got, want, (int64_t)N * Dm, uround(dt) + ldexp(1, -22), sub_abs(dt), "embed_fwd 16-bit out");
        free(got);
        /* backward with a 16-bit dout into F32 tables (pad id 0 skipped) */
        lp dout = lp_rand(dt, (int64_t)N * Dm, -1, 1);
        float *dW = ref_zeros(nw * Dm), *dP = ref_zeros(np * Dm);
        bt_tensor tdo = lt2(&dout, N, Dm), tdw = tv2(dW, nw, Dm), tdp = tv2(dP, np, Dm);
        be->embed_bwd(be, &ti, &tp, &tt_, &tdo, 0, &tdw, &tdp, NULL);
        double *wdw = calloc((size_t)nw * Dm, sizeof(double));
        for (int i = 0; i < N; i++)
            if (ids[i] != 0)
                for (int j = 0; j < Dm; j++) wdw[ids[i] * Dm + j] += dout.d[i * Dm + j];
        check_bound(dW, wdw, nw * Dm, 0, 1e-6, "embed_bwd 16-bit dout");
        for (int j = 0; j < Dm; j++) assert_true(dP[3 * Dm + j] == (float)dout.d[3 * Dm + j]);
        /* gather (16-bit copy, bit-exact) and its backward */
        lp g = lp_zero(dt, 4 * Dm);
        bt_tensor tr = tvi(rows, 4), tg = lt2(&g, 4, Dm);
        be->gather_rows(be, &to, &tr, &tg);
        for (int r = 0; r < 4; r++) assert_memory_equal(g.h + r * Dm, out.h + rows[r] * Dm, (size_t)Dm * 2);
        float *ds = ref_zeros((int64_t)N * Dm);
        bt_tensor tds = tv2(ds, N, Dm);
        be->gather_rows_bwd(be, &tg, &tr, &tds);
        double *wds = calloc((size_t)N * Dm, sizeof(double));
        float *gv = lp_get(&g);
        for (int r = 0; r < 4; r++)
            for (int j = 0; j < Dm; j++) wds[rows[r] * Dm + j] += gv[r * Dm + j];
        check_bound(ds, wds, (int64_t)N * Dm, 0, 1e-6, "gather_rows_bwd 16-bit dout");
        lp_free(&out); lp_free(&dout); lp_free(&g);
        free(want); free(dW); free(dP); free(wdw); free(ds); free(wds); free(gv);
    }
    free(W); free(P); free(T);
}

/* ------------------------------------------------------------------------ */
/* losses and global checks                                                  */

static void test_losses_half(void **state)
{
    (void)state;
    ref_seed(8);
    int N = 6, Cc = 5;
    int32_t lab[6] = {0, 4, -100, 2, 2, 1};
    float *tg = ref_rand(N * Cc, 0, 1);
    for (int i = 0; i < N * Cc; i++) tg[i] = tg[i] > 0.5f ? 1.0f : 0.0f;
    for (int d = 0; d < 2; d++) {
        bt_dtype dt = DTS[d];
        double u = uround(dt);
        lp x = lp_rand(dt, N * Cc, -4, 4), dx = lp_zero(dt, N * Cc);
        float loss = 0;
        bt_tensor tx = lt2(&x, N, Cc), tdx = lt2(&dx, N, Cc), tl = tv1(&loss, 1), tlab = tvi(lab, N), tt = tv2(tg, N, Cc);
        double *wd = calloc((size_t)N * Cc, sizeof(double)), wl = 0;
        const float gs = 65536.0f / 3.0f; /* a loss scale and 1/accumulation steps */
        /* softmax cross-entropy */
        be->softmax_xent(be, &tx, &tlab, gs, &tl, &tdx);
        int nv = 0;
        for (int i = 0; i < N; i++) {
            if (lab[i] == -100) continue;
            nv++;
            double mx = -INFINITY, s = 0;
            for (int j = 0; j < Cc; j++) mx = fmax(mx, x.d[i * Cc + j]);
            for (int j = 0; j < Cc; j++) s += exp(x.d[i * Cc + j] - mx);
            wl += mx + log(s) - x.d[i * Cc + lab[i]];
        }
        for (int i = 0; i < N; i++)
            for (int j = 0; j < Cc; j++) {
                if (lab[i] == -100) { wd[i * Cc + j] = 0; continue; }
                double mx = -INFINITY, s = 0;
                for (int k = 0; k < Cc; k++) mx = fmax(mx, x.d[i * Cc + k]);
                for (int k = 0; k < Cc; k++) s += exp(x.d[i * Cc + k] - mx);
                wd[i * Cc + j] = (exp(x.d[i * Cc + j] - mx) / s - (j == lab[i])) * gs / nv;
            }
        wl /= nv;
        check_bound(&loss, &wl, 1, 1e-6, 0, "softmax_xent loss from 16-bit logits");
        float *got = lp_get(&dx);
        check_bound(got, wd, N * Cc, u, 1e-6 * maxabs(wd, N * Cc), "softmax_xent 16-bit dlogits");
        free(got);
        /* BCE with logits */
        be->bce_logits(be, &tx, &tt, gs, &tl, &tdx);
        wl = 0;
        for (int i = 0; i < N * Cc; i++) {
            double z = x.d[i], t = tg[i];
            wl += fmax(z, 0) - z * t + log1p(exp(-fabs(z)));
            wd[i] = (1 / (1 + exp(-z)) - t) * gs / (N * Cc);
        }
        wl /= N * Cc;
        check_bound(&loss, &wl, 1, 1e-6, 0, "bce_logits loss from 16-bit logits");
        got = lp_get(&dx);
        check_bound(got, wd, N * Cc, u, 1e-6 * maxabs(wd, N * Cc), "bce_logits 16-bit dlogits");
        free(got);
        /* MSE */
        be->mse(be, &tx, &tt, gs, &tl, &tdx);
        wl = 0;
        for (int i = 0; i < N * Cc; i++) {
            wl += (x.d[i] - tg[i]) * (x.d[i] - tg[i]);
            wd[i] = 2 * (x.d[i] - tg[i]) * gs / (N * Cc);
        }
        wl /= N * Cc;
        check_bound(&loss, &wl, 1, 1e-6, 0, "mse loss from 16-bit predictions");
        got = lp_get(&dx);
        check_bound(got, wd, N * Cc, u, 1e-6 * maxabs(wd, N * Cc), "mse 16-bit dpred");
        free(got);
        lp_free(&x); lp_free(&dx); free(wd);
    }
    free(tg);
}

static void test_global_checks_half(void **state)
{
    (void)state;
    ref_seed(9);
    for (int d = 0; d < 2; d++) {
        bt_dtype dt = DTS[d];
        lp a = lp_rand(dt, 40000, -2, 2), b = lp_rand(dt, 17, -2, 2);
        float *c = ref_rand(1000, -1, 1);
        bt_tensor ts[3] = {lt1(&a), tv1(c, 1000), lt1(&b)};
        double want = 0;
        for (int i = 0; i < 40000; i++) want += a.d[i] * a.d[i];
        for (int i = 0; i < 1000; i++) want += (double)c[i] * c[i];
        for (int i = 0; i < 17; i++) want += b.d[i] * b.d[i];
        double got = be->sum_squares(be, ts, 3);
        assert_true(fabs(got - want) <= 1e-12 * want);
        assert_int_equal(be->all_finite(be, ts, 3), 1);
        /* the largest finite value is finite; overflow to inf and NaN are not */
        uint16_t big = dt == BT_F16 ? 0x7BFF : 0x7F7F, inf = dt == BT_F16 ? 0x7C00 : 0x7F80;
        uint16_t nan = dt == BT_F16 ? 0x7E00 : 0x7FC0;
        b.h[5] = big;
        assert_int_equal(be->all_finite(be, ts, 3), 1);
        b.h[5] = inf;
        assert_int_equal(be->all_finite(be, ts, 3), 0);
        assert_false(isfinite(be->sum_squares(be, ts, 3)));
        b.h[5] = nan | 0x8000;
        assert_int_equal(be->all_finite(be, ts, 3), 0);
        assert_true(isnan(be->sum_squares(be, ts, 3)));
        /* a value past F16's range converts to inf: the overflow the loss scaler looks for */
        float huge = 70000.0f;
        bt_tensor th = tv1(&huge, 1), t16 = bt_view1(a.h, dt, BT_DEV_CPU, 1);
        be->convert(be, &th, &t16);
        assert_int_equal(be->all_finite(be, &t16, 1), dt == BT_F16 ? 0 : 1);
        lp_free(&a); lp_free(&b); free(c);
    }
}

static void test_capabilities(void **state)
{
    (void)state;
    assert_int_equal(be->sm, 0);
    assert_int_equal(be->dtype_ok(be, BT_F32), 1);
    assert_int_equal(be->dtype_ok(be, BT_F16), 1);
    assert_int_equal(be->dtype_ok(be, BT_BF16), 1);
    assert_int_equal(be->dtype_ok(be, BT_I32), 0);
    assert_int_equal(be->set_tf32(be, 0), 0);
    assert_int_equal(be->set_tf32(be, 1), BT_ECONFIG);
    assert_non_null(strstr(bt_errmsg(), "tf32"));
}

int main(void)
{
    fesetround(FE_TONEAREST);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rounding_exhaustive),
        cmocka_unit_test(test_matmul_half),
        cmocka_unit_test(test_bias_grad_half),
        cmocka_unit_test(test_elementwise_half),
        cmocka_unit_test(test_layernorm_half),
        cmocka_unit_test(test_attention_half),
        cmocka_unit_test(test_attention_half_recompute),
        cmocka_unit_test(test_embed_gather_half),
        cmocka_unit_test(test_losses_half),
        cmocka_unit_test(test_global_checks_half),
        cmocka_unit_test(test_capabilities),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
