/* tests/unit/test_ops_attention.c — CPU backend: masked multi-head attention
 * with dropout on the probabilities, forward and backward; against the double
 * reference of ops_ref.h (dropout from bt_dropout_keep_raw element by element),
 * finite differences, and bit-identical reruns. Both backward kernels: the
 * one that reads the stored probabilities and the one that recomputes them
 * from lse (probs NULL), which must agree within 1e-5 relative in F32. */
#include "ops_ref.h"

static bt_backend *be;

static int setup(void **state) { (void)state; be = ref_backend(2); return 0; }
static int teardown(void **state) { (void)state; be->destroy(be); return 0; }

struct shape { int B, S, H, Dh; };

static int64_t nqkv(struct shape s) { return (int64_t)s.B * s.S * 3 * s.H * s.Dh; }
static int64_t nctx(struct shape s) { return (int64_t)s.B * s.S * s.H * s.Dh; }
static int64_t nprob(struct shape s) { return (int64_t)s.B * s.H * s.S * s.S; }

/* mask: batch b has (S - b - 1) real tokens then padding (batch 0: none padded). */
static int32_t *make_mask(struct shape s)
{
    int32_t *m = calloc((size_t)s.B * s.S, sizeof(int32_t));
    for (int b = 0; b < s.B; b++)
        for (int j = 0; j < s.S; j++) m[b * s.S + j] = (b == 0 || j < s.S - b - 1) ? 1 : 0;
    return m;
}

static void fwd(struct shape s, float *qkv, int32_t *mask, float scale, float p, bt_dropout_key k, float *ctx,
                float *probs, float *lse)
{
    bt_tensor tq = tvn(qkv, BT_F32, 4, s.B, s.S, 3 * s.H, s.Dh), tm = tvn(mask, BT_I32, 2, s.B, s.S, 0, 0);
    bt_tensor tc = tvn(ctx, BT_F32, 4, s.B, s.S, s.H, s.Dh), tp = tvn(probs, BT_F32, 4, s.B, s.H, s.S, s.S);
    bt_tensor tl = tvn(lse, BT_F32, 3, s.B, s.H, s.S, 0);
    be->attention_fwd(be, &tq, mask ? &tm : NULL, s.B, s.S, s.H, s.Dh, scale, p, k, &tc, probs ? &tp : NULL,
                      lse ? &tl : NULL);
}

static void bwd(struct shape s, float *qkv, int32_t *mask, float scale, float p, bt_dropout_key k, float *ctx,
                float *probs, float *dctx, float *dqkv)
{
    bt_tensor tq = tvn(qkv, BT_F32, 4, s.B, s.S, 3 * s.H, s.Dh), tm = tvn(mask, BT_I32, 2, s.B, s.S, 0, 0);
    bt_tensor tc = tvn(ctx, BT_F32, 4, s.B, s.S, s.H, s.Dh), tp = tvn(probs, BT_F32, 4, s.B, s.H, s.S, s.S);
    bt_tensor tdc = tvn(dctx, BT_F32, 4, s.B, s.S, s.H, s.Dh), tdq = tvn(dqkv, BT_F32, 4, s.B, s.S, 3 * s.H, s.Dh);
    be->attention_bwd(be, &tq, mask ? &tm : NULL, s.B, s.S, s.H, s.Dh, scale, p, k, &tc, &tp, NULL, &tdc, &tdq);
}

/* The backward that recomputes P from the forward's lse (no probs). */
static void bwd_lse(struct shape s, float *qkv, int32_t *mask, float scale, float p, bt_dropout_key k, float *ctx,
                    float *lse, float *dctx, float *dqkv)
{
    bt_tensor tq = tvn(qkv, BT_F32, 4, s.B, s.S, 3 * s.H, s.Dh), tm = tvn(mask, BT_I32, 2, s.B, s.S, 0, 0);
    bt_tensor tc = tvn(ctx, BT_F32, 4, s.B, s.S, s.H, s.Dh), tl = tvn(lse, BT_F32, 3, s.B, s.H, s.S, 0);
    bt_tensor tdc = tvn(dctx, BT_F32, 4, s.B, s.S, s.H, s.Dh), tdq = tvn(dqkv, BT_F32, 4, s.B, s.S, 3 * s.H, s.Dh);
    be->attention_bwd(be, &tq, mask ? &tm : NULL, s.B, s.S, s.H, s.Dh, scale, p, k, &tc, NULL, &tl, &tdc, &tdq);
}

