/* tests/unit/test_ops_norm.c — CPU backend: layer norm (fused residual) forward
 * and backward, embeddings forward/backward (padding_idx, frozen tables), row
 * gathers; against double references and finite differences; reruns bitwise. */
#include "ops_ref.h"

static bt_backend *be;

static int setup(void **state) { (void)state; be = ref_backend(2); return 0; }
static int teardown(void **state) { (void)state; be->destroy(be); return 0; }

static void test_layernorm_fwd(void **state)
{
    (void)state;
    ref_seed(11);
    int R = 37, D = 96;
    float eps = 1e-12f;
    float *x = ref_rand(R * D, -3, 5), *res = ref_rand(R * D, -1, 1), *g = ref_rand(D, 0.5, 1.5), *b = ref_rand(D, -1, 1);
    /* a constant row (variance 0: eps matters) and a large-offset row */
    for (int j = 0; j < D; j++) { x[j] = 2.0f; res[j] = 0.0f; x[D + j] = 1000.0f + (j % 3); res[D + j] = 0.0f; }
    float *y = ref_zeros(R * D), *mu = ref_zeros(R), *rs = ref_zeros(R), *h = ref_zeros(R * D);
    bt_tensor tx = tv2(x, R, D), tr = tv2(res, R, D), tg = tv1(g, D), tb = tv1(b, D), ty = tv2(y, R, D);
    bt_tensor tm = tv1(mu, R), ts = tv1(rs, R), th = tv2(h, R, D);
    be->layernorm_fwd(be, &tx, &tr, &tg, &tb, eps, &ty, &tm, &ts, &th);
    double *xd = ref_dbl(x, R * D), *rd = ref_dbl(res, R * D), *gd = ref_dbl(g, D), *bd = ref_dbl(b, D);
    double *want = calloc(R * D, sizeof(double)), *wm = calloc(R, sizeof(double)), *wr = calloc(R, sizeof(double));
    ref_layernorm(xd, rd, gd, bd, eps, R, D, want, wm, wr);
    check_close(y, want, R * D, 1e-6, "layernorm y");
    check_close(mu, wm, R, 1e-7, "layernorm mean");
    for (int r = 0; r < R; r++) assert_true(fabs(rs[r] - wr[r]) <= 1e-6 * wr[r]);
    for (int i = 0; i < R * D; i++) assert_true(h[i] == x[i] + res[i]);
    assert_true(fabs(rs[0] - 1e6) <= 1.0); /* 1/sqrt(0 + 1e-12) */
    /* no residual, no h_out, y aliasing x (in place) */
    float *xi = ref_copy(x, R * D);
    bt_tensor txi = tv2(xi, R, D);
    be->layernorm_fwd(be, &txi, NULL, &tg, &tb, eps, &txi, &tm, &ts, NULL);
    ref_layernorm(xd, NULL, gd, bd, eps, R, D, want, wm, wr);
    check_close(xi, want, R * D, 1e-6, "layernorm in place");
    free(x); free(res); free(g); free(b); free(y); free(mu); free(rs); free(h); free(xi);
    free(xd); free(rd); free(gd); free(bd); free(want); free(wm); free(wr);
}

struct ln_ctx { int R, D; double eps; const double *h, *g, *b, *w; int which; };
static double ln_loss(void *c_, const double *v)
{
    struct ln_ctx *c = c_;
    int n = c->R * c->D;
    double *y = calloc(n, sizeof(double));
    ref_layernorm(c->which == 0 ? v : c->h, NULL, c->which == 1 ? v : c->g, c->which == 2 ? v : c->b, c->eps, c->R,
                  c->D, y, NULL, NULL);
    double L = 0;
    for (int i = 0; i < n; i++) L += c->w[i] * y[i];
    free(y);
    return L;
}

