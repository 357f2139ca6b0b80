/* tests/unit/test_precision.c — mixed precision in the engine on a tiny
 * random BERT (tiny_bert.h), CPU backend: gradients of every head in bf16 and
 * fp16 against fp32; training losses within 2% of fp32; bit-exact repeats and
 * resume (snapshot -> restore -> loss scaler state) in bf16 and fp16; the fp16
 * loss scaler (forced overflow skips steps and halves the scale without
 * touching weights or moments, growth after N clean steps, the schedule
 * following the skipped steps, the state's round trip and refusals, the
 * floor error); tf32 refused on the CPU. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/bert.h"
#include "engine/train.h"
#include "kernels/backend.h"
#include "tiny_bert.h"
#include "state/safetensors.h"
#include "util/err.h"
#include "util/file.h"
#include "util/mem.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const bt_precision LPS[2] = {BT_PREC_BF16, BT_PREC_FP16};

/* Six examples, lengths 3..6. */
static int32_t ids[6][6] = {{2, 5, 7, 1, 9, 3}, {2, 11, 3}, {2, 4, 0, 12, 3}, {2, 8, 8, 6, 3}, {2, 10, 3, 5},
                            {2, 1, 4, 3}};
static int32_t tts[6][6] = {{0, 0, 0, 1, 1, 1}, {0, 0, 0}, {0, 0, 1, 1, 1}, {0, 0, 0, 0, 0}, {0, 1, 1, 1}, {0}};
static int32_t toklab[6][6] = {{-100, 1, 0, 2, -100, 1}, {-100, 2, 0}, {-100, 1, 1, 0, 2}, {-100, 0, 0, 1, 2},
                               {-100, 2, 2, 1}, {-100, 1, 0, 0}};
static int32_t mlmlab[6][6] = {{-100, 4, -100, -100, 9, -100}, {-100, 12, -100}, {-100, -100, 6, -100, 1},
                               {-100, 3, -100, 7, -100}, {-100, -100, 10, -100}, {-100, 5, -100, -100}};
static int lens[6] = {6, 3, 5, 5, 4, 4};
static int32_t labels[6] = {2, 0, 1, 1, 2, 0};
static float targets[6 * C] = {1, 0, 1, 0, 0, 1, 1, 1, 0, 0, 1, 0, 1, 0, 0, 0, 1, 1};

/* examples [first, first + n) */
static bt_batch make_batch(bt_task task, int first, int n, const int32_t **pi, const int32_t **pt, const int32_t **pl)
{
    for (int i = 0; i < n; i++) {
        pi[i] = ids[first + i];
        pt[i] = tts[first + i];
        pl[i] = task == BT_TASK_MLM ? mlmlab[first + i] : toklab[first + i];
    }
    bt_batch b = {.n = n, .ids = pi, .type_ids = pt, .len = lens + first, .label = labels + first,
                  .target = targets + first * C, .token_labels = task == BT_TASK_SEQ_CLS ? NULL : pl};
    return b;
}

static bt_bert *create_p(bt_backend *be, const char *dir, bt_task task, int problem, bt_precision prec)
{
    bt_bert_opts o = {.task = task, .num_labels = C, .problem = problem, .max_batch = 3, .max_seq = 6,
                      .training = 1, .seed = 5, .precision = prec};
    bt_bert *m = NULL;
    int rc = bt_bert_create(be, dir, &o, &m);
    if (rc) fail_msg("bt_bert_create(%s): %s", bt_precision_name(prec), bt_errmsg());
    return m;
}

static bt_train_config train_cfg(void)
{
    bt_train_config c = {.optim = {.lr = 1e-2f, .head_lr = 2e-2f, .weight_decay = 0.01f, .beta1 = 0.9f,
                                   .beta2 = 0.999f, .eps = 1e-8f},
                         .schedule = BT_SCHED_LINEAR, .warmup_steps = 2, .total_steps = 40, .max_grad_norm = 1.0f};
    return c;
}

