/* tests/unit/test_replicas.c — data parallelism in the trainer (engine/train.h,
 * "data parallelism"), on the CPU backend with a small random BERT:
 *  - 2 replicas given 2 micro-batches per step train to the same bytes
 *    (weights, AdamW moments, losses, gradient norms) as 1 replica given the
 *    same 2 (devices = 2 x grad_accum 1 == devices = 1 x grad_accum 2), over
 *    50 steps with dropout, clipping and a frozen layer; fp32, fp16 (loss
 *    scaling, with overflow-skipped steps) and bf16; classification and MLM;
 *  - 3 replicas == 1 replica with 3 micro-batches; a short step (fewer
 *    micro-batches than replicas, the end of an epoch) too;
 *  - every replica holds replica 0's weights after each step and a restore;
 *  - a custom forward/backward (long documents' bt_train_step_fn) gets micro-batch
 *    k on replica k % N and trains to the same bytes as with one replica. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/bert.h"
#include "engine/train.h"
#include "engine/collective_probe.h"
#include "kernels/backend.h"
#include "rand_bert.h"
#include "util/err.h"

#include <math.h>
#include <string.h>

static const rb_dims DIMS = {.V = 40, .D = 16, .L = 2, .H = 2, .I = 32, .P = 64, .T = 2, .C = 3, .dropout = 0.1f};
static char *model_dir;

static int setup(void **state) { (void)state; model_dir = rb_write(&DIMS, 1); return 0; }
static int teardown(void **state) { (void)state; rb_remove(model_dir); return 0; }

#define MB 3 /* examples per micro-batch */

typedef struct {
    int32_t *ids[MB], *lab[MB];
    const int32_t *pi[MB], *pl[MB];
    int len[MB];
    int32_t cls[MB];
    bt_batch b;
} batch_t;

static void batch_make(batch_t *t, bt_task task, int S, int salt)
{
    memset(t, 0, sizeof *t);
    for (int i = 0; i < MB; i++) {
        int len = S - (i * 5 + salt) % (S / 2);
        t->len[i] = len;
        t->ids[i] = bt_xcalloc((size_t)len, sizeof(int32_t));
        t->lab[i] = bt_xcalloc((size_t)len, sizeof(int32_t));
        for (int s = 0; s < len; s++) {
            t->ids[i][s] = 1 + (int32_t)((s * 7 + i * 13 + salt * 5) % (DIMS.V - 1));
            t->lab[i][s] = s % 3 == 1 ? (int32_t)((s + i + salt) % DIMS.V) : -100;
        }
        t->pi[i] = t->ids[i];
        t->pl[i] = t->lab[i];
        t->cls[i] = (i + salt) % DIMS.C;
    }
    t->b = (bt_batch){.n = MB, .ids = t->pi, .len = t->len, .label = t->cls,
                      .token_labels = task == BT_TASK_MLM ? t->pl : NULL};
}

static void batch_free(batch_t *t)
{
    for (int i = 0; i < MB; i++) { free(t->ids[i]); free(t->lab[i]); }
}

static bt_bert *create(bt_backend *be, bt_task task, bt_precision prec)
{
    bt_bert_opts o = {.task = task, .num_labels = DIMS.C, .max_batch = MB, .max_seq = 32, .training = 1,
                      .seed = 11, .precision = prec};
    bt_bert *m = NULL;
    if (bt_bert_create(be, model_dir, &o, &m)) fail_msg("bt_bert_create: %s", bt_errmsg());
    return m;
}

typedef struct {
    float *w;          /* weights, then exp_avg, then exp_avg_sq */
    size_t n;
    float loss[64];
    double norm[64];
    int skipped;       /* skipped steps */
} run_result;

/* 1: run() steps through bt_train_step_fn with fn_step below (a custom
 * forward/backward on the replica the trainer names) */
static int use_fn;
/* 1: each replica on a CPU backend of its own, the sums and broadcasts through
 * the backends' collective (bt_trainer_set_collective: what GPUs use NCCL for) */
static int use_coll;

typedef struct { bt_trainer *t; const bt_batch *micro; } fn_ctx;

