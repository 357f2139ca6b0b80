/* tests/unit/test_longdoc_model.c — long-document classification
 * (engine/longdoc_model.c) on a tiny random BERT: gradients of every
 * parameter against central finite differences for mean, max and attention
 * pooling, both when a document fits one encoder pass and when it needs the
 * recomputing schedule (chunk_batch 1); the two schedules give the same
 * gradients; dropout on is deterministic; bad labels are refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/bert.h"
#include "engine/longdoc_model.h"
#include "kernels/backend.h"
#include "gradcheck.h"
#include "tiny_bert.h"
#include "util/err.h"

#include <math.h>

/* Three documents of 11, 3 and 7 content tokens (ids 4..12; [CLS]=2 [SEP]=3). */
static const int32_t doc0[] = {4, 5, 6, 7, 8, 9, 10, 11, 12, 5, 7};
static const int32_t doc1[] = {9, 4, 12};
static const int32_t doc2[] = {6, 6, 8, 10, 4, 11, 5};
static const int32_t *const docs[3] = {doc0, doc1, doc2};
static const size_t doc_len[3] = {11, 3, 7};
static const int32_t doc_label[3] = {2, 0, 1};

enum { S = 6, ATTN = 5 };

typedef struct {
    bt_backend *be;
    bt_bert *m;
    bt_longdoc *ld;
} fixture;

static void setup_fx(fixture *f, const char *dir, bt_doc_pool pool, int chunk_batch, int max_chunks)
{
    f->be = bt_backend_cpu_create(1);
    assert_non_null(f->be);
    bt_bert_opts o = {.task = BT_TASK_SEQ_CLS, .num_labels = C, .max_batch = 4, .max_seq = S, .training = 1,
                      .seed = 5, .doc_attn_dim = pool == BT_DOC_POOL_ATTN ? ATTN : 0};
    if (bt_bert_create(f->be, dir, &o, &f->m)) fail_msg("bt_bert_create: %s", bt_errmsg());
    bt_longdoc_opts lo = {.chunk = {.max_seq_len = S, .stride = 1, .max_chunks = max_chunks, .cap = BT_LONGDOC_CAP_EVEN},
                          .chunk_batch = chunk_batch, .pool = pool, .cls_id = 2, .sep_id = 3, .pad_id = 0, .seed = 9};
    if (bt_longdoc_create(f->m, &lo, &f->ld)) fail_msg("bt_longdoc_create: %s", bt_errmsg());
}

static void teardown_fx(fixture *f)
{
    bt_longdoc_free(f->ld);
    bt_bert_free(f->m);
    f->be->destroy(f->be);
}

/* Mean cross-entropy of the three documents through bt_longdoc_logits. */
static double eval_loss(fixture *f)
{
    double sum = 0;
    for (int i = 0; i < 3; i++) {
        float lg[C];
        assert_int_equal(bt_longdoc_logits(f->ld, docs[i], doc_len[i], lg), 0);
        double mx = lg[0];
        for (int c = 1; c < C; c++) mx = lg[c] > mx ? lg[c] : mx;
        double z = 0;
        for (int c = 0; c < C; c++) z += exp(lg[c] - mx);
        sum += mx + log(z) - lg[doc_label[i]];
    }
    return sum / 3;
}

static float *grads_of(fixture *f, float *loss)
{
    size_t total = bt_bert_total_floats(f->m);
    float *g = bt_xmalloc(total * sizeof(float));
    bt_bert_zero_grads(f->m);
    assert_int_equal(bt_longdoc_forward_backward(f->ld, docs, doc_len, doc_label, 3, 1.0f, 0, 0, loss), 0);
    f->be->download(f->be, g, bt_bert_grads_dev(f->m), total * sizeof(float));
    return g;
}

static double fx_loss(bt_bert *m, void *ctx) { (void)m; return eval_loss(ctx); }

