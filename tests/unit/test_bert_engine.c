/* tests/unit/test_bert_engine.c — the engine on a tiny random BERT written
 * to a temp dir: gradients against central finite differences (sequence
 * classification with pooler, MLM with the tied decoder, token
 * classification), exact resume through snapshot/restore (dropout on), frozen
 * parts untouched, and bad batches refused with a message. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/bert.h"
#include "engine/train.h"
#include "kernels/backend.h"
#include "tiny_bert.h"
#include "gradcheck.h"
#include "state/safetensors.h"
#include "util/err.h"
#include "util/file.h"
#include "util/mem.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A fixed batch of 3 examples with lengths 6, 3, 5. */
static int32_t ids[3][6] = {{2, 5, 7, 1, 9, 3}, {2, 11, 3}, {2, 4, 0, 12, 3}};
static int32_t tts[3][6] = {{0, 0, 0, 1, 1, 1}, {0, 0, 0}, {0, 0, 1, 1, 1}};
static int32_t toklab[3][6] = {{-100, 1, 0, 2, -100, 1}, {-100, 2, 0}, {-100, 1, 1, 0, 2}};
static int32_t mlmlab[3][6] = {{-100, 4, -100, -100, 9, -100}, {-100, 12, -100}, {-100, -100, 6, -100, 1}};
static int lens[3] = {6, 3, 5};
static int32_t labels[3] = {2, 0, 1};

static bt_batch make_batch(bt_task task, const int32_t **pi, const int32_t **pt, const int32_t **pl)
{
    for (int i = 0; i < 3; i++) {
        pi[i] = ids[i];
        pt[i] = tts[i];
        pl[i] = task == BT_TASK_MLM ? mlmlab[i] : toklab[i];
    }
    bt_batch b = {.n = 3, .ids = pi, .type_ids = pt, .len = lens, .label = labels,
                  .token_labels = task == BT_TASK_SEQ_CLS ? NULL : pl};
    return b;
}

static bt_bert *create(bt_backend *be, const char *dir, bt_task task, int training)
{
    bt_bert_opts o = {.task = task, .num_labels = C, .max_batch = 3, .max_seq = 6, .training = training, .seed = 5};
    bt_bert *m = NULL;
    int rc = bt_bert_create(be, dir, &o, &m);
    if (rc) fail_msg("bt_bert_create: %s", bt_errmsg());
    return m;
}

/* The inference loss of the batch ctx (no dropout). */
static double eval_loss(bt_bert *m, void *ctx)
{
    float loss = 0.0f;
    assert_int_equal(bt_bert_eval(m, (const bt_batch *)ctx, &loss, NULL), 0);
    return loss;
}

static void gradcheck(bt_task task)
{
    char *dir = write_model(0.0f);
    bt_backend *be = bt_backend_cpu_create(1);
    assert_non_null(be);
    bt_bert *m = create(be, dir, task, 1);
    const int32_t *pi[3], *pt[3], *pl[3];
    bt_batch b = make_batch(task, pi, pt, pl);
    size_t total = bt_bert_total_floats(m);
    float *w = bt_xmalloc(total * sizeof(float)), *g = bt_xmalloc(total * sizeof(float));
    float loss;
    bt_bert_zero_grads(m);
    assert_int_equal(bt_bert_forward_backward(m, &b, 1.0f, 0, 0, &loss), 0);
    be->download(be, g, bt_bert_grads_dev(m), total * sizeof(float));
    bt_bert_download_params(m, w);
    int checked = 0, bad = gradcheck_params(m, w, g, eval_loss, &b, 3e-3, &checked);
    assert_true(checked >= 2 * 30);
    assert_int_equal(bad, 0);
    free(w);
    free(g);
    bt_bert_free(m);
    be->destroy(be);
    remove_model(dir);
}

static void test_gradcheck_seq(void **state) { (void)state; gradcheck(BT_TASK_SEQ_CLS); }
static void test_gradcheck_mlm(void **state) { (void)state; gradcheck(BT_TASK_MLM); }
static void test_gradcheck_token(void **state) { (void)state; gradcheck(BT_TASK_TOKEN_CLS); }