static int fn_step(void *ctx, int j, int k, float grad_scale, uint32_t step, float *loss)
{
    fn_ctx *c = ctx;
    if (k % bt_trainer_replicas(c->t) != j) fail_msg("micro-batch %d dealt to replica %d", k, j);
    return bt_bert_forward_backward(bt_trainer_replica(c->t, j), &c->micro[k], grad_scale, step, (uint32_t)k, loss);
}

/* steps optimizer steps of n_micro micro-batches each (every 7th step one
 * fewer: a short step at an epoch's end) on `replicas` replicas. */
static void run(bt_task task, bt_precision prec, int replicas, int n_micro, int steps, double scale0, run_result *r)
{
    bt_backend *be = bt_backend_cpu_create(2);
    bt_bert *m = create(be, task, prec), *extra[4] = {0};
    bt_backend *bes[4] = {0};
    bt_train_config tc = {.optim = {.lr = 5e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f},
                          .schedule = BT_SCHED_LINEAR, .warmup_steps = 3, .total_steps = steps,
                          .max_grad_norm = 0.5f, .freeze_layers = 1, .loss_scale_init = scale0};
    bt_trainer *t = NULL;
    assert_int_equal(bt_trainer_create(m, &tc, &t), 0);
    for (int j = 0; j < replicas - 1; j++) {
        bes[j] = use_coll ? bt_backend_cpu_create(1 + j % 2) : be;
        extra[j] = create(bes[j], task, prec);
    }
    assert_int_equal(bt_trainer_set_replicas(t, extra, replicas - 1), 0);
    if (use_coll && replicas > 1 && bt_trainer_set_collective(t, 1)) fail_msg("collective: %s", bt_errmsg());
    assert_int_equal(bt_trainer_replicas(t), replicas);
    memset(r, 0, sizeof *r);
    size_t total = bt_bert_total_floats(m);
    float *w1 = bt_xmalloc(total * sizeof(float)), *w0 = bt_xmalloc(total * sizeof(float));
    for (int s = 0; s < steps; s++) {
        int n = s % 7 == 6 ? n_micro - 1 : n_micro;
        batch_t mb[4];
        bt_batch micro[4];
        for (int k = 0; k < n; k++) {
            batch_make(&mb[k], task, 24 + k, s * 8 + k);
            micro[k] = mb[k].b;
        }
        bt_step_info info;
        fn_ctx fc = {t, micro};
        int rc = use_fn ? bt_train_step_fn(t, fn_step, &fc, n, &info) : bt_train_step(t, micro, n, &info);
        if (rc) fail_msg("step %d: %s", s, bt_errmsg());
        r->loss[s] = info.loss;
        r->norm[s] = info.grad_norm;
        r->skipped += info.skipped;
        for (int k = 0; k < n; k++) batch_free(&mb[k]);
        /* every replica holds replica 0's weights */
        bt_bert_download_params(m, w0);
        for (int j = 0; j < replicas - 1; j++) {
            bt_bert_download_params(extra[j], w1);
            if (memcmp(w0, w1, total * sizeof(float))) fail_msg("step %d: replica %d's weights differ", s, j + 1);
        }
    }
    if (use_coll && replicas > 1) { /* the sums went bucket by bucket (engine/bucket_sum.h) */
        int nb = 0;
        int64_t sums = 0, early = 0;
        bt_trainer_bucket_stats(t, &nb, &sums, &early);
        assert_true(nb > 0 && sums > 0 && sums % nb == 0);
        assert_true(use_fn ? early == 0 : early > 0); /* a custom forward/backward's: after it */
    }
    r->n = 3 * total;
    r->w = bt_xmalloc(r->n * sizeof(float));
    bt_bert_download_params(m, r->w);
    bt_adamw *o = bt_trainer_optim(t);
    be->download(be, r->w + total, bt_adamw_exp_avg_dev(o), total * sizeof(float));
    be->download(be, r->w + 2 * total, bt_adamw_exp_avg_sq_dev(o), total * sizeof(float));
    free(w0);
    free(w1);
    bt_trainer_free(t);
    for (int j = 0; j < replicas - 1; j++) {
        bt_bert_free(extra[j]);
        if (bes[j] != be) bes[j]->destroy(bes[j]);
    }
    bt_bert_free(m);
    be->destroy(be);
}

