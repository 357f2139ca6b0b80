/* tests/unit/test_precision_pick.c — runner/precision: train.precision
 * resolved per device (auto: bf16 on sm_80+, fp16 on sm_60..75, fp32 on the
 * CPU), impossible requests refused naming the key, where it was set and
 * what to use instead; never a silent fallback. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "runner/precision.h"
#include "util/err.h"

#include <stdio.h>
#include <string.h>

static bt_precision pick_ok(int req, bt_device dev, int sm, const char *want_describe)
{
    bt_precision p = (bt_precision)-1;
    char d[160];
    int rc = bt_precision_pick(req, (bt_precision_device){dev, sm}, "job.ini:7", &p, d, sizeof d);
    if (rc) fail_msg("pick(%d, dev %d, sm %d): %s", req, dev, sm, bt_errmsg());
    if (want_describe && !strstr(d, want_describe)) fail_msg("describe '%s' lacks '%s'", d, want_describe);
    return p;
}

static void pick_err(int req, bt_device dev, int sm, const char *const *must)
{
    bt_precision p = (bt_precision)-1;
    assert_int_equal(bt_precision_pick(req, (bt_precision_device){dev, sm}, "job.ini:7", &p, NULL, 0), BT_ECONFIG);
    assert_int_equal((int)p, -1); /* nothing chosen */
    const char *e = bt_errmsg();
    for (int i = 0; must[i]; i++)
        if (!strstr(e, must[i])) fail_msg("error '%s' lacks '%s'", e, must[i]);
}

static void test_auto(void **state)
{
    (void)state;
    assert_int_equal(pick_ok(BT_JOB_PREC_AUTO, BT_DEV_CPU, 0, "fp32 (auto: the CPU)"), BT_PREC_FP32);
    assert_int_equal(pick_ok(BT_JOB_PREC_AUTO, BT_DEV_CUDA, 90, "bf16 (auto: sm_90"), BT_PREC_BF16);
    assert_int_equal(pick_ok(BT_JOB_PREC_AUTO, BT_DEV_CUDA, 80, "bf16"), BT_PREC_BF16);
    assert_int_equal(pick_ok(BT_JOB_PREC_AUTO, BT_DEV_CUDA, 75, "fp16 (auto: sm_75"), BT_PREC_FP16);
    assert_int_equal(pick_ok(BT_JOB_PREC_AUTO, BT_DEV_CUDA, 70, "fp16"), BT_PREC_FP16);
    assert_int_equal(pick_ok(BT_JOB_PREC_AUTO, BT_DEV_CUDA, 60, "fp16"), BT_PREC_FP16);
    assert_int_equal(pick_ok(BT_JOB_PREC_AUTO, BT_DEV_CUDA, 52, "fp32"), BT_PREC_FP32);
}

static void test_explicit(void **state)
{
    (void)state;
    assert_int_equal(pick_ok(BT_JOB_PREC_FP32, BT_DEV_CPU, 0, "fp32 (requested)"), BT_PREC_FP32);
    assert_int_equal(pick_ok(BT_JOB_PREC_FP32, BT_DEV_CUDA, 90, "fp32"), BT_PREC_FP32);
    assert_int_equal(pick_ok(BT_JOB_PREC_TF32, BT_DEV_CUDA, 80, "tf32"), BT_PREC_TF32);
    assert_int_equal(pick_ok(BT_JOB_PREC_FP16, BT_DEV_CUDA, 60, "loss scaling"), BT_PREC_FP16);
    assert_int_equal(pick_ok(BT_JOB_PREC_FP16, BT_DEV_CUDA, 90, "fp16"), BT_PREC_FP16);
    assert_int_equal(pick_ok(BT_JOB_PREC_FP16, BT_DEV_CPU, 0, "slower than fp32"), BT_PREC_FP16);
    assert_int_equal(pick_ok(BT_JOB_PREC_BF16, BT_DEV_CPU, 0, "on the CPU"), BT_PREC_BF16);
    assert_int_equal(pick_ok(BT_JOB_PREC_BF16, BT_DEV_CUDA, 86, "bf16"), BT_PREC_BF16);
}

static void test_refused(void **state)
{
    (void)state;
    pick_err(BT_JOB_PREC_TF32, BT_DEV_CPU, 0,
             (const char *[]){"job.ini:7: [train] precision = tf32", "CPU", "use precision = fp32", NULL});
    pick_err(BT_JOB_PREC_TF32, BT_DEV_CUDA, 75,
             (const char *[]){"job.ini:7: [train] precision = tf32", "sm_75", "precision = fp16", NULL});
    pick_err(BT_JOB_PREC_BF16, BT_DEV_CUDA, 75,
             (const char *[]){"job.ini:7: [train] precision = bf16", "sm_75", "use precision = fp16", NULL});
    pick_err(BT_JOB_PREC_BF16, BT_DEV_CUDA, 60,
             (const char *[]){"[train] precision = bf16", "sm_60", "fp16", NULL});
    /* without an origin the key still leads the message */
    bt_precision p;
    assert_int_equal(bt_precision_pick(BT_JOB_PREC_TF32, (bt_precision_device){BT_DEV_CPU, 0}, NULL, &p, NULL, 0), BT_ECONFIG);
    assert_true(strncmp(bt_errmsg(), "[train] precision = tf32", 24) == 0);
}

/* Through a job: the origin is the line that set the key. */
static void test_from_job(void **state)
{
    (void)state;
    const char *ini = "[model]\npath = /nonexistent\n[data]\ntrain = /nonexistent.tsv\n[train]\nepochs = 1\n"
                      "precision = bf16\n";
    bt_job_load_options o = {0};
    bt_job job;
    int rc = bt_job_load_string(ini, "mine.ini", "/tmp", &o, &job);
    if (rc) fail_msg("%s", bt_errmsg());
    bt_backend t4 = {.name = "cuda", .device = BT_DEV_CUDA, .sm = 75}, a100 = {.name = "cuda", .device = BT_DEV_CUDA, .sm = 80};
    bt_precision p;
    assert_int_equal(bt_precision_resolve(&job, &t4, &p, NULL, 0), BT_ECONFIG);
    if (!strstr(bt_errmsg(), "mine.ini:7: [train] precision = bf16")) fail_msg("%s", bt_errmsg());
    char d[128];
    assert_int_equal(bt_precision_resolve(&job, &a100, &p, d, sizeof d), 0);
    assert_int_equal(p, BT_PREC_BF16);
    bt_job_free(&job);
    /* the default (auto) on the CPU */
    const char *ini2 = "[model]\npath = /nonexistent\n[data]\ntrain = /nonexistent.tsv\n";
    assert_int_equal(bt_job_load_string(ini2, "def.ini", "/tmp", &o, &job), 0);
    bt_backend cpu = {.name = "cpu", .device = BT_DEV_CPU, .sm = 0};
    assert_int_equal(bt_precision_resolve(&job, &cpu, &p, d, sizeof d), 0);
    assert_int_equal(p, BT_PREC_FP32);
    assert_non_null(strstr(d, "auto"));
    bt_job_free(&job);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auto),
        cmocka_unit_test(test_explicit),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_from_job),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
