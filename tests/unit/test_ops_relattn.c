/* tests/unit/test_ops_relattn.c — CPU backend: the disentangled (DeBERTa)
 * attention rel_attention_fwd / rel_attention_bwd against a double reference
 * written from kernels/backend.h's formula (dropout from bt_dropout_keep_raw
 * element by element), finite differences of that reference for dqkv and
 * dpos, and bit-identical results with 1 and 3 threads. */
#include "ops_ref.h"

struct rshape { int B, S, H, Dh, R, c2p, p2c; };

static int64_t nqkv(struct rshape s) { return (int64_t)s.B * s.S * 3 * s.H * s.Dh; }
static int64_t nctx(struct rshape s) { return (int64_t)s.B * s.S * s.H * s.Dh; }
static int64_t npos(struct rshape s) { return (int64_t)s.R * 3 * s.H * s.Dh; }
static int64_t nprob(struct rshape s) { return (int64_t)s.B * s.H * s.S * s.S; }

/* relidx [2S-1]: a clamp of delta into [0,R) (any table in range will do) */
static int32_t *make_relidx(struct rshape s)
{
    int32_t *r = calloc(2 * (size_t)s.S, sizeof(int32_t));
    int k = s.R / 2;
    for (int d = 0; d < 2 * s.S - 1; d++) {
        int v = d - (s.S - 1) + k;
        r[d] = v < 0 ? 0 : v > s.R - 1 ? s.R - 1 : v;
    }
    return r;
}

/* batch b has S - b real tokens (b = 0: none padded) */
static int32_t *make_mask(struct rshape s)
{
    int32_t *m = calloc((size_t)s.B * s.S, sizeof(int32_t));
    for (int b = 0; b < s.B; b++)
        for (int j = 0; j < s.S; j++) m[b * s.S + j] = j < s.S - b;
    return m;
}

struct rctx {
    struct rshape s;
    const int32_t *mask, *ri;
    double scale;
    const double *mult, *w;
    int npq; /* entries of qkv before pos in the packed vector */
};

/* ctx (double) from packed x = qkv | pos */
static void ref_relattn(const struct rctx *c, const double *x, double *ctx)
{
    struct rshape s = c->s;
    const double *qkv = x, *pos = x + c->npq;
    int ld = 3 * s.H * s.Dh;
    double *p = calloc((size_t)s.S, sizeof(double));
    for (int b = 0; b < s.B; b++)
        for (int h = 0; h < s.H; h++)
            for (int i = 0; i < s.S; i++) {
                double *o = ctx + ((int64_t)(b * s.S + i) * s.H + h) * s.Dh;
                for (int d = 0; d < s.Dh; d++) o[d] = 0;
                if (!c->mask[b * s.S + i]) continue;
                const double *q = qkv + (int64_t)(b * s.S + i) * ld + h * s.Dh;
                double mx = -1e300, sum = 0;
                for (int j = 0; j < s.S; j++) {
                    const double *k = qkv + (int64_t)(b * s.S + j) * ld + s.H * s.Dh + h * s.Dh;
                    int r = c->ri[i - j + s.S - 1];
                    const double *pq = pos + (int64_t)r * ld + h * s.Dh, *pk = pos + (int64_t)r * ld + s.H * s.Dh + h * s.Dh;
                    double v = 0;
                    for (int d = 0; d < s.Dh; d++) v += q[d] * k[d] + s.c2p * q[d] * pk[d] + s.p2c * k[d] * pq[d];
                    p[j] = c->mask[b * s.S + j] ? v * c->scale : -1e300;
                    mx = p[j] > mx ? p[j] : mx;
                }
                for (int j = 0; j < s.S; j++) sum += (p[j] = c->mask[b * s.S + j] ? exp(p[j] - mx) : 0.0);
                for (int j = 0; j < s.S; j++) {
                    double pd = p[j] / sum * (c->mult ? c->mult[(((int64_t)b * s.H + h) * s.S + i) * s.S + j] : 1.0);
                    const double *v = qkv + (int64_t)(b * s.S + j) * ld + 2 * s.H * s.Dh + h * s.Dh;
                    for (int d = 0; d < s.Dh; d++) o[d] += pd * v[d];
                }
            }
    free(p);
}

static double rel_loss(void *c_, const double *x)
{
    struct rctx *c = c_;
    int64_t nc = nctx(c->s);
    double *ctx = calloc((size_t)nc, sizeof(double)), L = 0;
    ref_relattn(c, x, ctx);
    for (int64_t i = 0; i < nc; i++) L += c->w[i] * ctx[i];
    free(ctx);
    return L;
}

static bt_rel_attn args_of(struct rshape s, float p)
{
    bt_rel_attn a = {s.B, s.S, s.H, s.Dh, s.R, s.c2p, s.p2c,
                     1.0f / sqrtf((float)s.Dh * (float)(1 + s.c2p + s.p2c)), p,
                     {.seed = 9, .step = 3, .micro = 1, .layer = 2, .site = BT_SITE_ATTN_PROBS}};
    return a;
}

