/* tests/unit/test_recompute.c — activation checkpointing and the attention
 * kernel choice, on the CPU backend with small random BERTs:
 *  - train.recompute = none | attention | full train to byte-identical
 *    weights (every task; fp32 / fp16 / bf16; dropout on; the stored-
 *    probability attention (S = 40) and the recomputing one (S = 270));
 *  - the same for DeBERTa-v3-like and v2-like sequence classifiers (the
 *    relative embeddings' projections and the disentangled attention's
 *    probabilities recomputed per layer);
 *  - a model that keeps the attention probabilities and one that recomputes
 *    them from the log-sum-exp give the same outputs, and gradients within
 *    1e-5 relative in fp32;
 *  - the memory each mode holds (bt_bert_memory_of): probabilities only where
 *    the backend reads them, and less with each level of recompute. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/bert.h"
#include "engine/train.h"
#include "kernels/backend.h"
#include "kernels/workspace.h"
#include "rand_bert.h"
#include "util/err.h"

#include <math.h>
#include <string.h>

static const rb_dims DIMS = {.V = 40, .D = 16, .L = 3, .H = 2, .I = 32, .P = 320, .T = 2, .C = 3, .dropout = 0.1f};
static const rb_dims DEB3 = {.V = 40, .D = 16, .L = 3, .H = 2, .I = 32, .P = 320, .T = 0, .C = 3, .dropout = 0.1f,
                             .deberta = 1};
static const rb_dims DEB2 = {.V = 40, .D = 16, .L = 3, .H = 2, .I = 32, .P = 320, .T = 2, .C = 3, .dropout = 0.1f,
                             .deberta = 2};
static char *bert_dir, *deb3_dir, *deb2_dir;
static const char *model_dir; /* the model the next create() reads: one of the three */

static int setup(void **state)
{
    (void)state;
    bert_dir = rb_write(&DIMS, 1);
    deb3_dir = rb_write(&DEB3, 1);
    deb2_dir = rb_write(&DEB2, 1);
    model_dir = bert_dir;
    return 0;
}
static int teardown(void **state)
{
    (void)state;
    rb_remove(bert_dir);
    rb_remove(deb3_dir);
    rb_remove(deb2_dir);
    return 0;
}

/* A batch of 3 examples, lengths S, S - 17, S / 2; ids, labels from a fixed
 * pattern; for MLM every third token carries a label. */
typedef struct {
    int32_t *ids[3], *lab[3];
    const int32_t *pi[3], *pl[3];
    int len[3];
    int32_t cls[3];
    bt_batch b;
} batch3;

static void batch_make(batch3 *t, bt_task task, int S, int salt)
{
    memset(t, 0, sizeof *t);
    int lens[3] = {S, S - 17, S / 2};
    for (int i = 0; i < 3; i++) {
        t->len[i] = lens[i];
        t->ids[i] = bt_xcalloc((size_t)S, sizeof(int32_t));
        t->lab[i] = bt_xcalloc((size_t)S, sizeof(int32_t));
        for (int s = 0; s < S; s++) {
            t->ids[i][s] = 1 + (int32_t)((s * 7 + i * 13 + salt * 5) % (DIMS.V - 1));
            if (task == BT_TASK_MLM) t->lab[i][s] = s % 3 == 1 ? (int32_t)((s + i + salt) % DIMS.V) : -100;
            else t->lab[i][s] = s == 0 ? -100 : (int32_t)((s + i + salt) % DIMS.C);
        }
        t->pi[i] = t->ids[i];
        t->pl[i] = t->lab[i];
        t->cls[i] = (i + salt) % DIMS.C;
    }
    t->b = (bt_batch){.n = 3, .ids = t->pi, .len = t->len, .label = t->cls,
                      .token_labels = task == BT_TASK_SEQ_CLS ? NULL : t->pl};
}