static void test_layernorm_bwd_fd(void **state)
{
    (void)state;
    ref_seed(12);
    int R = 5, D = 8;
    float eps = 1e-5f;
    float *x = ref_rand(R * D, -2, 2), *res = ref_rand(R * D, -1, 1), *g = ref_rand(D, 0.5, 1.5), *b = ref_rand(D, -1, 1);
    float *w = ref_rand(R * D, -1, 1), *y = ref_zeros(R * D), *mu = ref_zeros(R), *rs = ref_zeros(R), *h = ref_zeros(R * D);
    float *dh = ref_zeros(R * D), *dg = ref_rand(D, -1, 1), *db = ref_rand(D, -1, 1);
    float *dg0 = ref_copy(dg, D), *db0 = ref_copy(db, D);
    bt_tensor tx = tv2(x, R, D), tr = tv2(res, R, D), tg = tv1(g, D), tb = tv1(b, D), ty = tv2(y, R, D);
    bt_tensor tm = tv1(mu, R), ts = tv1(rs, R), th = tv2(h, R, D), tw = tv2(w, R, D), tdh = tv2(dh, R, D);
    bt_tensor tdg = tv1(dg, D), tdb = tv1(db, D);
    be->layernorm_fwd(be, &tx, &tr, &tg, &tb, eps, &ty, &tm, &ts, &th);
    be->layernorm_bwd(be, &th, &tw, &tg, &tm, &ts, &tdh, &tdg, &tdb);
    double *hd = ref_dbl(h, R * D), *gd = ref_dbl(g, D), *bd = ref_dbl(b, D), *wd = ref_dbl(w, R * D);
    double *fd = calloc(R * D, sizeof(double));
    struct ln_ctx c = {R, D, eps, hd, gd, bd, wd, 0};
    ref_fd_grad(ln_loss, &c, hd, R * D, 1e-6, fd);
    check_close(dh, fd, R * D, 1e-5, "layernorm dh vs finite differences");
    c.which = 1;
    ref_fd_grad(ln_loss, &c, gd, D, 1e-6, fd);
    for (int j = 0; j < D; j++) fd[j] += dg0[j]; /* dgamma accumulates */
    check_close(dg, fd, D, 1e-5, "layernorm dgamma (+=) vs finite differences");
    c.which = 2;
    ref_fd_grad(ln_loss, &c, bd, D, 1e-6, fd);
    for (int j = 0; j < D; j++) fd[j] += db0[j];
    check_close(db, fd, D, 1e-5, "layernorm dbeta (+=) vs finite differences");
    /* dh may alias dy; NULL dgamma/dbeta (frozen) */
    float *dh2 = ref_copy(w, R * D);
    bt_tensor tdh2 = tv2(dh2, R, D);
    be->layernorm_bwd(be, &th, &tdh2, &tg, &tm, &ts, &tdh2, NULL, NULL);
    check_bits(dh, dh2, R * D, "layernorm_bwd dh aliasing dy");
    free(x); free(res); free(g); free(b); free(w); free(y); free(mu); free(rs); free(h); free(dh); free(dg); free(db);
    free(dg0); free(db0); free(dh2); free(hd); free(gd); free(bd); free(wd); free(fd);
}

static void test_layernorm_determinism(void **state)
{
    (void)state;
    ref_seed(13);
    int R = 512, D = 384;
    float *x = ref_rand(R * D, -2, 2), *res = ref_rand(R * D, -1, 1), *g = ref_rand(D, 0.5, 1.5), *b = ref_rand(D, -1, 1);
    float *dy = ref_rand(R * D, -1, 1);
    float *y[2], *h[2], *dh[2], *dg[2], *db[2], *mu = ref_zeros(R), *rs = ref_zeros(R);
    for (int r = 0; r < 2; r++) {
        y[r] = ref_zeros(R * D); h[r] = ref_zeros(R * D); dh[r] = ref_zeros(R * D); dg[r] = ref_zeros(D); db[r] = ref_zeros(D);
        bt_tensor tx = tv2(x, R, D), tr = tv2(res, R, D), tg = tv1(g, D), tb = tv1(b, D), ty = tv2(y[r], R, D);
        bt_tensor tm = tv1(mu, R), ts = tv1(rs, R), th = tv2(h[r], R, D), tdy = tv2(dy, R, D), tdh = tv2(dh[r], R, D);
        bt_tensor tdg = tv1(dg[r], D), tdb = tv1(db[r], D);
        be->layernorm_fwd(be, &tx, &tr, &tg, &tb, 1e-12f, &ty, &tm, &ts, &th);
        be->layernorm_bwd(be, &th, &tdy, &tg, &tm, &ts, &tdh, &tdg, &tdb);
    }
    check_bits(y[0], y[1], R * D, "layernorm y");
    check_bits(dh[0], dh[1], R * D, "layernorm dh");
    check_bits(dg[0], dg[1], D, "layernorm dgamma");
    check_bits(db[0], db[1], D, "layernorm dbeta");
    for (int r = 0; r < 2; r++) { free(y[r]); free(h[r]); free(dh[r]); free(dg[r]); free(db[r]); }
    free(x); free(res); free(g); free(b); free(dy); free(mu); free(rs);
}