static float *grads_of(bt_backend *be, bt_bert *m, const bt_batch *b, float gs, float *loss)
{
    size_t total = bt_bert_total_floats(m);
    float *g = bt_xmalloc(total * sizeof(float));
    bt_bert_zero_grads(m);
    assert_int_equal(bt_bert_forward_backward(m, b, gs, 0, 0, loss), 0);
    be->download(be, g, bt_bert_grads_dev(m), total * sizeof(float));
    return g;
}

/* ||g - g32|| / ||g32|| per parameter tensor <= tol (every tensor with a
 * gradient worth comparing: the key bias's is rounding noise, docs/engine.md). */
static void compare_grads(bt_bert *m, const float *g, const float *g32, double tol, const char *what)
{
    for (size_t i = 0; i < bt_bert_nparams(m); i++) {
        const bt_bert_param *p = bt_bert_param_at(m, i);
        if (strstr(p->name, "attention.self.key.bias")) continue;
        double num = 0, den = 0;
        for (size_t k = 0; k < p->numel; k++) {
            double d = (double)g[p->off + k] - g32[p->off + k];
            num += d * d;
            den += (double)g32[p->off + k] * g32[p->off + k];
        }
        if (den < 1e-20) continue;
        double r = sqrt(num / den);
        if (!(r <= tol)) fail_msg("%s: %s gradient relative error %.3g > %.3g", what, p->name, r, tol);
    }
}

/* Every head and loss: one micro-batch's gradients in bf16 / fp16 are the
 * fp32 ones to within what 8 / 11 significant bits allow (tolerances: a few
 * units of the format's unit roundoff 2^-8 / 2^-11, the rounding of a dozen
 * chained ops). The fp16 run uses a loss scale of 1024 and is unscaled here,
 * as the trainer does. */
static void grads_case(bt_task task, int problem)
{
    char *dir = write_model(0.0f);
    bt_backend *be = bt_backend_cpu_create(1);
    const int32_t *pi[3], *pt[3], *pl[3];
    bt_batch b = make_batch(task, 0, 3, pi, pt, pl);
    bt_bert *m32 = create_p(be, dir, task, problem, BT_PREC_FP32);
    float l32, l;
    float *g32 = grads_of(be, m32, &b, 1.0f, &l32);
    for (int k = 0; k < 2; k++) {
        bt_bert *m = create_p(be, dir, task, problem, LPS[k]);
        float gs = LPS[k] == BT_PREC_FP16 ? 1024.0f : 1.0f;
        float *g = grads_of(be, m, &b, gs, &l);
        size_t total = bt_bert_total_floats(m);
        for (size_t i = 0; i < total; i++) g[i] /= gs;
        char what[96];
        snprintf(what, sizeof what, "%s task %d problem %d", bt_precision_name(LPS[k]), task, problem);
        double u = LPS[k] == BT_PREC_BF16 ? 1.0 / 256 : 1.0 / 2048;
        if (!(fabs(l - l32) <= 4 * u * fabs(l32))) fail_msg("%s: loss %.7g vs fp32 %.7g", what, l, l32);
        compare_grads(m, g, g32, 24 * u, what);
        /* eval logits too */
        int64_t rows = bt_bert_logits_rows(m, &b);
        int cols = bt_bert_logits_cols(m);
        float *lg = bt_xmalloc((size_t)rows * cols * sizeof(float)), *lg32 = bt_xmalloc((size_t)rows * cols * sizeof(float));
        assert_int_equal(bt_bert_eval(m, &b, &l, lg), 0);
        assert_int_equal(bt_bert_eval(m32, &b, &l32, lg32), 0);
        double mx = 0;
        for (int64_t i = 0; i < rows * cols; i++) mx = fmax(mx, fabs(lg32[i]));
        for (int64_t i = 0; i < rows * cols; i++)
            if (!(fabs(lg[i] - lg32[i]) <= 8 * u * mx)) fail_msg("%s: logit %lld: %g vs %g", what, (long long)i, lg[i], lg32[i]);
        free(lg); free(lg32); free(g);
        bt_bert_free(m);
    }
    free(g32);
    bt_bert_free(m32);
    be->destroy(be);
    remove_model(dir);
}

