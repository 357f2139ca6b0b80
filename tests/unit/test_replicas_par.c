/* tests/unit/test_replicas_par.c — replicas that run concurrently
 * (bt_trainer_set_concurrent, engine/train.h), on CPU backends of their own
 * with a small random BERT:
 *  - 2 concurrent replicas (runtime.threads split between them) given 2
 *    micro-batches per step train to the same bytes (weights, AdamW moments,
 *    losses, gradient norms) as 1 replica given the same 2 on all the
 *    threads; fp32 and bf16, classification and MLM;
 *  - 2 concurrent replicas x 2 micro-batches each == the same replicas run
 *    one after another on one shared backend (the per-replica sums);
 *  - per-replica statistics (micro-batches, examples, tokens, counted bytes);
 *  - a replica that fails (a bad micro-batch; an injected failure) fails the
 *    step with its error after the other one stopped, and leaves every weight
 *    and moment as it was; the next step trains;
 *  - replicas sharing a backend are refused concurrency;
 *  - with the collective, the gradient sum in buckets issued from inside the
 *    replicas' backwards (engine/bucket_sum.h): the same bytes as 1 replica,
 *    every bucket summed once per step, all but the embeddings' during a
 *    backward; with accumulation too; and a replica failing after the
 *    other one finished every bucket leaves the state as it was.
 * It is in make test-tsan (Makefile TSAN_TESTS): the replicas' threads there
 * share the trainer, its loss array and error reporting. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/bert.h"
#include "engine/train.h"
#include "kernels/backend.h"
#include "rand_bert.h"
#include "util/err.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static const rb_dims DIMS = {.V = 40, .D = 16, .L = 2, .H = 2, .I = 32, .P = 64, .T = 2, .C = 3, .dropout = 0.1f};
static char *model_dir;

static int setup(void **state) { (void)state; model_dir = rb_write(&DIMS, 1); return 0; }
static int teardown(void **state) { (void)state; rb_remove(model_dir); return 0; }

#define MB 3 /* examples per micro-batch */

typedef struct {
    int32_t ids[MB][32], lab[MB][32];
    const int32_t *pi[MB], *pl[MB];
    int len[MB];
    int32_t cls[MB];
    bt_batch b;
} batch_t;

static void batch_make(batch_t *t, bt_task task, int S, int salt, int bad)
{
    memset(t, 0, sizeof *t);
    for (int i = 0; i < MB; i++) {
        t->len[i] = S - (i * 5 + salt) % (S / 2);
        for (int s = 0; s < t->len[i]; s++) {
            t->ids[i][s] = 1 + (int32_t)((s * 7 + i * 13 + salt * 5) % (DIMS.V - 1));
            t->lab[i][s] = s % 3 == 1 ? (int32_t)((s + i + salt) % DIMS.V) : -100;
        }
        t->pi[i] = t->ids[i];
        t->pl[i] = t->lab[i];
        t->cls[i] = (i + salt) % DIMS.C;
    }
    if (bad) t->ids[0][0] = DIMS.V; /* outside the vocabulary: the forward refuses it */
    t->b = (bt_batch){.n = MB, .ids = t->pi, .len = t->len, .label = t->cls,
                      .token_labels = task == BT_TASK_MLM ? t->pl : NULL};
}

static bt_bert *create(bt_backend *be, bt_task task, bt_precision prec)
{
    bt_bert_opts o = {.task = task, .num_labels = DIMS.C, .max_batch = MB, .max_seq = 32, .training = 1,
                      .seed = 11, .precision = prec};
    bt_bert *m = NULL;
    if (bt_bert_create(be, model_dir, &o, &m)) fail_msg("bt_bert_create: %s", bt_errmsg());
    return m;
}

static int total_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads(); /* 1 under make test-tsan (OMP_NUM_THREADS=1) */
#else
    return 1;
#endif
}

/* A trainer of `replicas` replicas: concurrent ones each on a backend of its
 * own (runtime.threads split as runner/devices.c does), else all on one.
 * concurrent = 2: and the sums through the backends' collective (bucketed). */
typedef struct {
    bt_backend *be[2];
    bt_bert *m[2];
    bt_trainer *t;
    int n;
} rig;

static void rig_make(rig *g, bt_task task, bt_precision prec, int replicas, int concurrent, int steps)
{
    memset(g, 0, sizeof *g);
    int T = total_threads();
    g->n = replicas;
    g->be[0] = bt_backend_cpu_create(T);
    g->be[1] = concurrent ? bt_backend_cpu_create(T / 2 > 0 ? T / 2 : 1) : NULL;
    for (int j = 0; j < replicas; j++) g->m[j] = create(g->be[concurrent ? j : 0], task, prec);
    bt_train_config tc = {.optim = {.lr = 5e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f},
                          .schedule = BT_SCHED_LINEAR, .warmup_steps = 3, .total_steps = steps,
                          .max_grad_norm = 0.5f, .freeze_layers = 1};
    assert_int_equal(bt_trainer_create(g->m[0], &tc, &g->t), 0);
    if (replicas > 1) assert_int_equal(bt_trainer_set_replicas(g->t, &g->m[1], 1), 0);
    if (concurrent) assert_int_equal(bt_trainer_set_concurrent(g->t, 1, T - T / 2 > 0 ? T - T / 2 : 1), 0);
    if (concurrent == 2) assert_int_equal(bt_trainer_set_collective(g->t, 1), 0);
}