static void forward_case(struct shape s, float p, int masked)
{
    int64_t nq = nqkv(s), nc = nctx(s), np = nprob(s);
    float *qkv = ref_rand(nq, -1.5, 1.5), *ctx = ref_zeros(nc), *probs = ref_zeros(np), *lse = ref_zeros(np / s.S);
    int32_t *mask = masked ? make_mask(s) : NULL;
    float scale = 1.0f / sqrtf((float)s.Dh);
    bt_dropout_key k = {.seed = 77, .step = 3, .micro = 0, .layer = 2, .site = BT_SITE_ATTN_PROBS};
    fwd(s, qkv, mask, scale, p, k, ctx, probs, lse);
    double *qd = ref_dbl(qkv, nq), *wc = calloc(nc, sizeof(double)), *wp = calloc(np, sizeof(double));
    double *mult = p > 0 ? ref_dropout_mult(k, np, p) : NULL;
    ref_attention(qd, mask, s.B, s.S, s.H, s.Dh, scale, mult, wc, wp);
    char what[96];
    snprintf(what, sizeof what, "attention ctx B=%d S=%d H=%d Dh=%d p=%g mask=%d", s.B, s.S, s.H, s.Dh, p, masked);
    check_close(ctx, wc, nc, 2e-6, what);
    check_close(probs, wp, np, 2e-6, "attention probs (pre-dropout)");
    /* padding keys get exactly zero probability; each row sums to 1 */
    for (int b = 0; b < s.B; b++)
        for (int h = 0; h < s.H; h++)
            for (int i = 0; i < s.S; i++) {
                double sum = 0;
                for (int j = 0; j < s.S; j++) {
                    float pr = probs[(((int64_t)b * s.H + h) * s.S + i) * s.S + j];
                    if (mask && !mask[b * s.S + j]) assert_true(pr == 0.0f);
                    sum += pr;
                }
                assert_true(fabs(sum - 1.0) < 1e-5);
            }
    /* lse [B,H,S] = log sum_j exp(masked, scaled score) */
    double *wl = calloc(np / s.S, sizeof(double));
    for (int b = 0; b < s.B; b++)
        for (int h = 0; h < s.H; h++)
            for (int i = 0; i < s.S; i++) {
                double mx = -INFINITY, *sc = calloc(s.S, sizeof(double)), sum = 0;
                for (int j = 0; j < s.S; j++) {
                    double d = 0;
                    for (int e = 0; e < s.Dh; e++)
                        d += qd[(((int64_t)b * s.S + i) * 3 + 0) * s.H * s.Dh + h * s.Dh + e] *
                             qd[(((int64_t)b * s.S + j) * 3 + 1) * s.H * s.Dh + h * s.Dh + e];
                    sc[j] = d * scale + ((mask && !mask[b * s.S + j]) ? -3.4028234663852886e38 : 0.0);
                    mx = fmax(mx, sc[j]);
                }
                for (int j = 0; j < s.S; j++) sum += exp(sc[j] - mx);
                wl[((int64_t)b * s.H + h) * s.S + i] = mx + log(sum);
                free(sc);
            }
    check_close(lse, wl, np / s.S, 1e-6, "attention lse");
    free(wl);
    free(qkv); free(ctx); free(probs); free(lse); free(mask); free(qd); free(wc); free(wp); free(mult);
}

static void test_attention_forward(void **state)
{
    (void)state;
    ref_seed(21);
    forward_case((struct shape){2, 7, 3, 4}, 0.0f, 1);
    forward_case((struct shape){1, 5, 1, 8}, 0.0f, 0);
    forward_case((struct shape){3, 9, 2, 5}, 0.1f, 1);   /* rows not a multiple of 4: Philox blocks straddle rows */
    forward_case((struct shape){4, 16, 4, 16}, 0.25f, 1); /* several (b,h) per thread */
}