static void same(bt_task task, bt_precision prec, int replicas, int steps, double scale0, int want_skips)
{
    run_result a, b;
    run(task, prec, 1, replicas, steps, scale0, &a);
    run(task, prec, replicas, replicas, steps, scale0, &b);
    for (int s = 0; s < steps; s++) {
        if (memcmp(&a.loss[s], &b.loss[s], sizeof a.loss[s]) || memcmp(&a.norm[s], &b.norm[s], sizeof a.norm[s]))
            fail_msg("%s %d replicas, step %d: loss %.9g / %.9g, norm %.17g / %.17g", bt_precision_name(prec), replicas,
                     s, a.loss[s], b.loss[s], a.norm[s], b.norm[s]);
    }
    assert_int_equal(a.skipped, b.skipped);
    if (want_skips) assert_true(a.skipped > 0 && a.skipped < steps / 2);
    assert_int_equal(a.n, b.n);
    if (memcmp(a.w, b.w, a.n * sizeof(float)))
        fail_msg("task %d %s: %d replicas trained to other weights or moments than 1 replica with %d micro-batches",
                 (int)task, bt_precision_name(prec), replicas, replicas);
    /* and training happened */
    run_result c;
    run(task, prec, 1, replicas, 1, scale0, &c);
    assert_true(memcmp(a.w, c.w, a.n * sizeof(float)) != 0);
    free(a.w); free(b.w); free(c.w);
}

static void test_two_fp32(void **state) { (void)state; same(BT_TASK_SEQ_CLS, BT_PREC_FP32, 2, 50, 0, 0); }
static void test_two_bf16(void **state) { (void)state; same(BT_TASK_SEQ_CLS, BT_PREC_BF16, 2, 50, 0, 0); }
/* fp16 with a loss scale far too large: the first steps overflow and are skipped */
static void test_two_fp16(void **state) { (void)state; same(BT_TASK_SEQ_CLS, BT_PREC_FP16, 2, 50, 16777216.0, 1); }
static void test_two_mlm(void **state) { (void)state; same(BT_TASK_MLM, BT_PREC_FP32, 2, 20, 0, 0); }
static void test_three(void **state) { (void)state; same(BT_TASK_SEQ_CLS, BT_PREC_FP32, 3, 15, 0, 0); }

/* the custom forward/backward on 2 and 3 replicas, one after another (concurrently: classify_long in
 * tests/integration/test_run_devices.sh) */
static void test_custom_fb(void **state)
{
    (void)state;
    use_fn = 1;
    same(BT_TASK_SEQ_CLS, BT_PREC_FP32, 2, 20, 0, 0);
    same(BT_TASK_SEQ_CLS, BT_PREC_FP32, 3, 8, 0, 0);
    use_fn = 0;
}

/* the trainer's collective path (one backend per replica, as GPUs; the sum in
 * buckets, engine/bucket_sum.h): the same bytes as 1 replica with the
 * micro-batches accumulated, fp16's skips too */
static void test_collective(void **state)
{
    (void)state;
    use_coll = 1;
    same(BT_TASK_SEQ_CLS, BT_PREC_FP32, 2, 20, 0, 0);
    same(BT_TASK_SEQ_CLS, BT_PREC_FP16, 2, 30, 16777216.0, 1);
    same(BT_TASK_SEQ_CLS, BT_PREC_FP32, 3, 8, 0, 0);
    use_fn = 1;
    same(BT_TASK_SEQ_CLS, BT_PREC_FP32, 2, 8, 0, 0);
    use_fn = 0;
    use_coll = 0;
}

/* the CPU's collective: the sum in replica order, bit for bit; a broadcast;
 * what it refuses; and a trainer refuses it for replicas sharing a backend */