static void test_grads_seq(void **state) { (void)state; grads_case(BT_TASK_SEQ_CLS, BT_LOSS_SINGLE); }
static void test_grads_multi(void **state) { (void)state; grads_case(BT_TASK_SEQ_CLS, BT_LOSS_MULTI); }
static void test_grads_regression(void **state) { (void)state; grads_case(BT_TASK_SEQ_CLS, BT_LOSS_REGRESSION); }
static void test_grads_token(void **state) { (void)state; grads_case(BT_TASK_TOKEN_CLS, BT_LOSS_AUTO); }
static void test_grads_mlm(void **state) { (void)state; grads_case(BT_TASK_MLM, BT_LOSS_AUTO); }

/* Long-document chunk path: pooled vectors out, their gradient in. */
static void test_pooled_path(void **state)
{
    (void)state;
    char *dir = write_model(0.0f);
    bt_backend *be = bt_backend_cpu_create(1);
    const int32_t *pi[3], *pt[3], *pl[3];
    bt_batch b = make_batch(BT_TASK_SEQ_CLS, 0, 3, pi, pt, pl);
    float p32[3 * D], p[3 * D], dp[3 * D];
    for (int i = 0; i < 3 * D; i++) dp[i] = 0.1f * (float)((i % 7) - 3);
    bt_bert *m32 = create_p(be, dir, BT_TASK_SEQ_CLS, BT_LOSS_SINGLE, BT_PREC_FP32);
    assert_int_equal(bt_bert_encode_pooled(m32, &b, 1, 0, 0, p32), 0);
    bt_bert_zero_grads(m32);
    assert_int_equal(bt_bert_backward_pooled(m32, dp, 0, 0), 0);
    size_t total = bt_bert_total_floats(m32);
    float *g32 = bt_xmalloc(total * 4), *g = bt_xmalloc(total * 4);
    be->download(be, g32, bt_bert_grads_dev(m32), total * 4);
    for (int k = 0; k < 2; k++) {
        bt_bert *m = create_p(be, dir, BT_TASK_SEQ_CLS, BT_LOSS_SINGLE, LPS[k]);
        double u = LPS[k] == BT_PREC_BF16 ? 1.0 / 256 : 1.0 / 2048;
        assert_int_equal(bt_bert_encode_pooled(m, &b, 1, 0, 0, p), 0);
        for (int i = 0; i < 3 * D; i++)
            if (!(fabs(p[i] - p32[i]) <= 8 * u)) fail_msg("%s pooled[%d] %g vs %g", bt_precision_name(LPS[k]), i, p[i], p32[i]);
        bt_bert_zero_grads(m);
        assert_int_equal(bt_bert_backward_pooled(m, dp, 0, 0), 0);
        be->download(be, g, bt_bert_grads_dev(m), total * 4);
        compare_grads(m, g, g32, 24 * u, bt_precision_name(LPS[k]));
        bt_bert_free(m);
    }
    free(g32); free(g);
    bt_bert_free(m32);
    be->destroy(be);
    remove_model(dir);
}

/* 40 steps over two alternating batches (dropout 0.1, lr 1e-2 on a D = 8
 * model: every rounding difference is amplified): bf16 and fp16 losses as
 * the runner logs them (means over 10 steps) stay within 2% of fp32's. */