static void test_attention_all_masked_row(void **state)
{
    (void)state;
    ref_seed(22);
    struct shape s = {1, 4, 1, 2};
    float *qkv = ref_rand(nqkv(s), -1, 1), *ctx = ref_zeros(nctx(s)), *probs = ref_zeros(nprob(s));
    int32_t mask[4] = {0, 0, 0, 0};
    bt_dropout_key k = {0};
    fwd(s, qkv, mask, 0.5f, 0.0f, k, ctx, probs, NULL);
    /* as torch: every score is ~finfo.min, the softmax is uniform */
    for (int i = 0; i < 16; i++) assert_true(fabsf(probs[i] - 0.25f) < 1e-6f);
    free(qkv); free(ctx); free(probs);
}

struct att_ctx { struct shape s; const int32_t *mask; double scale; const double *mult, *w; };
static double att_loss(void *c_, const double *qkv)
{
    struct att_ctx *c = c_;
    int64_t nc = nctx(c->s);
    double *ctx = calloc(nc, sizeof(double)), L = 0;
    ref_attention(qkv, c->mask, c->s.B, c->s.S, c->s.H, c->s.Dh, c->scale, c->mult, ctx, NULL);
    for (int64_t i = 0; i < nc; i++) L += c->w[i] * ctx[i];
    free(ctx);
    return L;
}

static void backward_fd_case(struct shape s, float p)
{
    int64_t nq = nqkv(s), nc = nctx(s), np = nprob(s);
    float *qkv = ref_rand(nq, -1, 1), *ctx = ref_zeros(nc), *probs = ref_zeros(np);
    float *w = ref_rand(nc, -1, 1), *dqkv = ref_rand(nq, 5, 6); /* garbage: must be overwritten */
    int32_t *mask = make_mask(s);
    float scale = 1.0f / sqrtf((float)s.Dh);
    bt_dropout_key k = {.seed = 5, .step = 11, .micro = 2, .layer = 1, .site = BT_SITE_ATTN_PROBS};
    fwd(s, qkv, mask, scale, p, k, ctx, probs, NULL);
    bwd(s, qkv, mask, scale, p, k, ctx, probs, w, dqkv);
    double *qd = ref_dbl(qkv, nq), *wd = ref_dbl(w, nc), *g = calloc(nq, sizeof(double));
    double *mult = p > 0 ? ref_dropout_mult(k, np, p) : NULL;
    struct att_ctx c = {s, mask, scale, mult, wd};
    ref_fd_grad(att_loss, &c, qd, nq, 1e-6, g);
    char what[96];
    snprintf(what, sizeof what, "attention dqkv vs finite differences (mask, p=%g)", p);
    check_close(dqkv, g, nq, 2e-5, what);
    free(qkv); free(ctx); free(probs); free(w); free(dqkv); free(mask); free(qd); free(wd); free(g); free(mult);
}

static void test_attention_backward_fd(void **state)
{
    (void)state;
    ref_seed(23);
    backward_fd_case((struct shape){2, 5, 2, 4}, 0.0f);
    backward_fd_case((struct shape){3, 6, 2, 3}, 0.0f);
    backward_fd_case((struct shape){2, 7, 2, 4}, 0.3f); /* fixed mask: still differentiable */
}

