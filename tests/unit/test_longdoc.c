/* tests/unit/test_longdoc.c — chunk boundaries (against what HF tokenizers'
 * stride/overflow produce), caps, micro-batches, pooling forward/backward
 * (finite differences), and the long-document builder (against the Python
 * script, byte for byte, when python3 is present). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/longdoc.h"
#include "kernels/philox.h"
#include "util/err.h"
#include "util/file.h"
#include "util/mem.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bt_longdoc_config cfg(int s, int stride, int max_chunks, bt_longdoc_cap cap)
{
    bt_longdoc_config c = {s, stride, max_chunks, cap};
    return c;
}

static void test_config(void **state)
{
    (void)state;
    bt_longdoc_config c = cfg(512, 128, 0, BT_LONGDOC_CAP_FIRST);
    assert_int_equal(bt_longdoc_config_check(&c), 0);
    c.stride = 510;
    assert_int_equal(bt_longdoc_config_check(&c), BT_ECONFIG);
    assert_non_null(strstr(bt_errmsg(), "stride 510"));
    c.stride = -1;
    assert_int_equal(bt_longdoc_config_check(&c), BT_ECONFIG);
    c = cfg(2, 0, 0, BT_LONGDOC_CAP_FIRST);
    assert_int_equal(bt_longdoc_config_check(&c), BT_ECONFIG);
    c = cfg(16, 0, -3, BT_LONGDOC_CAP_FIRST);
    assert_int_equal(bt_longdoc_config_check(&c), BT_ECONFIG);
    c = cfg(16, 0, 2, (bt_longdoc_cap)9);
    assert_int_equal(bt_longdoc_config_check(&c), BT_ECONFIG);
}

/* Expected spans from transformers 4.46 / tokenizers 0.20: BertTokenizerFast,
 * max_length=8, truncation=True, stride=s, return_overflowing_tokens=True. */
static void test_hf_boundaries(void **state)
{
    (void)state;
    struct {
        size_t n;
        int stride;
        int k;
        size_t start[3];
        int len[3];
    } cases[] = {
        {10, 2, 2, {0, 4}, {6, 6}},
        {6, 2, 1, {0}, {6}},
        {0, 2, 1, {0}, {0}},
        {13, 0, 3, {0, 6, 12}, {6, 6, 1}},
        {7, 5, 2, {0, 1}, {6, 6}},
        {11, 3, 3, {0, 3, 6}, {6, 6, 5}},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        bt_longdoc_config c = cfg(8, cases[t].stride, 0, BT_LONGDOC_CAP_FIRST);
        assert_int_equal(bt_longdoc_total_chunks(cases[t].n, &c), cases[t].k);
        assert_int_equal(bt_longdoc_n_chunks(cases[t].n, &c), cases[t].k);
        for (int k = 0; k < cases[t].k; k++) {
            bt_longdoc_chunk ch = bt_longdoc_chunk_at(cases[t].n, &c, (size_t)k);
            assert_int_equal(ch.index, k);
            assert_int_equal(ch.start, cases[t].start[k]);
            assert_int_equal(ch.len, cases[t].len[k]);
        }
    }
}

/* For many (n, S, stride): chunks cover every token, overlap by exactly the
 * stride (the last by at least the stride), never exceed W, and the last ends at n. */
static void test_cover_property(void **state)
{
    (void)state;
    for (int s = 3; s <= 20; s++)
        for (int stride = 0; stride < s - 2; stride++)
            for (size_t n = 0; n <= 60; n++) {
                bt_longdoc_config c = cfg(s, stride, 0, BT_LONGDOC_CAP_FIRST);
                size_t k = bt_longdoc_n_chunks(n, &c), w = (size_t)s - 2;
                size_t prev_end = 0;
                for (size_t j = 0; j < k; j++) {
                    bt_longdoc_chunk ch = bt_longdoc_chunk_at(n, &c, j);
                    assert_true((size_t)ch.len <= w);
                    assert_true(ch.start <= prev_end);
                    if (j > 0) {
                        assert_true(ch.len > 0);
                        assert_true(prev_end - ch.start >= (size_t)stride);
                        if (j + 1 < k) assert_int_equal(prev_end - ch.start, stride);
                        assert_true(ch.start + ch.len > prev_end); /* progress */
                    }
                    if (j + 1 < k) assert_int_equal(ch.len, w);
                    prev_end = ch.start + (size_t)ch.len;
                }
                assert_int_equal(prev_end, n);
            }
}

