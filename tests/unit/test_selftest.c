/* tests/unit/test_selftest.c — the first-contact self-check (runner/selftest.h)
 * on the CPU: a wrapped or noisy CPU passes, a CPU with any one op perturbed
 * by 1e-3 is refused (and the fault was exercised); the record file is
 * versioned, self-hashed and keyed; the gate honours a recorded pass, records
 * only passes, fails `device = cuda` with exit 70 and sends `device = auto`
 * to the CPU on a mismatch; bf16 and fp16 are checked too (the CPU emulates
 * them). The "GPU" is the BATON_FAKE_GPU stand-in. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "kernels/backend_fault.h"
#include "runner/job.h"
#include "runner/selftest.h"
#include "util/err.h"
#include "util/file.h"
#include "util/mem.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmp[] = "/tmp/baton-selftest-test-XXXXXX";

static bt_backend *fake(const char *spec)
{
    bt_fault_spec s;
    assert_int_equal(bt_fault_parse(spec, &s), 0);
    bt_backend *w = bt_backend_fault_wrap(bt_backend_cpu_create(2), &s);
    assert_non_null(w);
    return w;
}

static bt_selftest_result compare(bt_backend *dev, int ref_threads)
{
    bt_backend *ref = bt_backend_cpu_create(ref_threads);
    bt_selftest_result r;
    assert_int_equal(bt_selftest_compare(dev, ref, BT_PREC_FP32, &r), 0);
    ref->destroy(ref);
    return r;
}

static void test_limits_and_precisions(void **state)
{
    (void)state;
    assert_true(bt_selftest_limit(BT_PREC_FP32) == 1e-4);
    assert_true(bt_selftest_limit(BT_PREC_TF32) == 2e-2);
    assert_true(bt_selftest_limit(BT_PREC_FP16) == 2e-2);
    assert_true(bt_selftest_limit(BT_PREC_BF16) == 2e-2);
    /* a precision the device cannot compute in is the engine's BT_ECONFIG, with its reason */
    bt_backend *a = bt_backend_cpu_create(1), *b = bt_backend_cpu_create(1);
    bt_selftest_result r;
    assert_int_equal(bt_selftest_compare(a, b, BT_PREC_TF32, &r), BT_ECONFIG);
    assert_non_null(strstr(bt_errmsg(), "tf32"));
    assert_int_equal(r.pass, 0);
    a->destroy(a);
    b->destroy(b);
    /* bf16 (the CPU emulates it exactly): a device that rounds its fp32 sums
     * differently passes, judged model-wide; one whose matmul is 3% off does not */
    bt_fault_spec sp;
    bt_fault_parse("noise:1e-6", &sp);
    a = bt_backend_fault_wrap(bt_backend_cpu_create(2), &sp);
    b = bt_backend_cpu_create(2);
    assert_int_equal(bt_selftest_compare(a, b, BT_PREC_BF16, &r), 0);
    if (!r.pass || !r.model_wide || r.grad_err > 1.5e-2)
        fail_msg("bf16 noise: loss %g grad %g (%s) weight %g", r.loss_err, r.grad_err, r.grad_at, r.weight_err);
    assert_true(r.grad_tensor_err >= r.grad_err * 0.999); /* the worst tensor is reported too */
    a->destroy(a);
    bt_fault_parse("matmul:3e-2", &sp);
    a = bt_backend_fault_wrap(bt_backend_cpu_create(2), &sp);
    assert_int_equal(bt_selftest_compare(a, b, BT_PREC_BF16, &r), 0);
    assert_false(r.pass);
    a->destroy(a);
    /* fp16 (loss scaling on): judged per tensor; a 1% matmul error is refused */
    bt_fault_parse("matmul:1e-2", &sp);
    a = bt_backend_fault_wrap(bt_backend_cpu_create(2), &sp);
    assert_int_equal(bt_selftest_compare(a, b, BT_PREC_FP16, &r), 0);
    assert_false(r.pass);
    assert_false(r.model_wide);
    a->destroy(a);
    b->destroy(b);
}

static void test_correct_devices_pass(void **state)
{
    (void)state;
    bt_backend *w = fake("none");
    bt_selftest_result r = compare(w, 2);
    w->destroy(w);
    assert_true(r.pass);
    assert_true(r.loss_err == 0 && r.grad_err == 0 && r.weight_err == 0); /* same code, same threads: same bits */
    assert_int_equal(r.cases, 3);
    assert_int_equal(r.steps, 3);

    /* other rounding, as a correct GPU has: noise 1e-6 of every matmul/attention/LN output */
    w = fake("noise:1e-6");
    r = compare(w, 2);
    assert_true(bt_backend_fault_hits(w) > 50);
    w->destroy(w);
    if (!r.pass || r.weight_err > 3e-5 || r.grad_err > 3e-5)
        fail_msg("noise 1e-6: loss %g grad %g (%s) weight %g (%s)", r.loss_err, r.grad_err, r.grad_at, r.weight_err,
                 r.weight_at);
    assert_true(r.grad_err > 0);

    /* the CPU backend with another thread count (other OpenMP partitions) */
    bt_backend *one = bt_backend_cpu_create(1);
    r = compare(one, 2);
    one->destroy(one);
    assert_true(r.pass);
}

