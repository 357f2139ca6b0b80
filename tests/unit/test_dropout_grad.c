/* tests/unit/test_dropout_grad.c — gradients with dropout on, against central
 * finite differences, on small random sequence classifiers of each head
 * layout: BERT (pooler), DeBERTa-v3-like and v2-like (ContextPooler: dropout
 * before pooler.dense). Dropout masks are counter-based (keyed by step,
 * micro-batch and site), so the training-mode loss at a fixed step is a
 * smooth function of the weights and its finite difference must match the
 * analytic gradient. The parity tests against Transformers run with dropout
 * 0 (its masks cannot be matched), so this is what proves the backward
 * applies every forward mask (a DeBERTa pooler-input mask was once missing). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/bert.h"
#include "engine/train.h"
#include "kernels/backend.h"
#include "rand_bert.h"
#include "gradcheck.h"
#include "util/err.h"
#include "util/mem.h"

#include <math.h>
#include <stdlib.h>

enum { NB = 3, S = 7 };
static int32_t ids[NB][S] = {{2, 5, 7, 1, 9, 11, 3}, {2, 11, 3}, {2, 4, 6, 12, 3}};
static int32_t tts[NB][S] = {{0, 0, 0, 1, 1, 1, 1}, {0, 0, 0}, {0, 0, 1, 1, 1}};
static int lens[NB] = {7, 3, 5};
static int32_t labels[NB] = {2, 0, 1};

/* The training-mode loss at step 0, micro-batch 0 (grads zeroed first). */
static double train_loss(bt_bert *m, void *ctx)
{
    const bt_batch *b = ctx;
    float loss = 0.0f;
    bt_bert_zero_grads(m);
    if (bt_bert_forward_backward(m, b, 1.0f, 0, 0, &loss)) fail_msg("forward_backward: %s", bt_errmsg());
    return loss;
}

static void gradcheck_dropout(const rb_dims *d)
{
    char *dir = rb_write(d, 1);
    bt_backend *be = bt_backend_cpu_create(1);
    assert_non_null(be);
    bt_bert_opts o = {.task = BT_TASK_SEQ_CLS, .num_labels = d->C, .max_batch = NB, .max_seq = S, .training = 1,
                      .seed = 9, .dropout_set = 1, .dropout = 0.3f};
    bt_bert *m = NULL;
    if (bt_bert_create(be, dir, &o, &m)) fail_msg("bt_bert_create: %s", bt_errmsg());
    const int32_t *pi[NB], *pt[NB];
    for (int i = 0; i < NB; i++) pi[i] = ids[i], pt[i] = tts[i];
    bt_batch b = {.n = NB, .ids = pi, .type_ids = d->T ? pt : NULL, .len = lens, .label = labels};
    size_t total = bt_bert_total_floats(m);
    float *w = bt_xmalloc(total * sizeof(float)), *g = bt_xmalloc(total * sizeof(float));
    train_loss(m, (void *)&b);
    be->download(be, g, bt_bert_grads_dev(m), total * sizeof(float));
    bt_bert_download_params(m, w);
    int checked = 0, bad = gradcheck_params(m, w, g, train_loss, &b, 3e-3, &checked);
    assert_true(checked >= 2 * 20);
    assert_int_equal(bad, 0);
    free(w);
    free(g);
    bt_bert_free(m);
    be->destroy(be);
    rb_remove(dir);
}

static void test_bert(void **state)
{
    (void)state;
    rb_dims d = {.V = 40, .D = 16, .L = 2, .H = 2, .I = 24, .P = 32, .T = 2, .C = 3, .dropout = 0.3f};
    gradcheck_dropout(&d);
}
static void test_deberta_v3(void **state)
{
    (void)state;
    rb_dims d = {.V = 40, .D = 16, .L = 2, .H = 2, .I = 24, .P = 32, .T = 0, .C = 3, .dropout = 0.3f, .deberta = 1};
    gradcheck_dropout(&d);
}
static void test_deberta_v2(void **state)
{
    (void)state;
    rb_dims d = {.V = 40, .D = 16, .L = 2, .H = 2, .I = 24, .P = 32, .T = 2, .C = 3, .dropout = 0.3f, .deberta = 2};
    gradcheck_dropout(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bert),
        cmocka_unit_test(test_deberta_v3),
        cmocka_unit_test(test_deberta_v2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
