/* tests/unit/test_backend_fault.c — the fault-injecting backend wrapper
 * (kernels/backend_fault.h): spec parsing, a clean wrapper is bit-identical
 * to the backend it wraps, each fault changes exactly its op by the asked
 * amount, noise stays within its bound, ops it does not wrap still work,
 * and destroying the wrapper destroys the inner backend (LeakSanitizer). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "kernels/backend_fault.h"
#include "util/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void test_parse(void **state)
{
    (void)state;
    bt_fault_spec s;
    assert_int_equal(bt_fault_parse("none", &s), 0);
    assert_int_equal(s.kind, BT_FAULT_NONE);
    assert_int_equal(bt_fault_parse("matmul", &s), 0);
    assert_int_equal(s.kind, BT_FAULT_MATMUL);
    assert_true(s.rel == 1e-3);
    assert_int_equal(bt_fault_parse("adamw:1e-5", &s), 0);
    assert_int_equal(s.kind, BT_FAULT_ADAMW);
    assert_true(s.rel == 1e-5);
    assert_int_equal(bt_fault_parse("noise", &s), 0);
    assert_true(s.rel == 1e-7);
    for (int k = 0; k < BT_FAULT_COUNT; k++) {
        assert_int_equal(bt_fault_parse(bt_fault_name((bt_fault_kind)k), &s), 0);
        assert_int_equal(s.kind, k);
    }
    static const char *bad[] = {"", "Matmul", "matmul:", "matmul:0", "matmul:2", "matmul:-1e-3", "matmul:1e-3x",
                                "matmul:nan", "matmulx", ":1e-3", NULL};
    for (int i = 0; bad[i]; i++) {
        if (bt_fault_parse(bad[i], &s) != BT_ECONFIG) fail_msg("'%s' parsed", bad[i]);
        assert_non_null(strstr(bt_errmsg(), "matmul"));
    }
}

static void fill(float *x, int n, unsigned seed)
{
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((seed >> 8) * (1.0 / 16777216.0) - 0.5);
    }
}

/* C = A B^T on be; returns a heap copy of C [M,N] */
static float *run_matmul(bt_backend *be, int M, int N, int K)
{
    float *a = be->alloc(be, (size_t)M * K * 4), *b = be->alloc(be, (size_t)N * K * 4), *c = be->alloc(be, (size_t)M * N * 4);
    float *ha = malloc((size_t)M * K * 4), *hb = malloc((size_t)N * K * 4), *hc = malloc((size_t)M * N * 4);
    fill(ha, M * K, 1);
    fill(hb, N * K, 2);
    be->upload(be, a, ha, (size_t)M * K * 4);
    be->upload(be, b, hb, (size_t)N * K * 4);
    bt_tensor A = bt_view2(a, BT_F32, be->device, M, K), B = bt_view2(b, BT_F32, be->device, N, K),
              C = bt_view2(c, BT_F32, be->device, M, N);
    be->matmul(be, &A, 0, &B, 1, &C, NULL, 1.0f, 0.0f, BT_EPI_NONE, NULL);
    be->download(be, hc, c, (size_t)M * N * 4);
    be->free(be, a);
    be->free(be, b);
    be->free(be, c);
    free(ha);
    free(hb);
    return hc;
}

static bt_backend *wrap(const char *spec)
{
    bt_fault_spec s;
    assert_int_equal(bt_fault_parse(spec, &s), 0);
    bt_backend *w = bt_backend_fault_wrap(bt_backend_cpu_create(2), &s);
    assert_non_null(w);
    return w;
}