static void rig_free(rig *g)
{
    bt_trainer_free(g->t);
    for (int j = 0; j < g->n; j++) bt_bert_free(g->m[j]);
    for (int j = 0; j < 2; j++)
        if (g->be[j]) g->be[j]->destroy(g->be[j]);
}

/* Weights, exp_avg, exp_avg_sq of replica 0 (malloc'd, 3 x total floats). */
static float *state_of(rig *g)
{
    size_t total = bt_bert_total_floats(g->m[0]);
    float *w = bt_xmalloc(3 * total * sizeof(float));
    bt_bert_download_params(g->m[0], w);
    bt_adamw *o = bt_trainer_optim(g->t);
    memcpy(w + total, bt_adamw_exp_avg_dev(o), total * sizeof(float));
    memcpy(w + 2 * total, bt_adamw_exp_avg_sq_dev(o), total * sizeof(float));
    return w;
}

static int step(rig *g, bt_task task, int s, int n_micro, int bad_k, bt_step_info *info)
{
    batch_t mb[4];
    bt_batch micro[4];
    for (int k = 0; k < n_micro; k++) {
        batch_make(&mb[k], task, 24 + k, s * 8 + k, k == bad_k);
        micro[k] = mb[k].b;
    }
    return bt_train_step(g->t, micro, n_micro, info);
}

/* steps of n_micro micro-batches; losses and norms into l/nm; returns the state */
static float *train(rig *g, bt_task task, int steps, int n_micro, float *l, double *nm)
{
    for (int s = 0; s < steps; s++) {
        bt_step_info info;
        if (step(g, task, s, n_micro, -1, &info)) fail_msg("step %d: %s", s, bt_errmsg());
        l[s] = info.loss;
        nm[s] = info.grad_norm;
    }
    return state_of(g);
}

static void same(bt_task task, bt_precision prec, int a_reps, int a_conc, int b_reps, int b_conc, int n_micro)
{
    enum { STEPS = 20 };
    float la[STEPS], lb[STEPS];
    double na[STEPS], nb[STEPS];
    rig a, b;
    rig_make(&a, task, prec, a_reps, a_conc, STEPS);
    rig_make(&b, task, prec, b_reps, b_conc, STEPS);
    float *wa = train(&a, task, STEPS, n_micro, la, na), *wb = train(&b, task, STEPS, n_micro, lb, nb);
    size_t n = 3 * bt_bert_total_floats(a.m[0]);
    for (int s = 0; s < STEPS; s++)
        if (memcmp(&la[s], &lb[s], sizeof la[s]) || memcmp(&na[s], &nb[s], sizeof na[s]))
            fail_msg("step %d: loss %.9g / %.9g, norm %.17g / %.17g", s, la[s], lb[s], na[s], nb[s]);
    if (memcmp(wa, wb, n * sizeof(float))) fail_msg("other weights or moments after %d steps", STEPS);
    /* replica 1 holds replica 0's bits */
    if (b.n > 1) {
        float *w1 = bt_xmalloc(n / 3 * sizeof(float));
        bt_bert_download_params(b.m[1], w1);
        assert_memory_equal(w1, wb, n / 3 * sizeof(float));
        free(w1);
    }
    free(wa);
    free(wb);
    rig_free(&a);
    rig_free(&b);
}

static void test_two_fp32(void **state) { (void)state; same(BT_TASK_SEQ_CLS, BT_PREC_FP32, 1, 0, 2, 1, 2); }
static void test_two_bf16(void **state) { (void)state; same(BT_TASK_SEQ_CLS, BT_PREC_BF16, 1, 0, 2, 1, 2); }
static void test_two_mlm(void **state) { (void)state; same(BT_TASK_MLM, BT_PREC_FP32, 1, 0, 2, 1, 2); }
/* 2 replicas x 2 micro-batches: concurrent == one after another */
static void test_accum(void **state) { (void)state; same(BT_TASK_SEQ_CLS, BT_PREC_FP32, 2, 0, 2, 1, 4); }

static void test_stats(void **state)
{
    (void)state;
    rig g;
    rig_make(&g, BT_TASK_SEQ_CLS, BT_PREC_FP32, 2, 1, 5);
    bt_step_info info;
    assert_int_equal(step(&g, BT_TASK_SEQ_CLS, 0, 3, -1, &info), 0); /* replica 0: k 0, 2; replica 1: k 1 */
    bt_replica_stats s0, s1, s2;
    bt_trainer_replica_stats(g.t, 0, &s0);
    bt_trainer_replica_stats(g.t, 1, &s1);
    bt_trainer_replica_stats(g.t, 2, &s2);
    assert_int_equal(s0.micro, 2);
    assert_int_equal(s1.micro, 1);
    assert_int_equal(s0.examples, 2 * MB);
    assert_int_equal(s1.examples, MB);
    batch_t b;
    batch_make(&b, BT_TASK_SEQ_CLS, 25, 1, 0);
    int64_t tok = 0;
    for (int i = 0; i < MB; i++) tok += b.len[i];
    assert_int_equal(s1.tokens, tok);
    assert_true(s0.busy_s >= 0 && s1.busy_s >= 0);
    assert_true(s0.peak_bytes > s1.peak_bytes && s1.peak_bytes > 0); /* replica 0's backend holds the optimizer */
    assert_int_equal(s2.micro, 0);
    rig_free(&g);
}