static void test_training_close(void **state)
{
    (void)state;
    char *dir = write_model(0.1f);
    bt_backend *be = bt_backend_cpu_create(2);
    const int32_t *pi[2][3], *pt[2][3], *pl[2][3];
    bt_batch bs[2] = {make_batch(BT_TASK_SEQ_CLS, 0, 3, pi[0], pt[0], pl[0]),
                      make_batch(BT_TASK_SEQ_CLS, 3, 3, pi[1], pt[1], pl[1])};
    enum { STEPS = 40 };
    float loss[3][STEPS];
    bt_precision precs[3] = {BT_PREC_FP32, BT_PREC_BF16, BT_PREC_FP16};
    bt_train_config tc = train_cfg();
    for (int k = 0; k < 3; k++) {
        bt_bert *m = create_p(be, dir, BT_TASK_SEQ_CLS, BT_LOSS_SINGLE, precs[k]);
        bt_trainer *t;
        assert_int_equal(bt_trainer_create(m, &tc, &t), 0);
        for (int s = 0; s < STEPS; s++) {
            bt_step_info info;
            assert_int_equal(bt_train_step(t, &bs[s % 2], 1, &info), 0);
            assert_int_equal(info.skipped, 0);
            assert_true(info.loss_scale == (precs[k] == BT_PREC_FP16 ? 65536.0 : 1.0));
            loss[k][s] = info.loss;
        }
        bt_trainer_free(t);
        bt_bert_free(m);
    }
    /* as the runner logs it: the mean over every 10 steps (TRAIN_LOG_EVERY) */
    double worst[2] = {0, 0}, step_worst[2] = {0, 0}, first = 0, last = 0;
    for (int w = 0; w < STEPS / 10; w++) {
        double mean[3] = {0, 0, 0};
        for (int k = 0; k < 3; k++)
            for (int s = 10 * w; s < 10 * w + 10; s++) mean[k] += loss[k][s] / 10;
        for (int k = 1; k < 3; k++) worst[k - 1] = fmax(worst[k - 1], fabs(mean[k] / mean[0] - 1));
        if (w == 0) first = mean[0];
        last = mean[0];
    }
    for (int k = 1; k < 3; k++)
        for (int s = 0; s < STEPS; s++) step_worst[k - 1] = fmax(step_worst[k - 1], fabs(loss[k][s] / loss[0][s] - 1));
    print_message("training 40 steps: fp32 logged loss %.4f -> %.4f; max relative difference of the logged "
                  "(10-step mean) losses: bf16 %.2e, fp16 %.2e (single steps: %.2e, %.2e)\n", first, last,
                  worst[0], worst[1], step_worst[0], step_worst[1]);
    assert_true(last < 0.7 * first); /* it learns */
    assert_true(worst[0] <= 0.02);
    assert_true(worst[1] <= 0.02);
    assert_true(worst[0] > 0 && worst[1] > 0); /* the 16-bit runs really differ */
    be->destroy(be);
    remove_model(dir);
}

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

/* 6 steps straight, twice (byte-identical), versus 3 steps -> snapshot +
 * scaler state -> a fresh model and trainer restore -> 3 more: byte-identical
 * weights and scaler state, in bf16 and fp16 (dropout on, accumulation 2). The
 * fp16 run starts at scale 2^20 with growth every 2 clean steps, so the
 * resumed part contains both a skip and a growth. */