static void test_caps(void **state)
{
    (void)state;
    /* S = 6 (W = 4), stride 0, n = 40 -> 10 chunks */
    bt_longdoc_config c = cfg(6, 0, 4, BT_LONGDOC_CAP_EVEN);
    assert_int_equal(bt_longdoc_total_chunks(40, &c), 10);
    assert_int_equal(bt_longdoc_n_chunks(40, &c), 4);
    size_t want_even[] = {0, 3, 6, 9};
    for (size_t k = 0; k < 4; k++) {
        bt_longdoc_chunk ch = bt_longdoc_chunk_at(40, &c, k);
        assert_int_equal(ch.index, want_even[k]);
        assert_int_equal(ch.start, 4 * want_even[k]);
    }
    c.cap = BT_LONGDOC_CAP_FIRST;
    for (size_t k = 0; k < 4; k++) assert_int_equal(bt_longdoc_chunk_at(40, &c, k).index, k);
    c.cap = BT_LONGDOC_CAP_EVEN;
    c.max_chunks = 1;
    assert_int_equal(bt_longdoc_n_chunks(40, &c), 1);
    assert_int_equal(bt_longdoc_chunk_at(40, &c, 0).index, 0);
    c.max_chunks = 9; /* distinct, increasing, first and last */
    size_t prev = 0;
    for (size_t k = 0; k < 9; k++) {
        size_t j = bt_longdoc_chunk_at(40, &c, k).index;
        if (k) assert_true(j > prev);
        prev = j;
    }
    assert_int_equal(prev, 9);
    c.max_chunks = 50; /* cap above the count: all */
    assert_int_equal(bt_longdoc_n_chunks(40, &c), 10);
    assert_int_equal(bt_longdoc_chunk_at(40, &c, 7).index, 7);
}

static void test_iter(void **state)
{
    (void)state;
    enum { S = 6, C = 3 };
    int32_t doc[25];
    for (int i = 0; i < 25; i++) doc[i] = 1000 + i;
    bt_longdoc_config c = cfg(S, 1, 0, BT_LONGDOC_CAP_FIRST); /* W 4, step 3 -> 1 + ceil(21/3) = 8 chunks */
    bt_chunk_iter it;
    bt_chunk_iter_init(&it, doc, 25, &c, C, 101, 102, 0);
    assert_int_equal(it.n_chunks, 8);
    int32_t ids[C * S], lens[C];
    uint8_t attn[C * S];
    size_t first, seen = 0;
    int sizes[4], nb = 0, m;
    while ((m = bt_chunk_iter_next(&it, ids, attn, lens, &first)) > 0) {
        assert_int_equal(first, seen);
        for (int r = 0; r < m; r++) {
            bt_longdoc_chunk ch = bt_longdoc_chunk_at(25, &c, seen + (size_t)r);
            const int32_t *row = ids + r * S;
            assert_int_equal(row[0], 101);
            for (int p = 0; p < ch.len; p++) assert_int_equal(row[1 + p], 1000 + (int)ch.start + p);
            assert_int_equal(row[ch.len + 1], 102);
            for (int p = ch.len + 2; p < S; p++) assert_int_equal(row[p], 0);
            for (int p = 0; p < S; p++) assert_int_equal(attn[r * S + p], p < ch.len + 2);
            assert_int_equal(lens[r], ch.len + 2);
        }
        seen += (size_t)m;
        sizes[nb++] = m;
        assert_true(nb <= 3);
    }
    assert_int_equal(nb, 3);
    assert_int_equal(sizes[0], 3);
    assert_int_equal(sizes[1], 3);
    assert_int_equal(sizes[2], 2);
    assert_int_equal(seen, 8);
    assert_int_equal(bt_chunk_iter_next(&it, ids, NULL, NULL, NULL), 0);
    /* the last chunk starts at 21 and ends the document */
    bt_longdoc_chunk last = bt_longdoc_chunk_at(25, &c, 7);
    assert_int_equal(last.start, 21);
    assert_int_equal(last.len, 4);
    /* empty document: one [CLS] [SEP] row */
    bt_chunk_iter_init(&it, doc, 0, &c, C, 101, 102, 0);
    assert_int_equal(bt_chunk_iter_next(&it, ids, NULL, lens, NULL), 1);
    assert_int_equal(ids[0], 101);
    assert_int_equal(ids[1], 102);
    assert_int_equal(lens[0], 2);
}