static void test_faults_refused(void **state)
{
    (void)state;
    /* one of each kind of op (a product, attention both ways, a normalisation's
     * backward, a scatter, the optimizer, a reduction, DeBERTa's disentangled
     * attention both ways); every kind is refused
     * (docs/cuda.md's table), but each costs a second here and more under SAN */
    static const char *const faults[] = {"matmul", "attention", "attention_bwd", "layernorm_bwd", "embed_bwd", "adamw",
                                         "sum_squares", "rel_attention", "rel_attention_bwd", NULL};
    for (int i = 0; faults[i]; i++) {
        bt_backend *w = fake(faults[i]);
        bt_selftest_result r = compare(w, 2);
        long hits = bt_backend_fault_hits(w);
        w->destroy(w);
        if (hits <= 0) fail_msg("fault %s was never exercised", faults[i]);
        if (r.pass)
            fail_msg("fault %s (1e-3) passed: loss %g grad %g weight %g", faults[i], r.loss_err, r.grad_err,
                     r.weight_err);
        assert_true(r.grad_err > r.limit || r.weight_err > r.limit || r.loss_err > r.limit);
        char *j = bt_selftest_result_json(&r);
        assert_non_null(strstr(j, "\"result\":\"mismatch\""));
        free(j);
    }
}

/* ------------------------------------------------------------------ record */

static bt_selftest_key key(const char *gpu)
{
    bt_selftest_key k;
    memset(&k, 0, sizeof k);
    snprintf(k.gpu, sizeof k.gpu, "%s", gpu);
    snprintf(k.cc, sizeof k.cc, "9.0");
    snprintf(k.driver, sizeof k.driver, "580.159.03, CUDA 13.0");
    snprintf(k.cublaslt, sizeof k.cublaslt, "13.0.2");
    snprintf(k.baton, sizeof k.baton, "0.1.0-dev");
    memset(k.baton_sha256, 'a', 64);
    memset(k.backend_sha256, 'b', 64);
    snprintf(k.precision, sizeof k.precision, "fp32");
    return k;
}

static void flip_byte(const char *path, const char *what, const char *with)
{
    char *text;
    size_t len;
    assert_int_equal(bt_read_file(path, 1 << 20, &text, &len), 0);
    char *at = strstr(text, what);
    assert_non_null(at);
    memcpy(at, with, strlen(with));
    assert_int_equal(bt_write_file_atomic(path, text, len), 0);
    free(text);
}