static void test_resume_exact_lp(void **state)
{
    (void)state;
    char *dir = write_model(0.1f);
    bt_backend *be = bt_backend_cpu_create(2);
    const int32_t *pi[2][3], *pt[2][3], *pl[2][3];
    bt_batch micro[2] = {make_batch(BT_TASK_SEQ_CLS, 0, 3, pi[0], pt[0], pl[0]),
                         make_batch(BT_TASK_SEQ_CLS, 3, 2, pi[1], pt[1], pl[1])};
    bt_train_config tc = train_cfg();
    tc.loss_scale_interval = 2;
    for (int k = 0; k < 2; k++) {
        size_t total = 0;
        float *ref[2] = {NULL, NULL};
        bt_loss_scaler sref;
        int skips = 0;
        for (int rep = 0; rep < 2; rep++) {
            bt_bert *a = create_p(be, dir, BT_TASK_SEQ_CLS, BT_LOSS_SINGLE, LPS[k]);
            tc.loss_scale_init = LPS[k] == BT_PREC_FP16 ? 1048576.0 : 0;
            bt_trainer *ta;
            assert_int_equal(bt_trainer_create(a, &tc, &ta), 0);
            bt_step_info info;
            for (int s = 0; s < 6; s++) {
                assert_int_equal(bt_train_step(ta, micro, 2, &info), 0);
                skips += info.skipped;
            }
            total = bt_bert_total_floats(a);
            ref[rep] = bt_xmalloc(total * 4);
            bt_bert_download_params(a, ref[rep]);
            bt_trainer_loss_scaler(ta, &sref);
            bt_trainer_free(ta);
            bt_bert_free(a);
        }
        assert_memory_equal(ref[0], ref[1], total * 4);
        if (LPS[k] == BT_PREC_FP16) assert_true(skips > 0 && sref.skipped_steps > 0);

        bt_bert *a = create_p(be, dir, BT_TASK_SEQ_CLS, BT_LOSS_SINGLE, LPS[k]);
        bt_trainer *ta;
        assert_int_equal(bt_trainer_create(a, &tc, &ta), 0);
        bt_step_info info;
        for (int s = 0; s < 3; s++) assert_int_equal(bt_train_step(ta, micro, 2, &info), 0);
        bt_tensor_set ws, ms;
        assert_int_equal(bt_trainer_snapshot(ta, NULL, &ws, &ms), 0);
        membuf wb = {0}, mb = {0};
        assert_int_equal(bt_st_write(ws.e, ws.n, NULL, sink, &wb), 0);
        assert_int_equal(bt_st_write(ms.e, ms.n, NULL, sink, &mb), 0);
        bt_tensor_set_free(&ws);
        bt_tensor_set_free(&ms);
        bt_loss_scaler st;
        bt_trainer_loss_scaler(ta, &st);
        /* as plain numbers through text, the way trainer.json keeps them */
        char txt[128];
        snprintf(txt, sizeof txt, "%d %.17g %lld %lld", st.enabled, st.scale, (long long)st.clean_steps,
                 (long long)st.skipped_steps);
        bt_loss_scaler back;
        long long c1, c2;
        assert_int_equal(sscanf(txt, "%d %lg %lld %lld", &back.enabled, &back.scale, &c1, &c2), 4);
        back.clean_steps = c1;
        back.skipped_steps = c2;
        bt_trainer_free(ta);
        bt_bert_free(a);

        bt_bert *c = create_p(be, dir, BT_TASK_SEQ_CLS, BT_LOSS_SINGLE, LPS[k]);
        bt_trainer *tcc;
        assert_int_equal(bt_trainer_create(c, &tc, &tcc), 0);
        bt_st_file *wf, *mf;
        assert_int_equal(bt_st_open_buffer(wb.buf, wb.len, "weights", &wf), 0);
        assert_int_equal(bt_st_open_buffer(mb.buf, mb.len, "moments", &mf), 0);
        assert_int_equal(bt_trainer_restore(tcc, wf, mf), 0);
        bt_trainer_set_step(tcc, 3);
        assert_int_equal(bt_trainer_set_loss_scaler(tcc, &back), 0);
        for (int s = 0; s < 3; s++) assert_int_equal(bt_train_step(tcc, micro, 2, &info), 0);
        float *y = bt_xmalloc(total * 4);
        bt_bert_download_params(c, y);
        assert_memory_equal(ref[0], y, total * 4);
        bt_loss_scaler s2;
        bt_trainer_loss_scaler(tcc, &s2);
        assert_int_equal(s2.enabled, sref.enabled);
        assert_true(s2.scale == sref.scale);
        assert_int_equal(s2.clean_steps, sref.clean_steps);
        assert_int_equal(s2.skipped_steps, sref.skipped_steps);
        print_message("%s resume: scale %g, clean %lld, skipped %lld after 6 steps\n", bt_precision_name(LPS[k]),
                      s2.scale, (long long)s2.clean_steps, (long long)s2.skipped_steps);
        bt_st_close(wf);
        bt_st_close(mf);
        free(wb.buf); free(mb.buf); free(y); free(ref[0]); free(ref[1]);
        bt_trainer_free(tcc);
        bt_bert_free(c);
    }
    be->destroy(be);
    remove_model(dir);
}

