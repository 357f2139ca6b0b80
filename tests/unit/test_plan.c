/* tests/unit/test_plan.c — the memory plan (runner/plan.h) against the CPU
 * backend's allocator on real training steps, and the pieces of
 * micro_batch = auto: picking a divisor that fits, the trainer.json record
 * and its reuse, memory limits, device profiles.
 *
 * The eleven shapes cover fp32 / bf16 / fp16, every head (sequence, MLM,
 * token), the stored-probability attention (S <= 256) and the recomputing
 * one, the three recompute modes, an evaluation batch larger than the
 * micro-batch, DeBERTa-v3-like and v2-like models (the disentangled
 * attention, rel_embeddings) under each recompute mode, and the MLM heads of
 * a DeBERTa model and of ELECTRA generators whose embedding_size is below
 * and above hidden_size (the head's [.,E] rows in buffers sized for D).
 * The plan runs the engine on the counting backend (no weights, no compute);
 * the real step runs on the CPU backend with random weights; their peaks
 * must be equal (they are by construction: the same layout, the same
 * allocations). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/bert.h"
#include "engine/train.h"
#include "kernels/backend.h"
#include "rand_bert.h"
#include "runner/job.h"
#include "runner/plan.h"
#include "util/err.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

typedef struct {
    rb_dims d;
    bt_task task;
    bt_precision prec;
    bt_recompute rc;
    int seq, micro, eval;
} shape;

static const shape SHAPES[] = {
    {{.V = 120, .D = 32, .L = 2, .H = 4, .I = 64, .P = 128, .T = 2, .C = 3, .dropout = 0.1f}, BT_TASK_SEQ_CLS,
     BT_PREC_FP32, BT_RECOMPUTE_NONE, 64, 6, 0},
    {{.V = 200, .D = 48, .L = 3, .H = 4, .I = 96, .P = 320, .T = 2, .C = 2, .dropout = 0.1f}, BT_TASK_MLM,
     BT_PREC_BF16, BT_RECOMPUTE_NONE, 300, 3, 0},
    {{.V = 90, .D = 64, .L = 2, .H = 8, .I = 128, .P = 256, .T = 2, .C = 5, .dropout = 0.1f}, BT_TASK_TOKEN_CLS,
     BT_PREC_FP16, BT_RECOMPUTE_ATTENTION, 128, 4, 0},
    {{.V = 150, .D = 32, .L = 4, .H = 2, .I = 64, .P = 300, .T = 2, .C = 3, .dropout = 0.1f}, BT_TASK_SEQ_CLS,
     BT_PREC_FP32, BT_RECOMPUTE_FULL, 270, 2, 5},
    {{.V = 100, .D = 40, .L = 2, .H = 5, .I = 52, .P = 128, .T = 0, .C = 3, .dropout = 0.1f, .deberta = 1},
     BT_TASK_SEQ_CLS, BT_PREC_FP32, BT_RECOMPUTE_NONE, 48, 4, 6},
    {{.V = 100, .D = 40, .L = 3, .H = 5, .I = 52, .P = 128, .T = 0, .C = 3, .dropout = 0.1f, .deberta = 1},
     BT_TASK_SEQ_CLS, BT_PREC_BF16, BT_RECOMPUTE_ATTENTION, 96, 3, 0},
    {{.V = 100, .D = 40, .L = 3, .H = 5, .I = 52, .P = 128, .T = 2, .C = 3, .dropout = 0.1f, .deberta = 2},
     BT_TASK_SEQ_CLS, BT_PREC_FP32, BT_RECOMPUTE_FULL, 64, 4, 5},
    {{.V = 100, .D = 40, .L = 3, .H = 5, .I = 52, .P = 320, .T = 0, .C = 3, .dropout = 0.1f, .deberta = 1},
     BT_TASK_SEQ_CLS, BT_PREC_FP16, BT_RECOMPUTE_FULL, 300, 2, 0},
    {{.V = 100, .D = 40, .L = 2, .H = 5, .I = 52, .P = 128, .T = 0, .C = 3, .dropout = 0.1f, .deberta = 1},
     BT_TASK_MLM, BT_PREC_FP32, BT_RECOMPUTE_NONE, 48, 3, 4},
    {{.V = 110, .D = 36, .L = 2, .H = 3, .I = 52, .P = 64, .T = 2, .C = 3, .dropout = 0.1f, .E = 22},
     BT_TASK_MLM, BT_PREC_BF16, BT_RECOMPUTE_ATTENTION, 40, 3, 0},
    {{.V = 110, .D = 24, .L = 2, .H = 3, .I = 52, .P = 64, .T = 2, .C = 3, .dropout = 0.1f, .E = 40},
     BT_TASK_MLM, BT_PREC_FP32, BT_RECOMPUTE_NONE, 40, 4, 5},
};
#define N_SHAPES ((int)(sizeof SHAPES / sizeof *SHAPES))

static bt_plan_input input_of(const shape *s, const char *dir)
{
    bt_plan_input in = {.model_dir = dir, .task = s->task, .num_labels = s->d.C, .problem = BT_LOSS_SINGLE,
                        .precision = s->prec, .recompute = s->rc, .seq = s->seq, .eval_batch = s->eval,
                        .threads = 2};
    return in;
}

static bt_plan_device cpu_device(void)
{
    bt_plan_device d = {.name = "cpu", .family = BT_COUNT_CPU, .devices = 1, .memory = (size_t)8 << 30,
                        .overhead = (size_t)300 << 20, .efficiency = 0.8, .tflops_fp32 = 0.05};
    return d;
}

/* n examples of seq random tokens, every token labelled */
typedef struct {
    int32_t *tok;
    const int32_t **rows;
    int *len;
    int32_t *lab;
    bt_batch b;
} rbatch;