typedef struct { uint8_t *buf; size_t len, cap; } membuf;
static int sink(void *ctx, const void *p, size_t n)
{
    membuf *m = ctx;
    if (m->len + n > m->cap) {
        m->cap = (m->len + n) * 2;
        m->buf = bt_xrealloc(m->buf, m->cap);
    }
    memcpy(m->buf + m->len, p, n);
    m->len += n;
    return 0;
}

static bt_train_config train_cfg(void)
{
    bt_train_config c = {.optim = {.lr = 1e-2f, .head_lr = 2e-2f, .weight_decay = 0.01f, .beta1 = 0.9f,
                                   .beta2 = 0.999f, .eps = 1e-8f},
                         .schedule = BT_SCHED_LINEAR, .warmup_steps = 1, .total_steps = 10, .max_grad_norm = 1.0f};
    return c;
}

/* Train 4 steps straight, versus 2 steps -> snapshot -> a fresh model
 * restores -> 2 more steps: the weights must be byte-identical (dropout on). */
static void test_resume_exact(void **state)
{
    (void)state;
    char *dir = write_model(0.1f);
    bt_backend *be = bt_backend_cpu_create(1);
    const int32_t *pi[3], *pt[3], *pl[3];
    bt_batch b = make_batch(BT_TASK_SEQ_CLS, pi, pt, pl);
    bt_batch micro[2] = {b, b};
    micro[1].n = 2; /* a shorter second micro-batch */
    bt_train_config tc = train_cfg();

    bt_bert *a = create(be, dir, BT_TASK_SEQ_CLS, 1);
    bt_trainer *ta;
    assert_int_equal(bt_trainer_create(a, &tc, &ta), 0);
    bt_step_info info;
    for (int s = 0; s < 2; s++) assert_int_equal(bt_train_step(ta, micro, 2, &info), 0);
    assert_int_equal(info.step, 2);
    bt_tensor_set ws, ms;
    assert_int_equal(bt_trainer_snapshot(ta, NULL, &ws, &ms), 0);
    /* weights under HF names of the task's class, moments beside them */
    int found = 0;
    for (size_t i = 0; i < ws.n; i++)
        found += !strcmp(ws.e[i].name, "bert.encoder.layer.1.attention.self.value.weight");
    assert_int_equal(found, 1);
    membuf wb = {0}, mb = {0};
    assert_int_equal(bt_st_write(ws.e, ws.n, NULL, sink, &wb), 0);
    assert_int_equal(bt_st_write(ms.e, ms.n, NULL, sink, &mb), 0);
    bt_tensor_set_free(&ws);
    bt_tensor_set_free(&ms);
    for (int s = 0; s < 2; s++) assert_int_equal(bt_train_step(ta, micro, 2, &info), 0);

    bt_bert *c = create(be, dir, BT_TASK_SEQ_CLS, 1);
    bt_trainer *tcc;
    assert_int_equal(bt_trainer_create(c, &tc, &tcc), 0);
    bt_st_file *wf, *mf;
    assert_int_equal(bt_st_open_buffer(wb.buf, wb.len, "weights", &wf), 0);
    assert_int_equal(bt_st_open_buffer(mb.buf, mb.len, "moments", &mf), 0);
    assert_int_equal(bt_trainer_restore(tcc, wf, mf), 0);
    bt_trainer_set_step(tcc, 2);
    for (int s = 0; s < 2; s++) assert_int_equal(bt_train_step(tcc, micro, 2, &info), 0);

    size_t total = bt_bert_total_floats(a);
    float *x = bt_xmalloc(total * 4), *y = bt_xmalloc(total * 4);
    bt_bert_download_params(a, x);
    bt_bert_download_params(c, y);
    assert_memory_equal(x, y, total * 4);
    /* and a restore that skipped the moments would differ: they matter */
    assert_int_equal(bt_trainer_restore(tcc, wf, NULL), 0);
    bt_st_close(wf);
    bt_st_close(mf);
    free(wb.buf);
    free(mb.buf);
    free(x);
    free(y);
    bt_trainer_free(ta);
    bt_trainer_free(tcc);
    bt_bert_free(a);
    bt_bert_free(c);
    be->destroy(be);
    remove_model(dir);
}