static void test_collective_op(void **state)
{
    (void)state;
    bt_backend *b[3] = {bt_backend_cpu_create(2), bt_backend_cpu_create(1), bt_backend_cpu_create(1)};
    enum { N = 1000 };
    float *x[3], want[N];
    for (int j = 0; j < 3; j++) {
        x[j] = b[j]->alloc(b[j], N * sizeof(float));
        for (int i = 0; i < N; i++) x[j][i] = (float)((i * 7 + j * 13) % 101) * 1.1e-3f * (j ? 1.0f : 1e4f);
    }
    for (int i = 0; i < N; i++) want[i] = (x[0][i] + x[1][i]) + x[2][i];
    assert_int_equal(b[0]->collective(b[0], b, 3, NULL, 0, BT_COLL_SUM), 0); /* prepare */
    assert_int_equal(b[0]->collective(b[0], b, 3, x, N, BT_COLL_SUM), 0);
    assert_memory_equal(x[0], want, sizeof want);
    x[1][5] = -1.0f;
    assert_int_equal(b[0]->collective(b[0], b, 3, x, N, BT_COLL_BCAST), 0);
    assert_memory_equal(x[1], want, sizeof want);
    assert_memory_equal(x[2], want, sizeof want);
    /* a bucket's sum (ASYNC: done at once on the CPU) and the join */
    for (int i = 0; i < N; i++) want[i] = (x[0][i] + x[1][i]) + x[2][i];
    float *hi[3] = {x[0] + N / 2, x[1] + N / 2, x[2] + N / 2};
    assert_int_equal(b[0]->collective(b[0], b, 3, hi, N - N / 2, BT_COLL_SUM | BT_COLL_ASYNC), 0);
    assert_int_equal(b[0]->collective(b[0], b, 3, x, N / 2, BT_COLL_SUM | BT_COLL_ASYNC), 0);
    assert_int_equal(b[0]->collective(b[0], b, 3, x, 0, BT_COLL_JOIN), 0);
    assert_memory_equal(x[0], want, sizeof want);
    assert_int_equal(b[0]->collective(b[0], b, 3, x, N, BT_COLL_BCAST | BT_COLL_ASYNC), BT_EINTERNAL); /* sums only */
    bt_err_clear();
    assert_int_equal(b[0]->collective(b[0], b, 1, x, N, BT_COLL_SUM), BT_EINTERNAL); /* one backend */
    bt_err_clear();
    assert_int_equal(b[1]->collective(b[1], b, 3, x, N, BT_COLL_SUM), BT_EINTERNAL); /* not bes[0] */
    bt_err_clear();
    assert_int_equal(b[0]->collective(b[0], b, 3, x, N, 9), BT_EINTERNAL); /* no such op */
    bt_err_clear();
    for (int j = 0; j < 3; j++) {
        b[j]->free(b[j], x[j]);
        b[j]->destroy(b[j]);
    }
    /* a trainer: replicas sharing a backend, or none, cannot use it */
    bt_backend *be = bt_backend_cpu_create(1);
    bt_train_config tc = {.optim = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f}, .total_steps = 5};
    bt_bert *m = create(be, BT_TASK_SEQ_CLS, BT_PREC_FP32), *r = create(be, BT_TASK_SEQ_CLS, BT_PREC_FP32);
    bt_trainer *t = NULL;
    assert_int_equal(bt_trainer_create(m, &tc, &t), 0);
    assert_int_equal(bt_trainer_set_collective(t, 1), BT_EINTERNAL); /* one replica */
    bt_err_clear();
    assert_int_equal(bt_trainer_set_replicas(t, &r, 1), 0);
    assert_int_equal(bt_trainer_set_collective(t, 1), BT_EINTERNAL); /* a shared backend */
    bt_err_clear();
    assert_int_equal(bt_trainer_set_collective(t, 0), 0);
    bt_trainer_free(t);
    bt_bert_free(r);
    bt_bert_free(m);
    be->destroy(be);
}

/* a collective that is wrong in one way; the probe of bt_trainer_set_collective must refuse it */
static int (*cpu_coll)(bt_backend *, bt_backend *const *, int, float *const *, size_t, int);
static int coll_fault; /* 1: the sum leaves buffer 0 alone; 2: the broadcast does nothing; 3: the sum averages;
                          4: the sum is truncated to BF16; 5: a bucket's (ASYNC) sum does nothing */