/* conc: rig_make's concurrent (2: the bucketed sum) */
static void failure(int conc)
{
    rig g;
    rig_make(&g, BT_TASK_SEQ_CLS, BT_PREC_FP32, 2, conc, 5);
    bt_step_info info;
    assert_int_equal(step(&g, BT_TASK_SEQ_CLS, 0, 2, -1, &info), 0);
    float *before = state_of(&g);
    size_t n = 3 * bt_bert_total_floats(g.m[0]);
    /* micro-batch 3 (replica 1's second) is bad */
    assert_int_equal(step(&g, BT_TASK_SEQ_CLS, 1, 4, 3, &info), BT_EDATA);
    assert_non_null(strstr(bt_errmsg(), "step 2 micro-batch 3 (replica 1; every replica stopped)"));
    assert_non_null(strstr(bt_errmsg(), "outside the vocabulary"));
    assert_int_equal(bt_trainer_step(g.t), 1);
    float *after = state_of(&g);
    assert_memory_equal(before, after, n * sizeof(float));
    free(after);
    /* an injected failure of replica 1 at step 2 */
    bt_err_clear();
    bt_trainer_inject_failure(g.t, 1, 2);
    assert_int_equal(step(&g, BT_TASK_SEQ_CLS, 1, 2, -1, &info), BT_EIO);
    assert_non_null(strstr(bt_errmsg(), "injected failure of replica 1 at step 2"));
    after = state_of(&g);
    assert_memory_equal(before, after, n * sizeof(float));
    free(after);
    /* and the next step trains */
    bt_trainer_inject_failure(g.t, -1, 0);
    assert_int_equal(step(&g, BT_TASK_SEQ_CLS, 1, 2, -1, &info), 0);
    assert_int_equal(bt_trainer_step(g.t), 2);
    free(before);
    rig_free(&g);
}

static void test_failure(void **state)
{
    (void)state;
    failure(1);
}

/* The bucketed sum: the bytes of 1 replica with the micro-batches
 * accumulated (of 2 replicas summed at the end, when each gets more than one
 * micro-batch: (g0 + g2) + (g1 + g3) is another sum); its statistics. */
static void bucketed(bt_task task, int n_micro)
{
    if (n_micro == 2) same(task, BT_PREC_FP32, 1, 0, 2, 2, n_micro);
    else same(task, BT_PREC_FP32, 2, 1, 2, 2, n_micro);
    rig g;
    rig_make(&g, task, BT_PREC_FP32, 2, 2, 3);
    float l[3];
    double nm[3];
    free(train(&g, task, 3, n_micro, l, nm));
    int buckets = 0;
    int64_t sums = 0, early = 0;
    bt_trainer_bucket_stats(g.t, &buckets, &sums, &early);
    assert_int_equal(buckets, DIMS.L + 2); /* the heads, each layer, the embeddings */
    assert_int_equal(sums, 3 * buckets);
    assert_int_equal(early, 3 * (buckets - 1)); /* the embeddings' only once the backward is done */
    rig_free(&g);
}

static void test_bucketed(void **state)
{
    (void)state;
    bucketed(BT_TASK_SEQ_CLS, 2);
    bucketed(BT_TASK_MLM, 2);
    bucketed(BT_TASK_SEQ_CLS, 4); /* accumulation: each replica's last micro-batch added bucket by bucket */
}

/* A replica failing in a bucketed step after replica 0 finished every
 * bucket: no sum is issued without it, the error is the replica's, none of
 * the step is applied, and the next step trains. */
static void test_bucketed_failure(void **state)
{
    (void)state;
    failure(2);
}

static void test_shared_backend_refused(void **state)
{
    (void)state;
    rig g;
    rig_make(&g, BT_TASK_SEQ_CLS, BT_PREC_FP32, 2, 0, 5);
    assert_int_equal(bt_trainer_set_concurrent(g.t, 1, 1), BT_EINTERNAL);
    assert_non_null(strstr(bt_errmsg(), "share a backend"));
    bt_err_clear();
    rig_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_fp32), cmocka_unit_test(test_two_bf16), cmocka_unit_test(test_two_mlm),
        cmocka_unit_test(test_accum),    cmocka_unit_test(test_stats),    cmocka_unit_test(test_failure),
        cmocka_unit_test(test_shared_backend_refused), cmocka_unit_test(test_bucketed),
        cmocka_unit_test(test_bucketed_failure),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