static void test_frozen_untouched(void **state)
{
    (void)state;
    char *dir = write_model(0.1f);
    bt_backend *be = bt_backend_cpu_create(1);
    const int32_t *pi[3], *pt[3], *pl[3];
    bt_batch b = make_batch(BT_TASK_SEQ_CLS, pi, pt, pl);
    bt_train_config tc = train_cfg();
    tc.freeze_embeddings = 1;
    tc.freeze_layers = 1;
    bt_bert *m = create(be, dir, BT_TASK_SEQ_CLS, 1);
    bt_trainer *t;
    assert_int_equal(bt_trainer_create(m, &tc, &t), 0);
    size_t total = bt_bert_total_floats(m);
    float *w0 = bt_xmalloc(total * 4), *w1 = bt_xmalloc(total * 4);
    bt_bert_download_params(m, w0);
    bt_step_info info;
    for (int s = 0; s < 3; s++) assert_int_equal(bt_train_step(t, &b, 1, &info), 0);
    bt_bert_download_params(m, w1);
    int frozen_moved = 0, trainable_moved = 0;
    for (size_t i = 0; i < bt_bert_nparams(m); i++) {
        const bt_bert_param *p = bt_bert_param_at(m, i);
        int moved = memcmp(w0 + p->off, w1 + p->off, p->numel * 4) != 0;
        if (p->part == BT_PART_EMBED || p->part == 0) frozen_moved += moved;
        else if (!strstr(p->name, "key.bias")) trainable_moved += !moved;
    }
    assert_int_equal(frozen_moved, 0);
    assert_int_equal(trainable_moved, 0); /* every trainable tensor changed */
    /* unfreezing: now embeddings move too */
    bt_trainer_set_frozen(t, 0, 0);
    assert_int_equal(bt_train_step(t, &b, 1, &info), 0);
    bt_bert_download_params(m, w0);
    const bt_bert_param *we = bt_bert_find(m, "embeddings.word_embeddings.weight");
    assert_non_null(we);
    assert_true(memcmp(w0 + we->off, w1 + we->off, we->numel * 4) != 0);
    free(w0);
    free(w1);
    bt_trainer_free(t);
    bt_bert_free(m);
    be->destroy(be);
    remove_model(dir);
}

static void test_bad_batches(void **state)
{
    (void)state;
    char *dir = write_model(0.0f);
    bt_backend *be = bt_backend_cpu_create(1);
    bt_bert *m = create(be, dir, BT_TASK_SEQ_CLS, 1);
    const int32_t *pi[3], *pt[3], *pl[3];
    bt_batch b = make_batch(BT_TASK_SEQ_CLS, pi, pt, pl);
    float loss;
    int32_t bad_ids[3] = {2, V, 3};
    pi[1] = bad_ids;
    assert_int_equal(bt_bert_forward_backward(m, &b, 1.0f, 0, 0, &loss), BT_EDATA);
    assert_non_null(strstr(bt_errmsg(), "outside the vocabulary"));
    pi[1] = ids[1];
    int long_lens[3] = {6, 7, 5};
    b.len = long_lens;
    assert_int_equal(bt_bert_eval(m, &b, &loss, NULL), BT_EDATA);
    assert_non_null(strstr(bt_errmsg(), "max_length"));
    b.len = lens;
    int32_t bad_labels[3] = {0, C, 1};
    b.label = bad_labels;
    assert_int_equal(bt_bert_forward_backward(m, &b, 1.0f, 0, 0, &loss), BT_EDATA);
    b.label = labels;
    b.n = 4;
    assert_int_equal(bt_bert_eval(m, &b, &loss, NULL), BT_EDATA);
    b.n = 3;
    assert_int_equal(bt_bert_eval(m, &b, &loss, NULL), 0);
    assert_true(loss > 0.0f && isfinite(loss));
    /* a model dir without weights: error names the file */
    bt_bert *m2 = NULL;
    bt_bert_opts o = {.task = BT_TASK_SEQ_CLS, .max_batch = 1, .max_seq = 4, .training = 0};
    assert_int_not_equal(bt_bert_create(be, "/nonexistent-model-dir", &o, &m2), 0);
    assert_null(m2);
    assert_non_null(strstr(bt_errmsg(), "/nonexistent-model-dir"));
    /* max_seq above the positions */
    o.max_seq = P + 1;
    assert_int_equal(bt_bert_create(be, dir, &o, &m2), BT_ECONFIG);
    bt_bert_free(m);
    be->destroy(be);
    remove_model(dir);
}