static void test_record(void **state)
{
    (void)state;
    char *path = bt_xasprintf("%s/rec/selfcheck.json", tmp);
    bt_selftest_key a = key("NVIDIA H200"), b = key("Tesla T4");
    bt_selftest_result pass = {.pass = 1, .limit = 1e-4, .loss_err = 1e-7, .grad_err = 2e-6, .weight_err = 3e-6};
    char note[1100];
    bt_selftest_result got;
    assert_int_equal(bt_selfcheck_find(path, &a, &got, note, sizeof note), 0); /* missing: no note */
    assert_string_equal(note, "");
    bt_selftest_result fail = pass;
    fail.pass = 0;
    assert_int_equal(bt_selfcheck_add(path, &a, &fail), BT_EINTERNAL); /* never a failure */
    assert_false(bt_path_exists(path));
    assert_int_equal(bt_selfcheck_add(path, &a, &pass), 0); /* creates rec/ */
    assert_int_equal(bt_selfcheck_find(path, &a, &got, note, sizeof note), 1);
    assert_int_equal(strlen(got.checked_at), 20); /* 2026-12-04T10:00:00Z */
    assert_true(got.pass && got.grad_err == 2e-6 && got.weight_err == 3e-6 && got.limit == 1e-4);
    assert_int_equal(bt_selfcheck_find(path, &b, NULL, NULL, 0), 0);
    /* every key field matters */
    bt_selftest_key c = a;
    snprintf(c.precision, sizeof c.precision, "bf16");
    assert_int_equal(bt_selfcheck_find(path, &c, NULL, NULL, 0), 0);
    c = a;
    c.backend_sha256[3] = 'c';
    assert_int_equal(bt_selfcheck_find(path, &c, NULL, NULL, 0), 0);
    c = a;
    snprintf(c.driver, sizeof c.driver, "580.159.04, CUDA 13.0");
    assert_int_equal(bt_selfcheck_find(path, &c, NULL, NULL, 0), 0);
    assert_int_equal(bt_selfcheck_add(path, &b, &pass), 0);
    assert_int_equal(bt_selfcheck_find(path, &a, NULL, NULL, 0), 1);
    assert_int_equal(bt_selfcheck_find(path, &b, NULL, NULL, 0), 1);

    /* damage: one changed byte is caught and named; the next pass rewrites it */
    flip_byte(path, "Tesla T4", "Tesla T5");
    assert_int_equal(bt_selfcheck_find(path, &a, NULL, note, sizeof note), 0);
    assert_non_null(strstr(note, "damaged"));
    assert_int_equal(bt_selfcheck_add(path, &a, &pass), 0);
    assert_int_equal(bt_selfcheck_find(path, &a, NULL, note, sizeof note), 1);
    assert_int_equal(bt_selfcheck_find(path, &b, NULL, NULL, 0), 0); /* lost with the damaged file */
    /* another version or format: ignored with a reason */
    flip_byte(path, "\"version\": 1", "\"version\": 2");
    assert_int_equal(bt_selfcheck_find(path, &a, NULL, note, sizeof note), 0);
    assert_non_null(strstr(note, "version"));
    assert_int_equal(bt_write_file_atomic(path, "{\"format\": \"other\"}", 19), 0);
    assert_int_equal(bt_selfcheck_find(path, &a, NULL, note, sizeof note), 0);
    assert_non_null(strstr(note, "not a baton self-check record"));
    assert_int_equal(bt_write_file_atomic(path, "{not json", 9), 0);
    assert_int_equal(bt_selfcheck_find(path, &a, NULL, note, sizeof note), 0);
    assert_non_null(strstr(note, "not JSON"));
    /* at most BT_SELFCHECK_MAX records, the oldest go */
    unlink(path);
    for (int i = 0; i < BT_SELFCHECK_MAX + 3; i++) {
        char g[32];
        snprintf(g, sizeof g, "GPU %d", i);
        bt_selftest_key k = key(g);
        assert_int_equal(bt_selfcheck_add(path, &k, &pass), 0);
    }
    bt_selftest_key first = key("GPU 0"), last = key("GPU 34");
    assert_int_equal(bt_selfcheck_find(path, &first, NULL, NULL, 0), 0);
    assert_int_equal(bt_selfcheck_find(path, &last, NULL, NULL, 0), 1);
    unlink(path);
    free(path);
}

/* -------------------------------------------------------------------- gate */

static int gate(const char *fake_spec, int device, const char *out_dir, int write_out, bt_backend **be)
{
    setenv("BATON_FAKE_GPU", fake_spec, 1);
    *be = bt_selftest_gpu_backend(0);
    assert_non_null(*be);
    assert_true(bt_selftest_is_fake(*be));
    bt_selftest_gate_opts o = {.device_setting = device, .precision = BT_PREC_FP32, .out_dir = out_dir,
                               .write_out_dir = write_out, .threads = 2};
    return bt_selftest_gate(be, &o);
}