static void rbatch_make(rbatch *r, int n, int seq, const rb_dims *d)
{
    r->tok = bt_xcalloc((size_t)n * seq, sizeof *r->tok);
    r->rows = bt_xcalloc((size_t)n, sizeof *r->rows);
    r->len = bt_xcalloc((size_t)n, sizeof *r->len);
    r->lab = bt_xcalloc((size_t)n, sizeof *r->lab);
    for (int i = 0; i < n; i++) {
        for (int s = 0; s < seq; s++) r->tok[(size_t)i * seq + s] = (i * 31 + s * 7) % d->C; /* an id and a label */
        r->rows[i] = r->tok + (size_t)i * seq;
        r->len[i] = seq;
    }
    r->b = (bt_batch){.n = n, .ids = r->rows, .len = r->len, .label = r->lab, .token_labels = r->rows};
}

static void rbatch_free(rbatch *r) { free(r->tok); free(r->rows); free(r->len); free(r->lab); }

/* The peak of the CPU backend's allocator over a real step of n_micro
 * micro-batches (and evaluation). */
static size_t real_peak(const shape *s, const char *dir, int n_micro)
{
    bt_backend *be = bt_backend_cpu_create(2);
    int eval = s->eval;
    bt_bert_opts o = {.task = s->task, .num_labels = s->d.C, .problem = BT_LOSS_SINGLE,
                      .max_batch = s->micro > eval ? s->micro : eval, .max_seq = s->seq, .training = 1, .seed = 3,
                      .precision = s->prec, .recompute = s->rc};
    bt_bert *m = NULL;
    if (bt_bert_create(be, dir, &o, &m)) fail_msg("bt_bert_create: %s", bt_errmsg());
    bt_train_config tc = {.optim = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f}, .total_steps = 2,
                          .max_grad_norm = 1.0f};
    bt_trainer *t = NULL;
    assert_int_equal(bt_trainer_create(m, &tc, &t), 0);
    rbatch rb;
    rbatch_make(&rb, s->micro, s->seq, &s->d);
    bt_step_info info;
    bt_batch two[2] = {rb.b, rb.b};
    if (bt_train_step(t, two, n_micro, &info)) fail_msg("bt_train_step: %s", bt_errmsg());
    rbatch_free(&rb);
    if (eval > 0) {
        float loss;
        rbatch_make(&rb, eval, s->seq, &s->d);
        assert_int_equal(bt_bert_eval(m, &rb.b, &loss, NULL), 0);
        rbatch_free(&rb);
    }
    size_t peak = be->peak_bytes(be);
    bt_trainer_free(t);
    bt_bert_free(m);
    be->destroy(be);
    return peak;
}