static void gradcheck(bt_doc_pool pool, int chunk_batch)
{
    char *dir = write_model(0.0f);
    fixture f;
    setup_fx(&f, dir, pool, chunk_batch, 0);
    float loss;
    float *g = grads_of(&f, &loss);
    assert_true(fabs(loss - eval_loss(&f)) < 1e-5 * (1 + fabs(loss)));
    size_t total = bt_bert_total_floats(f.m);
    float *w = bt_xmalloc(total * sizeof(float));
    bt_bert_download_params(f.m, w);
    int checked = 0, bad = gradcheck_params(f.m, w, g, fx_loss, &f, pool == BT_DOC_POOL_MAX ? 1e-3 : 3e-3, &checked);
    assert_true(checked >= 2 * 30);
    assert_int_equal(bad, 0);
    free(w);
    free(g);
    teardown_fx(&f);
    remove_model(dir);
}

static void test_grad_mean_one_pass(void **s) { (void)s; gradcheck(BT_DOC_POOL_MEAN, 4); }
static void test_grad_mean_recompute(void **s) { (void)s; gradcheck(BT_DOC_POOL_MEAN, 1); }
static void test_grad_max_recompute(void **s) { (void)s; gradcheck(BT_DOC_POOL_MAX, 2); }
static void test_grad_attn_one_pass(void **s) { (void)s; gradcheck(BT_DOC_POOL_ATTN, 4); }
static void test_grad_attn_recompute(void **s) { (void)s; gradcheck(BT_DOC_POOL_ATTN, 1); }

/* The recomputing schedule gives the gradients of the one-pass schedule. */
static void test_schedules_agree(void **state)
{
    (void)state;
    char *dir = write_model(0.0f);
    fixture a, b;
    setup_fx(&a, dir, BT_DOC_POOL_ATTN, 4, 0);
    setup_fx(&b, dir, BT_DOC_POOL_ATTN, 1, 0);
    float la, lb;
    float *ga = grads_of(&a, &la), *gb = grads_of(&b, &lb);
    assert_true(fabsf(la - lb) <= 1e-6f * (1 + fabsf(la)));
    size_t total = bt_bert_total_floats(a.m);
    double worst = 0;
    for (size_t i = 0; i < total; i++) {
        double d = fabs((double)ga[i] - gb[i]) / (1e-4 + fabs((double)ga[i]));
        if (d > worst) worst = d;
    }
    assert_true(worst < 1e-4);
    free(ga);
    free(gb);
    teardown_fx(&a);
    teardown_fx(&b);
    remove_model(dir);
}

/* Dropout on: the same call twice gives the same bytes; the cap bounds chunks. */
static void test_dropout_deterministic_and_cap(void **state)
{
    (void)state;
    char *dir = write_model(0.3f);
    fixture f;
    setup_fx(&f, dir, BT_DOC_POOL_MEAN, 1, 2);
    assert_int_equal(bt_longdoc_doc_chunks(f.ld, 11), 2);
    float l1, l2;
    float *g1 = grads_of(&f, &l1), *g2 = grads_of(&f, &l2);
    assert_memory_equal(&l1, &l2, sizeof l1);
    assert_memory_equal(g1, g2, bt_bert_total_floats(f.m) * sizeof(float));
    free(g1);
    free(g2);
    teardown_fx(&f);
    remove_model(dir);
}

static void test_bad_label(void **state)
{
    (void)state;
    char *dir = write_model(0.0f);
    fixture f;
    setup_fx(&f, dir, BT_DOC_POOL_MEAN, 2, 0);
    const int32_t bad[3] = {0, 7, 1};
    float loss;
    assert_int_equal(bt_longdoc_forward_backward(f.ld, docs, doc_len, bad, 3, 1.0f, 0, 0, &loss), BT_EDATA);
    assert_non_null(strstr(bt_errmsg(), "label 7"));
    bt_err_clear();
    teardown_fx(&f);
    remove_model(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_mean_one_pass),
        cmocka_unit_test(test_grad_mean_recompute),
        cmocka_unit_test(test_grad_max_recompute),
        cmocka_unit_test(test_grad_attn_one_pass),
        cmocka_unit_test(test_grad_attn_recompute),
        cmocka_unit_test(test_schedules_agree),
        cmocka_unit_test(test_dropout_deterministic_and_cap),
        cmocka_unit_test(test_bad_label),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