/* fp16 with an initial scale of 2^40: the scaled loss gradient overflows
 * F16, so steps are skipped (weights, moments and AdamW step counts byte-
 * unchanged), the scale halves each time, and training recovers; the
 * schedule follows the skipped steps (HF Trainer does not step the scheduler
 * on a skipped step); after `interval` clean steps the scale doubles. */
static void test_scaler_overflow_and_growth(void **state)
{
    (void)state;
    char *dir = write_model(0.0f);
    bt_backend *be = bt_backend_cpu_create(1);
    const int32_t *pi[3], *pt[3], *pl[3];
    bt_batch b = make_batch(BT_TASK_SEQ_CLS, 0, 3, pi, pt, pl);
    bt_train_config tc = train_cfg();
    tc.loss_scale_init = 1099511627776.0; /* 2^40 */
    tc.loss_scale_interval = 3;
    tc.warmup_steps = 4;
    bt_bert *m = create_p(be, dir, BT_TASK_SEQ_CLS, BT_LOSS_SINGLE, BT_PREC_FP16);
    bt_trainer *t;
    assert_int_equal(bt_trainer_create(m, &tc, &t), 0);
    size_t total = bt_bert_total_floats(m), np = bt_bert_nparams(m);
    float *w0 = bt_xmalloc(total * 4), *w1 = bt_xmalloc(total * 4), *m0 = bt_xmalloc(total * 4), *m1 = bt_xmalloc(total * 4);
    int64_t *st0 = bt_xmalloc(np * 8);
    bt_loss_scaler s;
    bt_trainer_loss_scaler(t, &s);
    assert_int_equal(s.enabled, 1);
    assert_true(s.scale == 1099511627776.0);
    int skipped = 0, s_first_clean = -1;
    double scale_prev = s.scale;
    for (int step = 0; step < 40 && s_first_clean < 0; step++) {
        bt_bert_download_params(m, w0);
        be->download(be, m0, bt_adamw_exp_avg_dev(bt_trainer_optim(t)), total * 4);
        memcpy(st0, bt_adamw_steps(bt_trainer_optim(t)), np * 8);
        bt_step_info info;
        assert_int_equal(bt_train_step(t, &b, 1, &info), 0);
        assert_true(info.loss_scale == scale_prev);
        assert_true(isfinite(info.loss));
        bt_trainer_loss_scaler(t, &s);
        if (info.skipped) {
            skipped++;
            assert_false(isfinite(info.grad_norm));
            assert_true(s.scale == scale_prev / 2);
            assert_int_equal(s.clean_steps, 0);
            bt_bert_download_params(m, w1);
            be->download(be, m1, bt_adamw_exp_avg_dev(bt_trainer_optim(t)), total * 4);
            assert_memory_equal(w0, w1, total * 4);
            assert_memory_equal(m0, m1, total * 4);
            assert_memory_equal(st0, bt_adamw_steps(bt_trainer_optim(t)), np * 8);
            /* the schedule did not advance: warmup's first factor is 0 */
            assert_true(info.lr == 0.0);
        } else {
            s_first_clean = step;
            assert_true(isfinite(info.grad_norm));
            assert_true(s.scale == scale_prev);
            assert_int_equal(s.clean_steps, 1);
            assert_true(info.lr == 0.0); /* schedule step 0 (warmup) although the step counter is > 0 */
        }
        scale_prev = s.scale;
        assert_int_equal(s.skipped_steps, skipped);
        assert_int_equal(bt_trainer_step(t), step + 1);
    }
    /* |dlogits| ~ 1/3: F16 holds the scaled gradient from about 2^16 on */
    print_message("fp16 from scale 2^40: %d steps skipped, first clean step at scale 2^%.0f\n", skipped,
                  log2(scale_prev));
    assert_true(skipped >= 20 && skipped <= 26);
    assert_true(s_first_clean == skipped);
    /* growth: interval 3 clean steps double the scale (unless that overflows again) */
    bt_step_info info;
    double before = s.scale;
    assert_int_equal(bt_train_step(t, &b, 1, &info), 0);
    assert_int_equal(bt_train_step(t, &b, 1, &info), 0);
    bt_trainer_loss_scaler(t, &s);
    if (!info.skipped) {
        assert_true(s.scale == before * 2);
        assert_int_equal(s.clean_steps, 0);
        assert_true(info.lr > 0); /* warmup step 2 of 4 */
    }
    free(w0); free(w1); free(m0); free(m1); free(st0);
    bt_trainer_free(t);
    bt_bert_free(m);
    be->destroy(be);
    remove_model(dir);
}