static void test_plan_matches_cpu_peak(void **state)
{
    (void)state;
    bt_plan_device dev = cpu_device();
    for (int k = 0; k < N_SHAPES; k++) {
        const shape *s = &SHAPES[k];
        char *dir = rb_write(&s->d, 1);
        bt_plan_input in = input_of(s, dir);
        in.accum = 1 + (k & 1); /* accumulation holds one more gradient buffer (engine/train.h) */
        bt_plan_memory pm;
        if (bt_plan_memory_at(&in, &dev, s->micro, &pm)) fail_msg("plan: %s", bt_errmsg());
        size_t real = real_peak(s, dir, in.accum);
        double err = fabs((double)pm.engine - (double)real) / (double)real;
        printf("shape %d (%s, %s, recompute %s, seq %d, micro %d): planned %zu bytes, real %zu (%.4f%%)\n", k,
               s->task == BT_TASK_MLM ? "mlm" : s->task == BT_TASK_TOKEN_CLS ? "token" : "seq",
               bt_precision_name(s->prec), bt_recompute_name(s->rc), s->seq, s->micro, pm.engine, real, 100 * err);
        if (pm.engine != real)
            fail_msg("shape %d: plan %zu bytes vs real peak %zu (%.2f%%)", k, pm.engine, real, 100 * err);
        /* the parts add up; the runtime overhead is on top */
        assert_int_equal(pm.peak, pm.engine + pm.fixed + pm.overhead);
        assert_true(pm.params + pm.copy16 + pm.grads + pm.moments + pm.activations + pm.workspace == pm.engine);
        assert_int_equal(pm.moments, 2 * pm.params);
        assert_int_equal(pm.copy16 > 0, s->prec != BT_PREC_FP32);
        rb_remove(dir);
    }
}

/* The plan of a model directory with config.json only (no weights). */
static void test_plan_needs_no_weights(void **state)
{
    (void)state;
    const shape *s = &SHAPES[0];
    char *dir = rb_write(&s->d, 0);
    bt_plan_device dev = cpu_device();
    bt_plan_input in = input_of(s, dir);
    bt_plan_memory a, b;
    assert_int_equal(bt_plan_memory_at(&in, &dev, 4, &a), 0);
    assert_int_equal(bt_plan_memory_at(&in, &dev, 8, &b), 0);
    assert_true(b.activations > a.activations);
    assert_int_equal(a.params, b.params);
    /* a GPU profile: no attention probabilities kept, allocations in 2 MiB pages */
    bt_plan_device gpu;
    assert_int_equal(bt_plan_device_get("t4", 0, &gpu), 0);
    in.precision = BT_PREC_FP16;
    assert_int_equal(bt_plan_memory_at(&in, &gpu, 4, &a), 0);
    assert_int_equal(a.probs, 0);
    assert_int_equal(a.params % (2u << 20), 0);
    assert_true(a.fixed > 0 && a.overhead > 0);
    int m = 0;
    assert_int_equal(bt_plan_max_micro(&in, &gpu, a.peak, 1 << 16, &m), 0);
    assert_true(m >= 4); /* 2 MiB pages: a few more may fit in the same pages */
    assert_int_equal(bt_plan_memory_at(&in, &gpu, m, &b), 0);
    assert_true(b.peak <= a.peak);
    assert_int_equal(bt_plan_memory_at(&in, &gpu, m + 1, &b), 0);
    assert_true(b.peak > a.peak);
    assert_int_equal(bt_plan_max_micro(&in, &gpu, a.overhead, 1 << 16, &m), 0);
    assert_int_equal(m, 0);
    rb_remove(dir);
}