static void batch_free(batch3 *t)
{
    for (int i = 0; i < 3; i++) { free(t->ids[i]); free(t->lab[i]); }
}

static bt_bert *create(bt_backend *be, bt_task task, int max_seq, bt_precision prec, bt_recompute rc)
{
    bt_bert_opts o = {.task = task, .num_labels = DIMS.C, .max_batch = 3, .max_seq = max_seq, .training = 1,
                      .seed = 11, .precision = prec, .recompute = rc};
    bt_bert *m = NULL;
    if (bt_bert_create(be, model_dir, &o, &m)) fail_msg("bt_bert_create: %s", bt_errmsg());
    return m;
}

/* Two optimizer steps of two micro-batches each; the final weights. */
static float *train_two_steps(bt_task task, int S, bt_precision prec, bt_recompute rc, size_t *total)
{
    bt_backend *be = bt_backend_cpu_create(2);
    bt_bert *m = create(be, task, S, prec, rc);
    bt_train_config tc = {.optim = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f},
                          .schedule = BT_SCHED_CONSTANT, .total_steps = 10, .max_grad_norm = 1.0f};
    bt_trainer *t = NULL;
    assert_int_equal(bt_trainer_create(m, &tc, &t), 0);
    for (int step = 0; step < 2; step++) {
        batch3 mb[2];
        batch_make(&mb[0], task, S, 2 * step);
        batch_make(&mb[1], task, S - 3, 2 * step + 1);
        bt_batch micro[2] = {mb[0].b, mb[1].b};
        bt_step_info info;
        if (bt_train_step(t, micro, 2, &info)) fail_msg("bt_train_step: %s", bt_errmsg());
        assert_false(info.skipped);
        batch_free(&mb[0]);
        batch_free(&mb[1]);
    }
    *total = bt_bert_total_floats(m);
    float *w = bt_xmalloc(*total * sizeof(float));
    bt_bert_download_params(m, w);
    bt_trainer_free(t);
    bt_bert_free(m);
    be->destroy(be);
    return w;
}

/* lens: 1 the short length (stored probabilities), 2 the long one
 * (recomputed from lse), 3 both */
static void modes_identical(bt_task task, bt_precision prec, int which)
{
    static const int lens[2] = {40, 270};
    for (int k = 0; k < 2; k++) {
        if (!(which & (1 << k))) continue;
        size_t n0, n1, n2;
        float *w0 = train_two_steps(task, lens[k], prec, BT_RECOMPUTE_NONE, &n0);
        float *w1 = train_two_steps(task, lens[k], prec, BT_RECOMPUTE_ATTENTION, &n1);
        float *w2 = train_two_steps(task, lens[k], prec, BT_RECOMPUTE_FULL, &n2);
        assert_int_equal(n0, n1);
        assert_int_equal(n0, n2);
        if (memcmp(w0, w1, n0 * sizeof(float)) || memcmp(w0, w2, n0 * sizeof(float)))
            fail_msg("%s task %d %s S=%d: recompute none / attention / full trained to different weights",
                     model_dir, (int)task, bt_precision_name(prec), lens[k]);
        free(w0); free(w1); free(w2);
    }
}

static void test_modes_seq(void **state)
{
    (void)state;
    modes_identical(BT_TASK_SEQ_CLS, BT_PREC_FP32, 3);
    modes_identical(BT_TASK_SEQ_CLS, BT_PREC_FP16, 1);
    modes_identical(BT_TASK_SEQ_CLS, BT_PREC_BF16, 1);
}
static void test_modes_mlm(void **state)
{
    (void)state;
    modes_identical(BT_TASK_MLM, BT_PREC_FP32, 1);
    modes_identical(BT_TASK_MLM, BT_PREC_BF16, 2);
}
static void test_modes_token(void **state)
{
    (void)state;
    modes_identical(BT_TASK_TOKEN_CLS, BT_PREC_FP32, 1);
    modes_identical(BT_TASK_TOKEN_CLS, BT_PREC_FP16, 2);
}