/* forward then backward on be; out: ctx, probs, dqkv, dpos */
static void run(bt_backend *be, struct rshape s, float p, float *qkv, float *pos, int32_t *ri, int32_t *mask,
                float *w, float *ctx, float *probs, float *dqkv, float *dpos)
{
    bt_rel_attn a = args_of(s, p);
    bt_tensor tq = tvn(qkv, BT_F32, 4, s.B, s.S, 3 * s.H, s.Dh), tp = tvn(pos, BT_F32, 3, s.R, 3 * s.H, s.Dh, 0);
    bt_tensor tr = tvi(ri, 2 * s.S - 1), tm = tvn(mask, BT_I32, 2, s.B, s.S, 0, 0);
    bt_tensor tc = tvn(ctx, BT_F32, 4, s.B, s.S, s.H, s.Dh), tpr = tvn(probs, BT_F32, 4, s.B, s.H, s.S, s.S);
    bt_tensor tw = tvn(w, BT_F32, 4, s.B, s.S, s.H, s.Dh), tdq = tvn(dqkv, BT_F32, 4, s.B, s.S, 3 * s.H, s.Dh);
    bt_tensor tdp = tvn(dpos, BT_F32, 3, s.R, 3 * s.H, s.Dh, 0);
    be->rel_attention_fwd(be, &tq, &tp, &tr, &tm, &a, &tc, &tpr);
    be->rel_attention_bwd(be, &tq, &tp, &tr, &tm, &a, &tpr, &tw, &tdq, &tdp);
}

static void fd_case(struct rshape s, float p)
{
    bt_backend *be = ref_backend(2);
    int64_t nq = nqkv(s), np = npos(s), nc = nctx(s);
    float *qkv = ref_rand(nq, -1, 1), *pos = ref_rand(np, -1, 1), *w = ref_rand(nc, -1, 1);
    float *ctx = ref_rand(nc, 5, 6), *probs = ref_zeros(nprob(s)), *dqkv = ref_rand(nq, 5, 6), *dpos = ref_rand(np, 5, 6);
    int32_t *ri = make_relidx(s), *mask = make_mask(s);
    run(be, s, p, qkv, pos, ri, mask, w, ctx, probs, dqkv, dpos);
    double *x = malloc(sizeof(double) * (size_t)(nq + np)), *g = calloc((size_t)(nq + np), sizeof(double));
    for (int64_t i = 0; i < nq; i++) x[i] = qkv[i];
    for (int64_t i = 0; i < np; i++) x[nq + i] = pos[i];
    double *wd = ref_dbl(w, nc), *mult = p > 0 ? ref_dropout_mult(args_of(s, p).key, nprob(s), p) : NULL;
    struct rctx c = {s, mask, ri, args_of(s, p).scale, mult, wd, (int)nq};
    double *want = calloc((size_t)nc, sizeof(double));
    ref_relattn(&c, x, want);
    char what[128];
    snprintf(what, sizeof what, "rel attention ctx (c2p %d, p2c %d, p %g)", s.c2p, s.p2c, p);
    check_close(ctx, want, nc, 2e-5, what);
    ref_fd_grad(rel_loss, &c, x, nq + np, 1e-6, g);
    snprintf(what, sizeof what, "rel attention dqkv vs finite differences (c2p %d, p2c %d, p %g)", s.c2p, s.p2c, p);
    check_close(dqkv, g, nq, 2e-5, what);
    snprintf(what, sizeof what, "rel attention dpos vs finite differences (c2p %d, p2c %d, p %g)", s.c2p, s.p2c, p);
    check_close(dpos, g + nq, np, 2e-5, what);
    free(qkv); free(pos); free(w); free(ctx); free(probs); free(dqkv); free(dpos); free(ri); free(mask);
    free(x); free(g); free(wd); free(mult); free(want);
    be->destroy(be);
}

static void test_relattn_reference_and_fd(void **state)
{
    (void)state;
    ref_seed(31);
    fd_case((struct rshape){2, 5, 2, 3, 6, 1, 1}, 0.0f);
    fd_case((struct rshape){3, 6, 2, 4, 4, 1, 0}, 0.0f); /* R < 2S - 1: clamped rows */
    fd_case((struct rshape){2, 4, 1, 3, 8, 0, 1}, 0.0f);
    fd_case((struct rshape){2, 6, 2, 3, 6, 1, 1}, 0.3f); /* dropout on the probabilities */
}

/* 1 and 3 threads (and two runs) give the same bits */
static void test_relattn_determinism(void **state)
{
    (void)state;
    ref_seed(32);
    struct rshape s = {3, 9, 4, 5, 10, 1, 1};
    int64_t nq = nqkv(s), np = npos(s), nc = nctx(s), npr = nprob(s);
    float *qkv = ref_rand(nq, -1, 1), *pos = ref_rand(np, -1, 1), *w = ref_rand(nc, -1, 1);
    int32_t *ri = make_relidx(s), *mask = make_mask(s);
    float *out[3][4];
    int threads[3] = {1, 3, 3};
    for (int t = 0; t < 3; t++) {
        bt_backend *be = ref_backend(threads[t]);
        out[t][0] = ref_zeros(nc); out[t][1] = ref_zeros(npr); out[t][2] = ref_zeros(nq); out[t][3] = ref_zeros(np);
        run(be, s, 0.2f, qkv, pos, ri, mask, w, out[t][0], out[t][1], out[t][2], out[t][3]);
        be->destroy(be);
    }
    int64_t n[4] = {nc, npr, nq, np};
    for (int t = 1; t < 3; t++)
        for (int k = 0; k < 4; k++) check_bits(out[0][k], out[t][k], n[k], "rel attention, 1 vs 3 threads");
    for (int t = 0; t < 3; t++)
        for (int k = 0; k < 4; k++) free(out[t][k]);
    free(qkv); free(pos); free(w); free(ri); free(mask);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relattn_reference_and_fd),
        cmocka_unit_test(test_relattn_determinism),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