static void test_pick_micro(void **state)
{
    (void)state;
    const shape *s = &SHAPES[0];
    char *dir = rb_write(&s->d, 0);
    bt_plan_device dev = cpu_device();
    bt_plan_input in = input_of(s, dir);
    bt_plan_memory p6, p1, p6one;
    in.accum = 4; /* what the pick plans 6 with (E = 24): its gradient buffer for a micro-batch counts */
    assert_int_equal(bt_plan_memory_at(&in, &dev, 6, &p6), 0);
    in.accum = 1;
    assert_int_equal(bt_plan_memory_at(&in, &dev, 6, &p6one), 0);
    assert_true(p6.engine > p6one.engine);
    assert_int_equal(p6.engine - p6one.engine, p6.grads);
    in.accum = 24;
    assert_int_equal(bt_plan_memory_at(&in, &dev, 1, &p1), 0);
    bt_plan_choice ch;
    /* E = 24: divisors 24, 12, 8, 6, ...: the budget of 6 picks 6, grad_accum 4 */
    assert_int_equal(bt_plan_pick_micro(&in, &dev, 24, p6.engine, (size_t)-1, &ch), 0);
    assert_int_equal(ch.micro, 6);
    assert_int_equal(ch.grad_accum, 4);
    assert_true(ch.active);
    /* the peak limit binds the same way */
    assert_int_equal(bt_plan_pick_micro(&in, &dev, 24, (size_t)-1, p6.peak, &ch), 0);
    assert_int_equal(ch.micro, 6);
    /* E = 7 (prime): 7 or 1 */
    assert_int_equal(bt_plan_pick_micro(&in, &dev, 7, p6.engine, (size_t)-1, &ch), 0);
    assert_int_equal(ch.micro, 1);
    assert_int_equal(ch.grad_accum, 7);
    /* nothing fits */
    assert_int_equal(bt_plan_pick_micro(&in, &dev, 24, p1.engine - 1, (size_t)-1, &ch), 0);
    assert_int_equal(ch.micro, 0);
    assert_false(ch.active);
    rb_remove(dir);
}

static bt_job load_job(const char *extra)
{
    char *text = bt_xasprintf("[model]\npath = /nonexistent\n[data]\ntrain = t.tsv\n%s", extra);
    bt_job j;
    bt_job_load_options lo = {0};
    if (bt_job_load_string(text, "plan.ini", "/tmp", &lo, &j)) fail_msg("job: %s", bt_errmsg());
    free(text);
    return j;
}

static void test_record_and_resume(void **state)
{
    (void)state;
    bt_job j = load_job("[train]\nbatch_size = 32\ngrad_accum = 2\nmicro_batch = auto\n");
    bt_plan_choice ch = {.active = 1, .micro = 16, .grad_accum = 4};
    json_t *o = json_object();
    bt_plan_hook_record(&ch, o);
    json_t *mb = json_object_get(o, "micro_batch");
    assert_non_null(mb);
    assert_int_equal(json_integer_value(json_object_get(mb, "size")), 16);
    /* a later segment whose model holds 32 takes the archive's 16 x 4 again */
    bt_plan_choice now = {.active = 1, .micro = 32, .grad_accum = 2};
    j.train.batch_size = 32;
    j.train.grad_accum = 2;
    assert_int_equal(bt_plan_hook_resume(&now, o, &j, 32, "ckpt"), 0);
    assert_int_equal(j.train.batch_size, 16);
    assert_int_equal(j.train.grad_accum, 4);
    assert_true(now.from_archive);
    /* one that holds only 8 cannot resume exactly: refused, saying what to do */
    j.train.batch_size = 8;
    j.train.grad_accum = 8;
    assert_int_equal(bt_plan_hook_resume(&now, o, &j, 8, "ckpt"), BT_ECONFIG);
    assert_non_null(strstr(bt_errmsg(), "micro-batches of 16"));
    /* an out-of-range record is damage */
    json_object_set_new(o, "micro_batch", json_pack("{s:s, s:i, s:i}", "mode", "auto", "size", 0, "grad_accum", 4));
    assert_int_equal(bt_plan_hook_resume(&now, o, &j, 8, "ckpt"), BT_EDATA);
    /* nothing recorded, or the job is not auto: untouched */
    bt_plan_choice off = {0};
    json_t *empty = json_object();
    j.train.batch_size = 8;
    assert_int_equal(bt_plan_hook_resume(&off, empty, &j, 8, "ckpt"), 0);
    assert_int_equal(j.train.batch_size, 8);
    bt_plan_hook_record(&off, empty);
    assert_null(json_object_get(empty, "micro_batch"));
    json_decref(o);
    json_decref(empty);
    bt_job_free(&j);
}