static void test_gate(void **state)
{
    (void)state;
    char *cache_home = bt_xasprintf("%s/cache", tmp), *out = bt_xasprintf("%s/out", tmp);
    setenv("XDG_CACHE_HOME", cache_home, 1);
    char *cache = bt_selfcheck_cache_path(), *outrec = bt_selfcheck_out_path(out);
    assert_non_null(strstr(cache, "/cache/baton/selfcheck.json"));
    assert_int_equal(bt_mkdirs(out), 0);
    bt_backend *be;

    /* a wrong device: cuda fails (70), nothing recorded */
    assert_int_equal(gate("matmul", BT_JOB_DEVICE_CUDA, out, 1, &be), BT_EINTERNAL);
    assert_null(be);
    assert_non_null(strstr(bt_errmsg(), "does not match the CPU reference"));
    assert_non_null(strstr(bt_errmsg(), "device = cpu"));
    assert_false(bt_path_exists(cache));
    assert_false(bt_path_exists(outrec));
    /* auto: the caller is told to use the CPU (NULL, no error), nothing recorded */
    assert_int_equal(gate("attention_bwd", BT_JOB_DEVICE_AUTO, out, 1, &be), 0);
    assert_null(be);
    assert_false(bt_path_exists(cache));
    assert_false(bt_path_exists(outrec));

    /* a faithful device: kept, recorded in both places */
    assert_int_equal(gate("none", BT_JOB_DEVICE_CUDA, out, 1, &be), 0);
    assert_non_null(be);
    be->destroy(be);
    bt_selftest_key k;
    setenv("BATON_FAKE_GPU", "none", 1);
    assert_int_equal(bt_selftest_key_for(NULL, 0, BT_PREC_FP32, &k), 0);
    assert_non_null(strstr(k.gpu, "fake GPU"));
    assert_int_equal(strlen(k.baton_sha256), 64);
    assert_int_equal(bt_selfcheck_find(cache, &k, NULL, NULL, 0), 1);
    assert_int_equal(bt_selfcheck_find(outrec, &k, NULL, NULL, 0), 1);

    /* a recorded pass is honoured: a (faulty) device whose key has a pass on
     * record is not checked again (its fault is never exercised) */
    setenv("BATON_FAKE_GPU", "matmul", 1);
    bt_selftest_key km;
    assert_int_equal(bt_selftest_key_for(NULL, 0, BT_PREC_FP32, &km), 0);
    bt_selftest_result pass = {.pass = 1, .limit = 1e-4};
    assert_int_equal(bt_selfcheck_add(cache, &km, &pass), 0);
    assert_int_equal(gate("matmul", BT_JOB_DEVICE_CUDA, out, 1, &be), 0);
    assert_non_null(be);
    assert_int_equal(bt_backend_fault_hits(be), 0);
    be->destroy(be);
    /* ... and copied into the output directory, which travels between sessions, as it was */
    bt_selftest_result c1, c2;
    assert_int_equal(bt_selfcheck_find(cache, &km, &c1, NULL, 0), 1);
    assert_int_equal(bt_selfcheck_find(outrec, &km, &c2, NULL, 0), 1);
    assert_string_equal(c1.checked_at, c2.checked_at);
    /* the output directory's record alone is enough (a new machine's empty cache) */
    unlink(cache);
    assert_int_equal(gate("matmul", BT_JOB_DEVICE_CUDA, out, 1, &be), 0);
    assert_int_equal(bt_backend_fault_hits(be), 0);
    be->destroy(be);
    assert_int_equal(bt_selfcheck_find(cache, &km, NULL, NULL, 0), 1); /* copied back */

    /* read-only (baton eval): the output directory is never written */
    unlink(cache);
    unlink(outrec);
    assert_int_equal(gate("none", BT_JOB_DEVICE_AUTO, out, 0, &be), 0);
    assert_non_null(be);
    be->destroy(be);
    assert_false(bt_path_exists(outrec));
    assert_true(bt_path_exists(cache));

    /* a damaged record is not trusted: the check runs again (and refuses a faulty device) */
    flip_byte(cache, "fake GPU", "fake GPX");
    assert_int_equal(gate("none", BT_JOB_DEVICE_CUDA, NULL, 0, &be), 0);
    be->destroy(be);
    setenv("BATON_FAKE_GPU", "none", 1);
    assert_int_equal(bt_selfcheck_find(cache, &k, NULL, NULL, 0), 1); /* rewritten whole */

    /* a precision the device cannot compute is the job's error (78), not a mismatch: the backend is kept */
    setenv("BATON_FAKE_GPU", "none", 1);
    be = bt_selftest_gpu_backend(0);
    bt_selftest_gate_opts ot = {.device_setting = BT_JOB_DEVICE_CUDA, .precision = BT_PREC_TF32, .out_dir = out,
                                .write_out_dir = 1, .threads = 2};
    assert_int_equal(bt_selftest_gate(&be, &ot), BT_ECONFIG);
    assert_non_null(be);
    assert_non_null(strstr(bt_errmsg(), "tf32"));
    be->destroy(be);

    /* the CPU backend itself is never gated */
    bt_backend *cpu = bt_backend_cpu_create(1);
    bt_selftest_gate_opts o = {.device_setting = BT_JOB_DEVICE_CUDA, .precision = BT_PREC_FP32};
    assert_int_equal(bt_selftest_gate(&cpu, &o), 0);
    assert_non_null(cpu);
    cpu->destroy(cpu);
    /* a bad stand-in spec is a configuration error */
    setenv("BATON_FAKE_GPU", "bogus", 1);
    assert_null(bt_selftest_gpu_backend(0));
    assert_non_null(strstr(bt_errmsg(), "BATON_FAKE_GPU"));
    unsetenv("BATON_FAKE_GPU");
    unlink(cache);
    unlink(outrec);
    free(cache);
    free(outrec);
    free(cache_home);
    free(out);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char *cmd = bt_xasprintf("rm -rf '%s'", tmp);
    int rc = system(cmd);
    free(cmd);
    return rc == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits_and_precisions),
        cmocka_unit_test(test_correct_devices_pass),
        cmocka_unit_test(test_faults_refused),
        cmocka_unit_test(test_record),
        cmocka_unit_test(test_gate),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