/* ---- embeddings ---- */
struct emb_ctx { int N, D; const int32_t *ids, *pids, *tids; const double *W, *P, *T, *w; int which; };
static double emb_loss(void *c_, const double *v)
{
    struct emb_ctx *c = c_;
    const double *W = c->which == 0 ? v : c->W, *P = c->which == 1 ? v : c->P, *T = c->which == 2 ? v : c->T;
    double L = 0;
    for (int i = 0; i < c->N; i++)
        for (int j = 0; j < c->D; j++)
            L += c->w[i * c->D + j] * (W[c->ids[i] * c->D + j] + P[c->pids[i] * c->D + j] + T[c->tids[i] * c->D + j]);
    return L;
}

static void test_embeddings(void **state)
{
    (void)state;
    ref_seed(14);
    enum { N = 9, D = 6, V = 7, NP = 10, NT = 2, PAD = 0 };
    int32_t ids[N] = {3, 0, 5, 3, 6, 0, 1, 3, 2}, pids[N] = {0, 1, 2, 3, 4, 0, 1, 2, 9}, tids[N] = {0, 0, 1, 1, 0, 1, 0, 0, 1};
    float *W = ref_rand(V * D, -1, 1), *P = ref_rand(NP * D, -1, 1), *T = ref_rand(NT * D, -1, 1), *out = ref_zeros(N * D);
    bt_tensor ti = tvi(ids, N), tp = tvi(pids, N), tt = tvi(tids, N);
    bt_tensor tW = tv2(W, V, D), tP = tv2(P, NP, D), tT = tv2(T, NT, D), to = tv2(out, N, D);
    be->embed_fwd(be, &ti, &tp, &tt, &tW, &tP, &tT, &to);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++)
            assert_true(fabsf(out[i * D + j] - (W[ids[i] * D + j] + T[tids[i] * D + j] + P[pids[i] * D + j])) < 1e-6f);
    float *w = ref_rand(N * D, -1, 1), *dW = ref_rand(V * D, -1, 1), *dP = ref_zeros(NP * D), *dT = ref_zeros(NT * D);
    float *dW0 = ref_copy(dW, V * D);
    bt_tensor tw = tv2(w, N, D), tdW = tv2(dW, V, D), tdP = tv2(dP, NP, D), tdT = tv2(dT, NT, D);
    be->embed_bwd(be, &ti, &tp, &tt, &tw, PAD, &tdW, &tdP, &tdT);
    double *Wd = ref_dbl(W, V * D), *Pd = ref_dbl(P, NP * D), *Td = ref_dbl(T, NT * D), *wd = ref_dbl(w, N * D);
    double *g = calloc(NP * D, sizeof(double));
    struct emb_ctx c = {N, D, ids, pids, tids, Wd, Pd, Td, wd, 0};
    ref_fd_grad(emb_loss, &c, Wd, V * D, 1e-6, g);
    for (int j = 0; j < D; j++) g[PAD * D + j] = 0.0; /* padding_idx row gets no gradient */
    for (int i = 0; i < V * D; i++) g[i] += dW0[i]; /* accumulates */
    check_close(dW, g, V * D, 1e-5, "embed dword (pad row untouched, +=) vs finite differences");
    for (int j = 0; j < D; j++) assert_true(dW[PAD * D + j] == dW0[PAD * D + j]);
    c.which = 1;
    ref_fd_grad(emb_loss, &c, Pd, NP * D, 1e-6, g);
    check_close(dP, g, NP * D, 1e-5, "embed dpos vs finite differences (pad tokens still count)");
    c.which = 2;
    ref_fd_grad(emb_loss, &c, Td, NT * D, 1e-6, g);
    check_close(dT, g, NT * D, 1e-5, "embed dtype vs finite differences");
    /* pad_id < 0: the pad row gets gradient too; NULL tables are frozen */
    float *dW2 = ref_zeros(V * D);
    bt_tensor tdW2 = tv2(dW2, V, D);
    be->embed_bwd(be, &ti, &tp, &tt, &tw, -1, &tdW2, NULL, NULL);
    for (int j = 0; j < D; j++) assert_true(fabsf(dW2[PAD * D + j] - (w[1 * D + j] + w[5 * D + j])) < 1e-6f);
    free(W); free(P); free(T); free(out); free(w); free(dW); free(dP); free(dT); free(dW0); free(dW2);
    free(Wd); free(Pd); free(Td); free(wd); free(g);
}