/* DeBERTa keeps the probabilities at every length (its backward reads
 * them): both lengths store them, one layer's worth under recompute. */
static void test_modes_deberta(void **state)
{
    (void)state;
    model_dir = deb3_dir;
    modes_identical(BT_TASK_SEQ_CLS, BT_PREC_FP32, 3);
    modes_identical(BT_TASK_SEQ_CLS, BT_PREC_BF16, 1);
    model_dir = deb2_dir;
    modes_identical(BT_TASK_SEQ_CLS, BT_PREC_FP32, 3);
    modes_identical(BT_TASK_SEQ_CLS, BT_PREC_FP16, 1);
    model_dir = bert_dir;
}

/* Model A keeps the probabilities (max_seq 200 <= 256), model B recomputes
 * them (max_seq 300); the same batch (longest 200): the same logits, and
 * gradients within 1e-5 relative per tensor. */
static void kernels_agree(bt_task task)
{
    bt_backend *be = bt_backend_cpu_create(2);
    bt_bert *a = create(be, task, 200, BT_PREC_FP32, BT_RECOMPUTE_NONE);
    bt_bert *b = create(be, task, 300, BT_PREC_FP32, BT_RECOMPUTE_NONE);
    bt_bert_memory ma, mb;
    bt_bert_memory_of(a, &ma);
    bt_bert_memory_of(b, &mb);
    assert_true(ma.probs > 0);
    assert_int_equal(mb.probs, 0);
    batch3 t;
    batch_make(&t, task, 200, 7);
    float la, lb;
    bt_bert_zero_grads(a);
    bt_bert_zero_grads(b);
    assert_int_equal(bt_bert_forward_backward(a, &t.b, 1.0f, 3, 1, &la), 0);
    assert_int_equal(bt_bert_forward_backward(b, &t.b, 1.0f, 3, 1, &lb), 0);
    assert_true(la == lb); /* the forward is the same arithmetic either way */
    size_t total = bt_bert_total_floats(a);
    float *ga = bt_xmalloc(total * sizeof(float)), *gb = bt_xmalloc(total * sizeof(float));
    be->download(be, ga, bt_bert_grads_dev(a), total * sizeof(float));
    be->download(be, gb, bt_bert_grads_dev(b), total * sizeof(float));
    double gmax = 0;
    for (size_t k = 0; k < total; k++) gmax = fmax(gmax, fabs(gb[k]));
    for (size_t i = 0; i < bt_bert_nparams(a); i++) {
        const bt_bert_param *p = bt_bert_param_at(a, i);
        double mx = 0, err = 0;
        for (size_t k = 0; k < p->numel; k++) {
            mx = fmax(mx, fabs(gb[p->off + k]));
            err = fmax(err, fabs((double)ga[p->off + k] - gb[p->off + k]));
        }
        /* the key bias's exact gradient is 0 (a softmax ignores a constant
         * added to a row): both are rounding noise, bounded by the model's scale */
        if (strstr(p->name, "attention.self.key.bias")) mx = gmax;
        if (!(err <= 1e-5 * mx)) fail_msg("%s: gradients differ by %.3g (max %.3g)", p->name, err, mx);
    }
    /* evaluation outputs: bit-identical */
    int64_t rows = bt_bert_logits_rows(a, &t.b);
    float *oa = bt_xmalloc((size_t)rows * bt_bert_logits_cols(a) * sizeof(float));
    float *ob = bt_xmalloc((size_t)rows * bt_bert_logits_cols(a) * sizeof(float));
    assert_int_equal(bt_bert_eval(a, &t.b, NULL, oa), 0);
    assert_int_equal(bt_bert_eval(b, &t.b, NULL, ob), 0);
    assert_memory_equal(oa, ob, (size_t)rows * bt_bert_logits_cols(a) * sizeof(float));
    free(oa); free(ob); free(ga); free(gb);
    batch_free(&t);
    bt_bert_free(a);
    bt_bert_free(b);
    be->destroy(be);
}