static void test_memory_limit_and_bytes(void **state)
{
    (void)state;
    double b;
    assert_int_equal(bt_job_parse_bytes("14G", &b), 0);
    assert_true(b == 14.0 * 1073741824.0);
    assert_int_equal(bt_job_parse_bytes("14GB", &b), 0);
    assert_true(b == 14e9);
    assert_int_equal(bt_job_parse_bytes("1.5GiB", &b), 0);
    assert_true(b == 1.5 * 1073741824.0);
    assert_int_equal(bt_job_parse_bytes("512m", &b), 0);
    assert_true(b == 512.0 * 1048576.0);
    assert_int_equal(bt_job_parse_bytes("90%", &b), 0);
    assert_true(b == -0.9);
    assert_int_equal(bt_job_parse_bytes("0", &b), 0);
    assert_true(b == 0);
    assert_int_equal(bt_job_parse_bytes("1000", &b), 0);
    assert_true(b == 1000);
    const char *bad[] = {"", "G", "-1G", "14X", "14GG", "0%", "101%", "abc", "1e400"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) assert_int_equal(bt_job_parse_bytes(bad[i], &b), -1);
    bt_plan_device dev = cpu_device();
    bt_job j = load_job("[runtime]\nmemory_limit = 2GiB\n");
    assert_int_equal(bt_plan_limit(&j, &dev), (size_t)2 << 30);
    char *t = bt_job_value_text(&j, bt_job_key_index("runtime", "memory_limit"));
    assert_string_equal(t, "2GiB");
    free(t);
    bt_job_free(&j);
    j = load_job("[runtime]\nmemory_limit = 25%\n");
    assert_int_equal(bt_plan_limit(&j, &dev), (size_t)2 << 30);
    t = bt_job_value_text(&j, bt_job_key_index("runtime", "memory_limit"));
    assert_string_equal(t, "25%");
    free(t);
    bt_job_free(&j);
    j = load_job("[runtime]\nmemory_limit = 64G\n"); /* above the device: the device's */
    assert_int_equal(bt_plan_limit(&j, &dev), dev.memory);
    bt_job_free(&j);
    /* refused with where and what */
    char *text = bt_xasprintf("[model]\npath = /x\n[data]\ntrain = t.tsv\n[runtime]\nmemory_limit = lots\n");
    bt_job_load_options lo = {0};
    assert_int_equal(bt_job_load_string(text, "plan.ini", "/tmp", &lo, &j), BT_ECONFIG);
    assert_non_null(strstr(bt_errmsg(), "plan.ini:6"));
    assert_non_null(strstr(bt_errmsg(), "memory_limit"));
    free(text);
    /* micro_batch = auto has nothing to choose for classify_long */
    text = bt_xasprintf("[job]\ntask = classify_long\n[model]\npath = /x\n[data]\ntrain = t.tsv\n[train]\n"
                        "micro_batch = auto\n");
    assert_int_equal(bt_job_load_string(text, "plan.ini", "/tmp", &lo, &j), BT_ECONFIG);
    assert_non_null(strstr(bt_errmsg(), "chunk_batch"));
    free(text);
}

static void test_devices_and_flops(void **state)
{
    (void)state;
    const char *names[] = {"p100", "t4", "t4x2", "a100-40", "a100-80", "h100"};
    for (size_t i = 0; i < 6; i++) {
        bt_plan_device d;
        assert_int_equal(bt_plan_device_get(names[i], 0, &d), 0);
        assert_string_equal(d.name, names[i]);
        assert_true(d.memory > ((size_t)14 << 30) && d.tflops_fp32 > 0 && d.tflops_16 > d.tflops_fp32);
        assert_int_equal(d.devices, strcmp(names[i], "t4x2") ? 1 : 2);
    }
    bt_plan_device d;
    assert_int_equal(bt_plan_device_get("v100", 0, &d), BT_EUSAGE);
    assert_non_null(strstr(bt_errmsg(), "t4x2"));
    bt_bert_config c = {.vocab = 30522, .hidden = 768, .layers = 12, .heads = 12, .inter = 3072};
    bt_plan_input in = {.task = BT_TASK_SEQ_CLS, .seq = 128};
    double none = bt_plan_example_flops(&in, &c);
    /* BERT-base at 128 tokens: 6 x 85M encoder parameters x 128 tokens ~ 65 GFLOP, plus attention */
    assert_true(none > 6.0e10 && none < 8.0e10);
    in.recompute = BT_RECOMPUTE_ATTENTION;
    double attn = bt_plan_example_flops(&in, &c);
    in.recompute = BT_RECOMPUTE_FULL;
    double full = bt_plan_example_flops(&in, &c);
    assert_true(none < attn && attn < full && full < 1.4 * none);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_matches_cpu_peak),
        cmocka_unit_test(test_plan_needs_no_weights),
        cmocka_unit_test(test_pick_micro),
        cmocka_unit_test(test_record_and_resume),
        cmocka_unit_test(test_memory_limit_and_bytes),
        cmocka_unit_test(test_devices_and_flops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