static void test_gather_rows(void **state)
{
    (void)state;
    ref_seed(15);
    enum { R = 8, N = 5, D = 33 };
    int32_t rows[N] = {0, 4, 4, 7, 2};
    float *src = ref_rand(R * D, -1, 1), *out = ref_zeros(N * D), *dsrc = ref_rand(R * D, -1, 1);
    float *d0 = ref_copy(dsrc, R * D), *dout = ref_rand(N * D, -1, 1);
    bt_tensor ts = tv2(src, R, D), tr = tvi(rows, N), to = tv2(out, N, D), tds = tv2(dsrc, R, D), tdo = tv2(dout, N, D);
    be->gather_rows(be, &ts, &tr, &to);
    for (int n = 0; n < N; n++) assert_memory_equal(out + n * D, src + rows[n] * D, D * sizeof(float));
    be->gather_rows_bwd(be, &tdo, &tr, &tds);
    double *want = ref_dbl(d0, R * D);
    for (int n = 0; n < N; n++)
        for (int j = 0; j < D; j++) want[rows[n] * D + j] += dout[n * D + j];
    check_close(dsrc, want, R * D, 1e-7, "gather_rows_bwd (+=, repeated row)");
    free(src); free(out); free(dsrc); free(d0); free(dout); free(want);
}

static void test_embed_determinism(void **state)
{
    (void)state;
    ref_seed(16);
    int N = 2048, D = 128, V = 50;
    int32_t *ids = calloc(N, sizeof(int32_t)), *pids = calloc(N, sizeof(int32_t)), *tids = calloc(N, sizeof(int32_t));
    for (int i = 0; i < N; i++) { ids[i] = (int32_t)(ref_next() % V); pids[i] = i % 128; tids[i] = i & 1; }
    float *dout = ref_rand(N * D, -1, 1), *dW[2], *dP[2];
    bt_tensor ti = tvi(ids, N), tp = tvi(pids, N), tt = tvi(tids, N), td = tv2(dout, N, D);
    for (int r = 0; r < 2; r++) {
        dW[r] = ref_zeros(V * D); dP[r] = ref_zeros(128 * D);
        bt_tensor tW = tv2(dW[r], V, D), tP = tv2(dP[r], 128, D);
        be->embed_bwd(be, &ti, &tp, &tt, &td, 0, &tW, &tP, NULL);
    }
    check_bits(dW[0], dW[1], V * D, "embed dword");
    check_bits(dP[0], dP[1], 128 * D, "embed dpos");
    /* the column split makes it independent of the thread count */
    bt_backend *b1 = ref_backend(1);
    float *dW1 = ref_zeros(V * D);
    bt_tensor tW1 = tv2(dW1, V, D);
    b1->embed_bwd(b1, &ti, &tp, &tt, &td, 0, &tW1, NULL, NULL);
    check_bits(dW[0], dW1, V * D, "embed dword 1 vs 2 threads");
    b1->destroy(b1);
    for (int r = 0; r < 2; r++) { free(dW[r]); free(dP[r]); }
    free(dW1); free(ids); free(pids); free(tids); free(dout);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layernorm_fwd),
        cmocka_unit_test(test_layernorm_bwd_fd),
        cmocka_unit_test(test_layernorm_determinism),
        cmocka_unit_test(test_embeddings),
        cmocka_unit_test(test_gather_rows),
        cmocka_unit_test(test_embed_determinism),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