static void test_attention_determinism(void **state)
{
    (void)state;
    ref_seed(24);
    struct shape s = {3, 64, 4, 32};
    int64_t nq = nqkv(s), nc = nctx(s), np = nprob(s);
    float *qkv = ref_rand(nq, -2, 2), *dctx = ref_rand(nc, -1, 1);
    int32_t *mask = make_mask(s);
    bt_dropout_key k = {.seed = 99, .step = 1, .layer = 5, .site = BT_SITE_ATTN_PROBS};
    float *ctx[2], *probs[2], *dq[2];
    for (int r = 0; r < 2; r++) {
        ctx[r] = ref_zeros(nc); probs[r] = ref_zeros(np); dq[r] = ref_zeros(nq);
        fwd(s, qkv, mask, 0.125f, 0.1f, k, ctx[r], probs[r], NULL);
        bwd(s, qkv, mask, 0.125f, 0.1f, k, ctx[r], probs[r], dctx, dq[r]);
    }
    check_bits(ctx[0], ctx[1], nc, "attention ctx");
    /* without probs (inference): the same ctx from private scratch */
    float *c0 = ref_zeros(nc);
    fwd(s, qkv, mask, 0.125f, 0.1f, k, c0, NULL, NULL);
    check_bits(ctx[0], c0, nc, "attention ctx without probs");
    free(c0);
    check_bits(probs[0], probs[1], np, "attention probs");
    check_bits(dq[0], dq[1], nq, "attention dqkv");
    /* each (b,h) is computed whole by one thread: independent of the thread count */
    bt_backend *b1 = ref_backend(1), *keep = be;
    be = b1;
    float *c1 = ref_zeros(nc), *p1 = ref_zeros(np), *d1 = ref_zeros(nq);
    fwd(s, qkv, mask, 0.125f, 0.1f, k, c1, p1, NULL);
    bwd(s, qkv, mask, 0.125f, 0.1f, k, c1, p1, dctx, d1);
    be = keep;
    b1->destroy(b1);
    check_bits(ctx[0], c1, nc, "attention ctx 1 vs 2 threads");
    check_bits(dq[0], d1, nq, "attention dqkv 1 vs 2 threads");
    /* a different dropout key changes the output */
    bt_dropout_key k2 = k;
    k2.step++;
    fwd(s, qkv, mask, 0.125f, 0.1f, k2, c1, p1, NULL);
    assert_true(memcmp(c1, ctx[0], sizeof(float) * nc) != 0);
    for (int r = 0; r < 2; r++) { free(ctx[r]); free(probs[r]); free(dq[r]); }
    free(c1); free(p1); free(d1); free(qkv); free(dctx); free(mask);
}

/* Stored probabilities vs recomputation from lse: the forward gives the same
 * bits with and without probs; the two backward kernels agree within 1e-5
 * relative (F32), with dropout, padding, a batch whose keys are all padding,
 * and S not a multiple of the 64-row tile. */
static void recompute_case(struct shape s, float p, int dead_batch)
{
    int64_t nq = nqkv(s), nc = nctx(s), np = nprob(s), nl = np / s.S;
    float *qkv = ref_rand(nq, -2, 2), *dctx = ref_rand(nc, -1, 1);
    float *c1 = ref_zeros(nc), *c2 = ref_zeros(nc), *probs = ref_zeros(np), *l1 = ref_zeros(nl), *l2 = ref_zeros(nl);
    float *d1 = ref_rand(nq, 5, 6), *d2 = ref_rand(nq, 5, 6); /* garbage: must be overwritten */
    int32_t *mask = make_mask(s);
    if (dead_batch >= 0)
        for (int j = 0; j < s.S; j++) mask[dead_batch * s.S + j] = 0;
    float scale = 1.0f / sqrtf((float)s.Dh);
    bt_dropout_key k = {.seed = 3, .step = 8, .micro = 1, .layer = 4, .site = BT_SITE_ATTN_PROBS};
    fwd(s, qkv, mask, scale, p, k, c1, probs, l1);
    fwd(s, qkv, mask, scale, p, k, c2, NULL, l2);
    check_bits(c1, c2, nc, "attention ctx with and without probs");
    check_bits(l1, l2, nl, "attention lse with and without probs");
    bwd(s, qkv, mask, scale, p, k, c1, probs, dctx, d1);
    bwd_lse(s, qkv, mask, scale, p, k, c2, l2, dctx, d2);
    double *want = ref_dbl(d1, nq);
    char what[128];
    snprintf(what, sizeof what, "attention dqkv recomputed vs stored probs B=%d S=%d H=%d Dh=%d p=%g dead=%d", s.B,
             s.S, s.H, s.Dh, p, dead_batch);
    check_close(d2, want, nq, 1e-5, what);
    /* each (b, h) on one thread, tiles in order: independent of the thread count */
    bt_backend *b1 = ref_backend(1), *keep = be;
    be = b1;
    float *d3 = ref_zeros(nq);
    bwd_lse(s, qkv, mask, scale, p, k, c2, l2, dctx, d3);
    be = keep;
    b1->destroy(b1);
    check_bits(d2, d3, nq, "recomputing attention backward, 1 vs 2 threads");
    free(qkv); free(dctx); free(c1); free(c2); free(probs); free(l1); free(l2); free(d1); free(d2); free(d3);
    free(mask); free(want);
}