/* The state's round trip and refusals; disabled outside fp16. */
static void test_scaler_state(void **state)
{
    (void)state;
    char *dir = write_model(0.0f);
    bt_backend *be = bt_backend_cpu_create(1);
    bt_train_config tc = train_cfg();
    bt_bert *m = create_p(be, dir, BT_TASK_SEQ_CLS, BT_LOSS_SINGLE, BT_PREC_FP16);
    bt_trainer *t;
    assert_int_equal(bt_trainer_create(m, &tc, &t), 0);
    bt_trainer_set_step(t, 100);
    bt_loss_scaler s = {1, 512.0, 1999, 7}, g;
    assert_int_equal(bt_trainer_set_loss_scaler(t, &s), 0);
    bt_trainer_loss_scaler(t, &g);
    assert_true(g.enabled == 1 && g.scale == 512.0 && g.clean_steps == 1999 && g.skipped_steps == 7);
    bt_loss_scaler bad[] = {{1, NAN, 0, 0}, {1, -2.0, 0, 0}, {1, 0.0, 0, 0}, {1, INFINITY, 0, 0},
                            {1, 0.1, 0, 0} /* not a float */, {1, 512.0, 2000, 0}, {1, 512.0, -1, 0},
                            {1, 512.0, 0, 101}, {0, 1.0, 0, -1}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(bt_trainer_set_loss_scaler(t, &bad[i]), BT_EDATA);
        assert_non_null(strstr(bt_errmsg(), "loss scaler"));
    }
    bt_trainer_loss_scaler(t, &g); /* refusals change nothing */
    assert_true(g.scale == 512.0 && g.clean_steps == 1999 && g.skipped_steps == 7);
    /* a state from a run without scaling: fp16 starts at the initial scale, keeps the skips */
    bt_loss_scaler off = {0, 1.0, 0, 3};
    assert_int_equal(bt_trainer_set_loss_scaler(t, &off), 0);
    bt_trainer_loss_scaler(t, &g);
    assert_true(g.scale == 65536.0 && g.clean_steps == 0 && g.skipped_steps == 3);
    bt_trainer_free(t);
    bt_bert_free(m);
    /* bf16 and fp32: no scaling; set keeps only the skipped steps */
    bt_precision others[2] = {BT_PREC_BF16, BT_PREC_FP32};
    for (int k = 0; k < 2; k++) {
        m = create_p(be, dir, BT_TASK_SEQ_CLS, BT_LOSS_SINGLE, others[k]);
        assert_int_equal(bt_trainer_create(m, &tc, &t), 0);
        bt_trainer_loss_scaler(t, &g);
        assert_true(g.enabled == 0 && g.scale == 1.0 && g.clean_steps == 0 && g.skipped_steps == 0);
        bt_trainer_set_step(t, 5);
        assert_int_equal(bt_trainer_set_loss_scaler(t, &s), BT_EDATA); /* 7 skipped of 5 steps */
        s.skipped_steps = 4;
        assert_int_equal(bt_trainer_set_loss_scaler(t, &s), 0);
        s.skipped_steps = 7;
        bt_trainer_loss_scaler(t, &g);
        assert_true(g.enabled == 0 && g.scale == 1.0 && g.skipped_steps == 4);
        bt_trainer_free(t);
        bt_bert_free(m);
    }
    be->destroy(be);
    remove_model(dir);
}