/* issue 15: a weight is never left non-finite silently. An update that
 * overflows a weight (finite gradients, a learning rate far too large) is the
 * divergence error naming the tensor; a model file holding a non-finite
 * weight is refused where it is loaded, naming the tensor. */
static void test_nonfinite_weights(void **state)
{
    (void)state;
    char *dir = write_model(0.0f);
    bt_backend *be = bt_backend_cpu_create(1);
    bt_bert *m = create(be, dir, BT_TASK_SEQ_CLS, 1);
    const int32_t *pi[3], *pt[3], *pl[3];
    bt_batch b = make_batch(BT_TASK_SEQ_CLS, pi, pt, pl);
    bt_train_config tc = train_cfg();
    tc.optim.lr = 3e38f;
    tc.optim.weight_decay = 10.0f;
    tc.max_grad_norm = 0.0f;
    tc.schedule = BT_SCHED_CONSTANT;
    tc.warmup_steps = 0;
    bt_trainer *t;
    assert_int_equal(bt_trainer_create(m, &tc, &t), 0);
    bt_step_info info;
    int rc = bt_train_step(t, &b, 1, &info);
    if (rc != BT_EDATA) fail_msg("an overflowing update returned %d: %s", rc, bt_errmsg());
    assert_non_null(strstr(bt_errmsg(), "non-finite"));
    assert_non_null(strstr(bt_errmsg(), "weight tensor "));
    assert_non_null(strstr(bt_errmsg(), "lr"));
    assert_int_equal(bt_trainer_step(t), 0); /* the step does not count */
    bt_trainer_free(t);
    bt_bert_free(m);
    /* NaN in model.safetensors: refused at load, naming the tensor */
    char *mp = bt_path_join(dir, "model.safetensors");
    char *text;
    size_t len;
    assert_int_equal(bt_read_file(mp, 1 << 24, &text, &len), 0);
    bt_st_file *f;
    assert_int_equal(bt_st_open_buffer(text, len, "tiny", &f), 0);
    const bt_st_tensor *x = bt_st_find(f, "encoder.layer.1.output.dense.weight");
    assert_non_null(x);
    size_t off = (size_t)(x->data - (const uint8_t *)text); /* views point into the buffer */
    bt_st_close(f);
    float nan = NAN;
    memcpy(text + off + 4 * 5, &nan, 4);
    assert_int_equal(bt_write_file_atomic(mp, text, len), 0);
    free(text);
    bt_bert_opts o = {.task = BT_TASK_SEQ_CLS, .num_labels = C, .max_batch = 3, .max_seq = 6, .training = 1, .seed = 5};
    m = NULL;
    assert_int_equal(bt_bert_create(be, dir, &o, &m), BT_EDATA);
    assert_non_null(strstr(bt_errmsg(), "encoder.layer.1.output.dense.weight"));
    assert_non_null(strstr(bt_errmsg(), "index 5"));
    free(mp);
    be->destroy(be);
    remove_model(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradcheck_seq),
        cmocka_unit_test(test_gradcheck_mlm),
        cmocka_unit_test(test_gradcheck_token),
        cmocka_unit_test(test_resume_exact),
        cmocka_unit_test(test_frozen_untouched),
        cmocka_unit_test(test_bad_batches),
        cmocka_unit_test(test_nonfinite_weights),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