static float frand(uint32_t i)
{
    bt_u32x4 r = bt_random4(7, BT_STREAM_HEAD_INIT, 99, i, 0, 0);
    return bt_u01(r.v[0]) * 2.0f - 1.0f;
}

static void test_mean_max(void **state)
{
    (void)state;
    float h[] = {1, -2, 3, /**/ 4, 5, -6, /**/ 4, 0, 9}; /* [3, 3] */
    float out[3], dh[9];
    int32_t am[3];
    bt_pool_mean_fwd(h, 3, 3, out);
    assert_float_equal(out[0], 3.0f, 1e-6);
    assert_float_equal(out[1], 1.0f, 1e-6);
    assert_float_equal(out[2], 2.0f, 1e-6);
    float dout[] = {3, 6, -9};
    bt_pool_mean_bwd(dout, 3, 3, dh);
    for (int i = 0; i < 3; i++) {
        assert_float_equal(dh[i * 3 + 0], 1.0f, 1e-6);
        assert_float_equal(dh[i * 3 + 1], 2.0f, 1e-6);
        assert_float_equal(dh[i * 3 + 2], -3.0f, 1e-6);
    }
    bt_pool_max_fwd(h, 3, 3, out, am);
    assert_float_equal(out[0], 4.0f, 0);
    assert_float_equal(out[1], 5.0f, 0);
    assert_float_equal(out[2], 9.0f, 0);
    assert_int_equal(am[0], 1); /* first of the tie 4, 4 */
    assert_int_equal(am[1], 1);
    assert_int_equal(am[2], 2);
    bt_pool_max_bwd(dout, am, 3, 3, dh);
    float want[] = {0, 0, 0, 3, 6, 0, 0, 0, -9};
    assert_memory_equal(dh, want, sizeof want);
    /* one chunk: both poolings are the identity */
    bt_pool_mean_fwd(h + 3, 1, 3, out);
    assert_memory_equal(out, h + 3, 3 * sizeof(float));
}

/* loss = sum_k g_k out_k for a fixed g; compares analytic grads with central
 * differences in double through the float forward. */
enum { N = 5, D = 7, A = 4 };

static double attn_loss(const float *h, const float *w, const float *b, const float *v, const float *g)
{
    float out[D], u[N * A], al[N];
    bt_pool_attn_fwd(h, N, D, w, b, v, A, out, u, al);
    double l = 0;
    for (int k = 0; k < D; k++) l += (double)g[k] * out[k];
    return l;
}

static void check_fd(const char *what, float *x, int n, const float *grad, float *h, float *w, float *b, float *v,
                     const float *g)
{
    const float eps = 1e-2f;
    for (int i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + eps;
        double lp = attn_loss(h, w, b, v, g);
        x[i] = keep - eps;
        double lm = attn_loss(h, w, b, v, g);
        x[i] = keep;
        double fd = (lp - lm) / (2.0 * eps);
        if (fabs(fd - grad[i]) > 2e-3 + 2e-2 * fabs(fd)) {
            fprintf(stderr, "%s[%d]: analytic %g, finite difference %g\n", what, i, grad[i], fd);
            fail();
        }
    }
}