static void test_kernels_agree(void **state)
{
    (void)state;
    kernels_agree(BT_TASK_SEQ_CLS);
    kernels_agree(BT_TASK_MLM);
}

static void test_memory_by_mode(void **state)
{
    (void)state;
    bt_backend *be = bt_backend_cpu_create(1);
    size_t arena[2][3];
    for (int k = 0; k < 2; k++) {
        int S = k == 0 ? 128 : 300;
        for (int r = 0; r < 3; r++) {
            bt_bert *m = create(be, BT_TASK_SEQ_CLS, S, BT_PREC_FP32, (bt_recompute)r);
            bt_bert_memory mm;
            bt_bert_memory_of(m, &mm);
            size_t one = (size_t)3 * DIMS.H * S * S * sizeof(float); /* B*H*S*S floats: one layer */
            size_t want = S > BT_CPU_ATT_PROBS_MAX_S ? 0 : r == BT_RECOMPUTE_NONE ? DIMS.L * one : one;
            assert_int_equal(mm.probs, want);
            assert_int_equal(mm.params, bt_bert_total_floats(m) * sizeof(float));
            assert_int_equal(mm.grads, mm.params);
            assert_int_equal(mm.copy16, 0);
            arena[k][r] = mm.arena;
            bt_bert_free(m);
        }
        assert_true(arena[k][1] < arena[k][0]);
        assert_true(arena[k][2] < arena[k][1]);
    }
    /* inference keeps neither probabilities nor lse, whatever recompute says */
    bt_bert_opts o = {.task = BT_TASK_SEQ_CLS, .num_labels = DIMS.C, .max_batch = 3, .max_seq = 128, .training = 0,
                      .recompute = BT_RECOMPUTE_FULL};
    bt_bert *m = NULL;
    assert_int_equal(bt_bert_create(be, model_dir, &o, &m), 0);
    bt_bert_memory mm;
    bt_bert_memory_of(m, &mm);
    assert_int_equal(mm.probs, 0);
    assert_int_equal(bt_bert_recompute(m), BT_RECOMPUTE_NONE);
    bt_bert_free(m);
    be->destroy(be);
}

/* DeBERTa: the probabilities of every layer (none) or of one (attention,
 * full), at a length BERT would recompute them too; less with each level. */
static void test_memory_deberta(void **state)
{
    (void)state;
    bt_backend *be = bt_backend_cpu_create(1);
    const char *dirs[2] = {deb3_dir, deb2_dir};
    for (int k = 0; k < 4; k++) {
        int S = k & 1 ? 300 : 64;
        model_dir = dirs[k >> 1];
        size_t arena[3];
        for (int r = 0; r < 3; r++) {
            bt_bert *m = create(be, BT_TASK_SEQ_CLS, S, BT_PREC_FP32, (bt_recompute)r);
            bt_bert_memory mm;
            bt_bert_memory_of(m, &mm);
            size_t one = (size_t)3 * DEB3.H * S * S * sizeof(float);
            assert_int_equal(mm.probs, r == BT_RECOMPUTE_NONE ? DEB3.L * one : one);
            assert_int_equal(bt_bert_recompute(m), r);
            arena[r] = mm.arena;
            bt_bert_free(m);
        }
        assert_true(arena[1] < arena[0]);
        assert_true(arena[2] < arena[1]);
    }
    model_dir = bert_dir;
    be->destroy(be);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_modes_seq),
        cmocka_unit_test(test_modes_mlm),
        cmocka_unit_test(test_modes_token),
        cmocka_unit_test(test_kernels_agree),
        cmocka_unit_test(test_memory_by_mode),
        cmocka_unit_test(test_modes_deberta),
        cmocka_unit_test(test_memory_deberta),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