/* A model whose forward overflows F16 whatever the scale (a classifier
 * weight of 1e5 puts the logits past 65504): every step is skipped until the
 * scale falls below 2^-24, then a clear error instead of skipping forever. */
static void test_scaler_floor(void **state)
{
    (void)state;
    char *dir = write_model(0.0f);
    bt_backend *be = bt_backend_cpu_create(1);
    const int32_t *pi[3], *pt[3], *pl[3];
    bt_batch b = make_batch(BT_TASK_SEQ_CLS, 0, 3, pi, pt, pl);
    bt_train_config tc = train_cfg();
    bt_bert *m = create_p(be, dir, BT_TASK_SEQ_CLS, BT_LOSS_SINGLE, BT_PREC_FP16);
    size_t total = bt_bert_total_floats(m);
    float *w = bt_xmalloc(total * 4);
    bt_bert_download_params(m, w);
    const bt_bert_param *cw = bt_bert_find(m, "classifier.weight");
    for (size_t k = 0; k < cw->numel; k++) w[cw->off + k] = (k % 2 ? 1e5f : -1e5f);
    bt_bert_upload_params(m, w);
    bt_trainer *t;
    assert_int_equal(bt_trainer_create(m, &tc, &t), 0);
    int rc = 0, steps = 0;
    bt_step_info info;
    while (steps < 100 && (rc = bt_train_step(t, &b, 1, &info)) == 0) {
        assert_int_equal(info.skipped, 1);
        steps++;
    }
    assert_int_equal(rc, BT_EDATA);
    assert_int_equal(steps, 40); /* 2^16 -> 2^-24 */
    assert_non_null(strstr(bt_errmsg(), "bf16"));
    free(w);
    bt_trainer_free(t);
    bt_bert_free(m);
    be->destroy(be);
    remove_model(dir);
}

static void test_tf32_refused_on_cpu(void **state)
{
    (void)state;
    char *dir = write_model(0.0f);
    bt_backend *be = bt_backend_cpu_create(1);
    bt_bert_opts o = {.task = BT_TASK_SEQ_CLS, .num_labels = C, .max_batch = 3, .max_seq = 6, .training = 1,
                      .seed = 5, .precision = BT_PREC_TF32};
    bt_bert *m = NULL;
    assert_int_equal(bt_bert_create(be, dir, &o, &m), BT_ECONFIG);
    assert_null(m);
    const char *e = bt_errmsg();
    assert_non_null(strstr(e, "precision = tf32"));
    assert_non_null(strstr(e, "fp32"));
    assert_string_equal(bt_precision_name(BT_PREC_BF16), "bf16");
    be->destroy(be);
    remove_model(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grads_seq),
        cmocka_unit_test(test_grads_multi),
        cmocka_unit_test(test_grads_regression),
        cmocka_unit_test(test_grads_token),
        cmocka_unit_test(test_grads_mlm),
        cmocka_unit_test(test_pooled_path),
        cmocka_unit_test(test_training_close),
        cmocka_unit_test(test_resume_exact_lp),
        cmocka_unit_test(test_scaler_overflow_and_growth),
        cmocka_unit_test(test_scaler_state),
        cmocka_unit_test(test_scaler_floor),
        cmocka_unit_test(test_tf32_refused_on_cpu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
