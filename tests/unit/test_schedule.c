/* tests/unit/test_schedule.c — LR schedules (HF's warmup schedules under
 * LambdaLR), optimizer parameter groups and the head-init stream: pure
 * functions checked against values computed by hand / by HF. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/init.h"
#include "engine/optim.h"
#include "engine/schedule.h"

#include <math.h>
#include <string.h>

#define NEAR(a, b) assert_true(fabs((double)(a) - (double)(b)) < 1e-12)

static void test_linear(void **state)
{
    (void)state;
    /* get_linear_schedule_with_warmup(warmup=10, total=100) */
    NEAR(bt_schedule_factor(BT_SCHED_LINEAR, 0, 10, 100), 0.0);
    NEAR(bt_schedule_factor(BT_SCHED_LINEAR, 5, 10, 100), 0.5);
    NEAR(bt_schedule_factor(BT_SCHED_LINEAR, 10, 10, 100), 1.0);
    NEAR(bt_schedule_factor(BT_SCHED_LINEAR, 55, 10, 100), 0.5);
    NEAR(bt_schedule_factor(BT_SCHED_LINEAR, 99, 10, 100), 1.0 / 90.0);
    NEAR(bt_schedule_factor(BT_SCHED_LINEAR, 100, 10, 100), 0.0);
    NEAR(bt_schedule_factor(BT_SCHED_LINEAR, 150, 10, 100), 0.0); /* clamped, never negative */
    /* no warmup: starts at 1 */
    NEAR(bt_schedule_factor(BT_SCHED_LINEAR, 0, 0, 4), 1.0);
    NEAR(bt_schedule_factor(BT_SCHED_LINEAR, 3, 0, 4), 0.25);
    /* warmup 1: max(1, warmup) */
    NEAR(bt_schedule_factor(BT_SCHED_LINEAR, 0, 1, 3), 0.0);
    NEAR(bt_schedule_factor(BT_SCHED_LINEAR, 1, 1, 3), 1.0);
}

static void test_cosine_constant(void **state)
{
    (void)state;
    NEAR(bt_schedule_factor(BT_SCHED_COSINE, 2, 4, 14), 0.5);
    NEAR(bt_schedule_factor(BT_SCHED_COSINE, 4, 4, 14), 1.0);
    NEAR(bt_schedule_factor(BT_SCHED_COSINE, 9, 4, 14), 0.5);  /* half way: cos(pi/2) */
    NEAR(bt_schedule_factor(BT_SCHED_COSINE, 14, 4, 14), 0.0);
    NEAR(bt_schedule_factor(BT_SCHED_COSINE, 6, 4, 14), 0.5 * (1.0 + cos(M_PI * 0.2)));
    NEAR(bt_schedule_factor(BT_SCHED_CONSTANT, 1, 4, 14), 0.25);
    NEAR(bt_schedule_factor(BT_SCHED_CONSTANT, 4, 4, 14), 1.0);
    NEAR(bt_schedule_factor(BT_SCHED_CONSTANT, 1000, 4, 14), 1.0);
    bt_sched_kind k;
    assert_int_equal(bt_schedule_parse("cosine", &k), 0);
    assert_int_equal(k, BT_SCHED_COSINE);
    assert_int_equal(bt_schedule_parse("Cosine", &k), -1);
    assert_string_equal(bt_schedule_name(BT_SCHED_LINEAR), "linear");
}

static bt_bert_param mk(const char *name, int part)
{
    bt_bert_param p;
    memset(&p, 0, sizeof p);
    p.name = (char *)name;
    p.part = part;
    p.no_decay = bt_name_no_decay(name);
    return p;
}