static void test_attention_pool(void **state)
{
    (void)state;
    float h[N * D], w[A * D], b[A], v[A], g[D];
    uint32_t q = 0;
    for (int i = 0; i < N * D; i++) h[i] = frand(q++);
    for (int i = 0; i < A * D; i++) w[i] = frand(q++);
    for (int i = 0; i < A; i++) b[i] = 0.5f * frand(q++);
    for (int i = 0; i < A; i++) v[i] = 2.0f * frand(q++);
    for (int i = 0; i < D; i++) g[i] = frand(q++);
    float out[D], u[N * A], al[N];
    bt_pool_attn_fwd(h, N, D, w, b, v, A, out, u, al);
    /* alpha is a distribution; out is the alpha-weighted sum, checked directly */
    double sum = 0;
    for (int i = 0; i < N; i++) {
        assert_true(al[i] > 0);
        sum += al[i];
    }
    assert_float_equal(sum, 1.0, 1e-6);
    double s0 = 0, s1 = 0;
    for (int j = 0; j < A; j++) {
        double z0 = b[j], z1 = b[j];
        for (int k = 0; k < D; k++) {
            z0 += (double)w[j * D + k] * h[k];
            z1 += (double)w[j * D + k] * h[D + k];
        }
        s0 += v[j] * tanh(z0);
        s1 += v[j] * tanh(z1);
    }
    assert_float_equal(al[0] / al[1], exp(s0 - s1), 1e-4);
    float dh[N * D], dw[A * D], db[A], dv[A];
    memset(dw, 0, sizeof dw);
    memset(db, 0, sizeof db);
    memset(dv, 0, sizeof dv);
    bt_pool_attn_bwd(h, N, D, w, v, A, u, al, g, dh, dw, db, dv);
    check_fd("dh", h, N * D, dh, h, w, b, v, g);
    check_fd("dW", w, A * D, dw, h, w, b, v, g);
    check_fd("db", b, A, db, h, w, b, v, g);
    check_fd("dv", v, A, dv, h, w, b, v, g);
    /* parameter gradients accumulate */
    float dw2[A * D];
    memcpy(dw2, dw, sizeof dw);
    bt_pool_attn_bwd(h, N, D, w, v, A, u, al, g, dh, dw, db, dv);
    for (int i = 0; i < A * D; i++) assert_float_equal(dw[i], 2 * dw2[i], 1e-5);
    /* huge scores stay finite (max subtracted before exp) */
    for (int i = 0; i < A; i++) v[i] = 1e4f;
    bt_pool_attn_fwd(h, N, D, w, b, v, A, out, u, al);
    for (int k = 0; k < D; k++) assert_true(isfinite(out[k]));
}

/* ---- builder ---- */