static void test_clean_and_matmul(void **state)
{
    (void)state;
    enum { M = 17, N = 13, K = 29 };
    bt_backend *cpu = bt_backend_cpu_create(2);
    float *ref = run_matmul(cpu, M, N, K);
    cpu->destroy(cpu);

    bt_backend *w = wrap("none");
    assert_string_equal(w->name, "cpu+wrap");
    assert_int_equal(w->device, BT_DEV_CPU);
    float *c = run_matmul(w, M, N, K);
    assert_memory_equal(c, ref, sizeof(float) * M * N);
    assert_int_equal(bt_backend_fault_hits(w), 0);
    free(c);
    w->destroy(w);

    w = wrap("matmul:0.25");
    assert_non_null(strstr(w->name, "fault(matmul:0.25)"));
    c = run_matmul(w, M, N, K);
    for (int i = 0; i < M * N; i++) assert_true(fabsf(c[i] - 1.25f * ref[i]) <= 1e-6f * (1 + fabsf(ref[i])));
    assert_int_equal(bt_backend_fault_hits(w), 1);
    free(c);
    w->destroy(w);

    /* a fault in another op leaves matmul exact */
    w = wrap("adamw");
    c = run_matmul(w, M, N, K);
    assert_memory_equal(c, ref, sizeof(float) * M * N);
    free(c);
    w->destroy(w);

    /* noise: within rel (|x| + rms), and not all elements untouched */
    w = wrap("noise:1e-3");
    c = run_matmul(w, M, N, K);
    double ss = 0;
    for (int i = 0; i < M * N; i++) ss += (double)ref[i] * ref[i];
    double rms = sqrt(ss / (M * N));
    int changed = 0;
    for (int i = 0; i < M * N; i++) {
        assert_true(fabs(c[i] - ref[i]) <= 1e-3 * (fabs(ref[i]) + rms) * 1.0001 + 1e-9);
        changed += c[i] != ref[i];
    }
    assert_true(changed > M * N / 2);
    free(c);
    w->destroy(w);
    free(ref);
    assert_int_equal(bt_backend_fault_hits(cpu = bt_backend_cpu_create(1)), -1); /* not a wrapper */
    cpu->destroy(cpu);
}

/* One AdamW step of n weights on be; returns the weights after it. */
static float *run_adamw(bt_backend *be, int n)
{
    size_t b = (size_t)n * 4;
    float *p = be->alloc(be, b), *g = be->alloc(be, b), *m = be->alloc(be, b), *v = be->alloc(be, b);
    float *h = malloc(b);
    fill(h, n, 3);
    be->upload(be, p, h, b);
    fill(h, n, 4);
    be->upload(be, g, h, b);
    bt_tensor P = bt_view1(p, BT_F32, be->device, n), G = bt_view1(g, BT_F32, be->device, n),
              Mt = bt_view1(m, BT_F32, be->device, n), V = bt_view1(v, BT_F32, be->device, n);
    bt_adamw_args a = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f,
                       .grad_scale = 1.0f, .step = 1};
    be->adamw(be, &P, &G, &Mt, &V, &a);
    be->download(be, h, p, b);
    be->free(be, p);
    be->free(be, g);
    be->free(be, m);
    be->free(be, v);
    return h;
}

static void test_adamw_and_sum_squares(void **state)
{
    (void)state;
    enum { n = 1000 };
    bt_backend *cpu = bt_backend_cpu_create(2);
    float *ref = run_adamw(cpu, n);
    cpu->destroy(cpu);
    float *p0 = malloc(n * 4);
    fill(p0, n, 3);
    bt_backend *w = wrap("adamw:0.5");
    float *got = run_adamw(w, n);
    for (int i = 0; i < n; i++) { /* the update is 1.5 times the right one */
        double want = p0[i] + 1.5 * ((double)ref[i] - p0[i]);
        assert_true(fabs(got[i] - want) <= 1e-6);
    }
    assert_int_equal(bt_backend_fault_hits(w), 1);
    free(got);
    /* sum_squares is the inner's (not wrapped) and right */
    float *x = w->alloc(w, 16);
    float h[4] = {1, 2, 3, 4};
    w->upload(w, x, h, 16);
    bt_tensor X = bt_view1(x, BT_F32, w->device, 4);
    assert_true(w->sum_squares(w, &X, 1) == 30.0);
    w->free(w, x);
    w->destroy(w);

    w = wrap("sum_squares:0.5");
    x = w->alloc(w, 16);
    w->upload(w, x, h, 16);
    X = bt_view1(x, BT_F32, w->device, 4);
    assert_true(w->sum_squares(w, &X, 1) == 45.0);
    w->free(w, x);
    w->destroy(w);
    free(ref);
    free(p0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_clean_and_matmul),
        cmocka_unit_test(test_adamw_and_sum_squares),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