static void test_attention_recompute_agrees(void **state)
{
    (void)state;
    ref_seed(25);
    recompute_case((struct shape){2, 150, 2, 16}, 0.0f, -1);  /* three tiles, the last one partial */
    recompute_case((struct shape){3, 64, 3, 8}, 0.1f, -1);    /* exactly one tile */
    recompute_case((struct shape){2, 130, 2, 32}, 0.25f, 1);  /* batch 1: every key is padding */
    recompute_case((struct shape){1, 300, 1, 64}, 0.1f, -1);  /* past the stored-probability length */
}

static void backward_fd_lse_case(struct shape s, float p)
{
    int64_t nq = nqkv(s), nc = nctx(s), np = nprob(s);
    float *qkv = ref_rand(nq, -1, 1), *ctx = ref_zeros(nc), *lse = ref_zeros(np / s.S);
    float *w = ref_rand(nc, -1, 1), *dqkv = ref_rand(nq, 5, 6);
    int32_t *mask = make_mask(s);
    float scale = 1.0f / sqrtf((float)s.Dh);
    bt_dropout_key k = {.seed = 6, .step = 2, .micro = 0, .layer = 3, .site = BT_SITE_ATTN_PROBS};
    fwd(s, qkv, mask, scale, p, k, ctx, NULL, lse);
    bwd_lse(s, qkv, mask, scale, p, k, ctx, lse, w, dqkv);
    double *qd = ref_dbl(qkv, nq), *wd = ref_dbl(w, nc), *g = calloc(nq, sizeof(double));
    double *mult = p > 0 ? ref_dropout_mult(k, np, p) : NULL;
    struct att_ctx c = {s, mask, scale, mult, wd};
    ref_fd_grad(att_loss, &c, qd, nq, 1e-6, g);
    char what[96];
    snprintf(what, sizeof what, "recomputing attention dqkv vs finite differences (S=%d, p=%g)", s.S, p);
    check_close(dqkv, g, nq, 2e-5, what);
    free(qkv); free(ctx); free(lse); free(w); free(dqkv); free(mask); free(qd); free(wd); free(g); free(mult);
}

static void test_attention_backward_lse_fd(void **state)
{
    (void)state;
    ref_seed(26);
    backward_fd_lse_case((struct shape){2, 66, 1, 3}, 0.0f); /* two tiles */
    backward_fd_lse_case((struct shape){2, 70, 1, 2}, 0.3f);
}

static void test_attention_wants_probs(void **state)
{
    (void)state;
    /* monotone in S: stored up to some length, recomputed beyond */
    assert_true(be->attention_wants_probs(be, 16, 64));
    assert_false(be->attention_wants_probs(be, 4096, 64));
    int prev = 1;
    for (int S = 1; S <= 2048; S += 7) {
        int w = be->attention_wants_probs(be, S, 64);
        assert_true(w <= prev);
        prev = w;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attention_forward),
        cmocka_unit_test(test_attention_all_masked_row),
        cmocka_unit_test(test_attention_backward_fd),
        cmocka_unit_test(test_attention_determinism),
        cmocka_unit_test(test_attention_recompute_agrees),
        cmocka_unit_test(test_attention_backward_lse_fd),
        cmocka_unit_test(test_attention_wants_probs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