static void test_param_groups(void **state)
{
    (void)state;
    bt_optim_config c = {.lr = 1e-3f, .head_lr = 5e-3f, .layer_decay = 0.5f, .weight_decay = 0.01f};
    int L = 4;
    bt_bert_param top = mk("encoder.layer.3.output.dense.weight", 3);
    bt_bert_param bottom = mk("encoder.layer.0.attention.self.query.weight", 0);
    bt_bert_param emb = mk("embeddings.word_embeddings.weight", BT_PART_EMBED);
    bt_bert_param pool = mk("pooler.dense.weight", BT_PART_POOLER);
    bt_bert_param head = mk("classifier.weight", BT_PART_HEAD);
    bt_bert_param ln = mk("encoder.layer.2.attention.output.LayerNorm.weight", 2);
    bt_bert_param bias = mk("cls.predictions.bias", BT_PART_HEAD);
    assert_true(fabs(bt_param_base_lr(&top, L, &c) - 1e-3f * 0.5) < 1e-12);       /* decay^(L-l) = 0.5^1 */
    assert_true(fabs(bt_param_base_lr(&bottom, L, &c) - 1e-3f * 0.0625) < 1e-12); /* 0.5^4 */
    assert_true(fabs(bt_param_base_lr(&emb, L, &c) - 1e-3f * 0.03125) < 1e-12);  /* 0.5^5 */
    assert_true(fabs(bt_param_base_lr(&pool, L, &c) - (double)1e-3f) < 1e-12);
    assert_true(fabs(bt_param_base_lr(&head, L, &c) - (double)5e-3f) < 1e-12);
    /* weight decay: weights yes; biases and LayerNorm (weight and bias) no */
    assert_true(bt_param_weight_decay(&top, &c) == 0.01f);
    assert_true(bt_param_weight_decay(&emb, &c) == 0.01f);
    assert_true(bt_param_weight_decay(&ln, &c) == 0.0f);
    assert_true(bt_param_weight_decay(&bias, &c) == 0.0f);
    assert_true(bt_name_no_decay("embeddings.LayerNorm.bias"));
    assert_true(bt_name_no_decay("encoder.layer.0.intermediate.dense.bias"));
    assert_false(bt_name_no_decay("encoder.layer.0.intermediate.dense.weight"));
    assert_false(bt_name_no_decay("classifier.weight"));
    /* decay off and head lr unset: everything at lr */
    bt_optim_config plain = {.lr = 2e-5f};
    assert_true(bt_param_base_lr(&emb, L, &plain) == (double)2e-5f);
    assert_true(bt_param_base_lr(&head, L, &plain) == (double)2e-5f);
    assert_true(bt_param_base_lr(&bottom, L, &plain) == (double)2e-5f);
}

static void test_head_init(void **state)
{
    (void)state;
    enum { N = 40001 };
    static float a[N], b[N], c[N];
    bt_init_normal(a, N, 7, BT_INIT_CLASSIFIER_W, 0.02f);
    bt_init_normal(b, N, 7, BT_INIT_CLASSIFIER_W, 0.02f);
    assert_memory_equal(a, b, sizeof a); /* pure function */
    bt_init_normal(c, N, 8, BT_INIT_CLASSIFIER_W, 0.02f);
    assert_true(memcmp(a, c, sizeof a) != 0); /* the seed matters */
    bt_init_normal(c, N, 7, BT_INIT_POOLER_W, 0.02f);
    assert_true(memcmp(a, c, sizeof a) != 0); /* so does the tensor id */
    /* a prefix is the same draws (element i depends only on i) */
    bt_init_normal(c, 5, 7, BT_INIT_CLASSIFIER_W, 0.02f);
    assert_memory_equal(a, c, 5 * sizeof(float));
    double s = 0, s2 = 0;
    for (int i = 0; i < N; i++) s += a[i], s2 += (double)a[i] * a[i];
    double mean = s / N, sd = sqrt(s2 / N - mean * mean);
    assert_true(fabs(mean) < 0.02 * 0.03);
    assert_true(fabs(sd - 0.02) < 0.02 * 0.02);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_cosine_constant),
        cmocka_unit_test(test_param_groups),
        cmocka_unit_test(test_head_init),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