static char *tmp_path(const char *name)
{
    char *dir = bt_xasprintf("/tmp/baton-test-longdoc-%d", (int)getpid());
    bt_mkdirs(dir);
    char *p = bt_path_join(dir, name);
    free(dir);
    return p;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_builder(void **state)
{
    (void)state;
    char *in = tmp_path("in.tsv"), *out = tmp_path("out.tsv"), *out2 = tmp_path("out2.tsv");
    /* 7 World, 5 Sports (one with CRLF), 2 Business; a blank line */
    write_text(in, "w0\tWorld\nw1\tWorld\ns0\tSports\nw2\tWorld\ns1\tSports\r\nb0\tBusiness\n\nw3\tWorld\n"
                   "s2\tSports\nw4\tWorld\ns3\tSports\nw5\tWorld\ns4\tSports\nb1\tBusiness\nw6\tWorld\n");
    size_t n;
    assert_int_equal(bt_longdoc_build_tsv(in, out, 3, 2, 0, 0, &n), 0);
    /* docs: Business 1, Sports 2, World 3 -> round robin B S W S W W */
    assert_int_equal(n, 6);
    char *text;
    size_t len;
    assert_int_equal(bt_read_file(out, 1 << 20, &text, &len), 0);
    const char *labels[] = {"Business", "Sports", "World", "Sports", "World", "World"};
    char seen[64] = {0};
    char *line = text;
    for (int d = 0; d < 6; d++) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = 0;
        char *tab = strchr(line, '\t');
        assert_non_null(tab);
        assert_string_equal(tab + 1, labels[d]);
        /* two articles of the document's class, never seen before */
        char a[8], b[8];
        *tab = 0;
        assert_int_equal(sscanf(line, "%7s %7s", a, b), 2);
        assert_int_equal(a[0], tolower((unsigned char)labels[d][0]));
        assert_int_equal(b[0], a[0]);
        assert_int_equal(strlen(a) + 1 + strlen(b), strlen(line));
        int ia = (a[0] - 'a') * 2 + (a[1] - '0'), ib = (b[0] - 'a') * 2 + (b[1] - '0');
        assert_true(ia < 64 && ib < 64);
        assert_false(seen[ia]);
        assert_false(seen[ib]);
        seen[ia] = seen[ib] = 1;
        line = nl + 1;
    }
    assert_int_equal(*line, 0);
    free(text);
    /* deterministic; another seed shuffles differently; ranges are slices */
    char *t1, *t2;
    size_t l1, l2;
    assert_int_equal(bt_longdoc_build_tsv(in, out2, 3, 2, 0, 0, NULL), 0);
    assert_int_equal(bt_read_file(out, 1 << 20, &t1, &l1), 0);
    assert_int_equal(bt_read_file(out2, 1 << 20, &t2, &l2), 0);
    assert_int_equal(l1, l2);
    assert_memory_equal(t1, t2, l1);
    free(t2);
    assert_int_equal(bt_longdoc_build_tsv(in, out2, 4, 2, 0, 0, NULL), 0);
    assert_int_equal(bt_read_file(out2, 1 << 20, &t2, &l2), 0);
    assert_true(l1 != l2 || memcmp(t1, t2, l1));
    free(t2);
    assert_int_equal(bt_longdoc_build_tsv(in, out2, 3, 2, 2, 3, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(bt_read_file(out2, 1 << 20, &t2, &l2), 0);
    const char *third = t1;
    for (int d = 0; d < 2; d++) third = strchr(third, '\n') + 1;
    const char *sixth = third;
    for (int d = 0; d < 3; d++) sixth = strchr(sixth, '\n') + 1;
    assert_int_equal(l2, (size_t)(sixth - third));
    assert_memory_equal(t2, third, l2);
    free(t2);
    free(t1);
    /* errors: a line without a tab names file:line; an empty range */
    write_text(in, "a\tWorld\nno tab here\n");
    bt_err_clear();
    assert_int_equal(bt_longdoc_build_tsv(in, out2, 1, 1, 0, 0, NULL), BT_EDATA);
    char *want = bt_xasprintf("%s:2:", in);
    assert_non_null(strstr(bt_errmsg(), want));
    free(want);
    write_text(in, "a\tWorld\nb\tWorld\n");
    assert_int_equal(bt_longdoc_build_tsv(in, out2, 1, 3, 0, 0, NULL), BT_EDATA);
    assert_int_equal(bt_longdoc_build_tsv(in, out2, 1, 1, 5, 0, NULL), BT_EDATA);
    assert_int_equal(bt_longdoc_build_tsv(in, out2, 1, 0, 0, 0, NULL), BT_EUSAGE);
    assert_int_equal(bt_longdoc_build_tsv("/nonexistent/x.tsv", out2, 1, 1, 0, 0, NULL), BT_ENOINPUT);
    unlink(in);
    unlink(out);
    unlink(out2);
    free(in);
    free(out);
    free(out2);
}

/* The C builder and tests/reference/make_longdocs.py agree byte for byte on
 * AG News (skipped when python3 or the shared data is missing). */
static void test_builder_matches_python(void **state)
{
    (void)state;
    const char *root = getenv("ROOT") ? getenv("ROOT") : ".";
    const char *data = getenv("BATON_DATA");
    char *agnews = data ? bt_path_join(data, "agnews/dev.tsv") : bt_xasprintf("%s/../shared/data/agnews/dev.tsv", root);
    char *script = bt_path_join(root, "tests/reference/make_longdocs.py");
    const char *python = getenv("BATON_PYTHON") ? getenv("BATON_PYTHON") : "python3";
    char *probe = bt_xasprintf("'%s' -c pass >/dev/null 2>&1", python);
    int no_python = system(probe) != 0;
    free(probe);
    if (!bt_path_exists(agnews) || !bt_path_exists(script) || no_python) {
        printf("skip: python3, %s or %s missing\n", agnews, script);
        free(agnews);
        free(script);
        skip();
    }
    char *c_out = tmp_path("c.tsv"), *py_out = tmp_path("py.tsv");
    size_t n;
    assert_int_equal(bt_longdoc_build_tsv(agnews, c_out, 17, 25, 10, 200, &n), 0);
    assert_int_equal(n, 200);
    char *cmd = bt_xasprintf("'%s' '%s' --input '%s' --output '%s' --seed 17 --per-doc 25 --first 10 --count 200 "
                             "2>/dev/null",
                             python, script, agnews, py_out);
    assert_int_equal(system(cmd), 0);
    char *a, *b;
    size_t la, lb;
    assert_int_equal(bt_read_file(c_out, 1 << 26, &a, &la), 0);
    assert_int_equal(bt_read_file(py_out, 1 << 26, &b, &lb), 0);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    free(a);
    free(b);
    free(cmd);
    unlink(c_out);
    unlink(py_out);
    free(c_out);
    free(py_out);
    free(agnews);
    free(script);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),        cmocka_unit_test(test_hf_boundaries),
        cmocka_unit_test(test_cover_property), cmocka_unit_test(test_caps),
        cmocka_unit_test(test_iter),          cmocka_unit_test(test_mean_max),
        cmocka_unit_test(test_attention_pool), cmocka_unit_test(test_builder),
        cmocka_unit_test(test_builder_matches_python),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char *dir = bt_xasprintf("/tmp/baton-test-longdoc-%d", (int)getpid());
    rmdir(dir);
    free(dir);
    return rc;
}