static int faulty_coll(bt_backend *be, bt_backend *const *bes, int n, float *const *bufs, size_t count, int op)
{
    int data = bufs && count;
    if (data && ((coll_fault == 1 && op == BT_COLL_SUM) || (coll_fault == 2 && op == BT_COLL_BCAST))) return 0;
    if (data && coll_fault == 5 && op == (BT_COLL_SUM | BT_COLL_ASYNC)) return 0;
    int rc = cpu_coll(be, bes, n, bufs, count, op);
    if (!rc && data && coll_fault == 3 && op == BT_COLL_SUM)
        for (size_t i = 0; i < count; i++) bufs[0][i] /= (float)n;
    if (!rc && data && coll_fault == 4 && op == BT_COLL_SUM)
        for (size_t i = 0; i < count; i++) { /* the sum kept in BF16 */
            uint32_t u;
            memcpy(&u, &bufs[0][i], 4);
            u &= 0xFFFF0000u;
            memcpy(&bufs[0][i], &u, 4);
        }
    return rc;
}

static void test_collective_probe(void **state)
{
    (void)state;
    bt_backend *b[3] = {bt_backend_cpu_create(1), bt_backend_cpu_create(1), bt_backend_cpu_create(1)};
    enum { N = 3000 };
    float *x[3];
    for (int j = 0; j < 3; j++) x[j] = b[j]->alloc(b[j], N * sizeof(float));
    size_t peak = b[1]->peak_bytes(b[1]);
    assert_int_equal(bt_collective_probe(b, x, 2, N), 0); /* the CPU's own: right */
    assert_int_equal(bt_collective_probe(b, x, 3, N), 0);
    assert_int_equal(b[1]->peak_bytes(b[1]), peak); /* (no device memory of its own) */
    cpu_coll = b[0]->collective;
    for (int j = 0; j < 3; j++) b[j]->collective = faulty_coll;
    for (coll_fault = 1; coll_fault <= 5; coll_fault++) {
        assert_int_equal(bt_collective_probe(b, x, 2, N), BT_EINTERNAL);
        assert_int_equal(bt_collective_probe(b, x, 3, N), BT_EINTERNAL);
        if (coll_fault == 5) assert_non_null(strstr(bt_errmsg(), "in two buckets wrongly"));
        bt_err_clear();
    }
    /* a trainer with such replicas is refused the collective and stays on its own sum */
    coll_fault = 3;
    bt_train_config tc = {.optim = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f}, .total_steps = 5};
    bt_bert *m = create(b[0], BT_TASK_SEQ_CLS, BT_PREC_FP32), *r = create(b[1], BT_TASK_SEQ_CLS, BT_PREC_FP32);
    bt_trainer *t = NULL;
    assert_int_equal(bt_trainer_create(m, &tc, &t), 0);
    assert_int_equal(bt_trainer_set_replicas(t, &r, 1), 0);
    assert_int_equal(bt_trainer_set_collective(t, 1), BT_EINTERNAL);
    assert_non_null(strstr(bt_errmsg(), "summed a probe of 2 devices wrongly"));
    bt_err_clear();
    coll_fault = 0;
    assert_int_equal(bt_trainer_set_collective(t, 1), 0);
    bt_trainer_free(t);
    bt_bert_free(r);
    bt_bert_free(m);
    for (int j = 0; j < 3; j++) {
        b[j]->free(b[j], x[j]);
        b[j]->destroy(b[j]);
    }
}

static void test_other_task_refused(void **state)
{
    (void)state;
    bt_backend *be = bt_backend_cpu_create(1);
    bt_train_config tc = {.optim = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f}, .total_steps = 5};
    /* a replica of another task is refused */
    bt_bert *mlm = create(be, BT_TASK_MLM, BT_PREC_FP32);
    bt_trainer *t2 = NULL;
    bt_bert *m2 = create(be, BT_TASK_SEQ_CLS, BT_PREC_FP32);
    assert_int_equal(bt_trainer_create(m2, &tc, &t2), 0);
    assert_int_equal(bt_trainer_set_replicas(t2, &mlm, 1), BT_EINTERNAL);
    bt_err_clear();
    bt_trainer_free(t2);
    bt_bert_free(m2);
    bt_bert_free(mlm);
    be->destroy(be);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_fp32), cmocka_unit_test(test_two_bf16), cmocka_unit_test(test_two_fp16),
        cmocka_unit_test(test_two_mlm),  cmocka_unit_test(test_three),    cmocka_unit_test(test_custom_fb),
        cmocka_unit_test(test_other_task_refused), cmocka_unit_test(test_collective),
        cmocka_unit_test(test_collective_op), cmocka_unit_test(test_collective_probe),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
