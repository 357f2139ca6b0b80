/* tests/reference/engine_driver.c — test-only driver of the CPU engine for the
 * Python parity scripts (engine_parity.py, train_parity.py). Not part of baton.
 *
 *   engine_driver grad  MODEL_DIR INPUTS OUT [key=value...]
 *       one forward/backward over all examples (one micro-batch, grad scale 1)
 *       -> OUT: "loss" [1], "logits" [rows,C], "grad.<canonical>" per parameter
 *   engine_driver train MODEL_DIR INPUTS OUT [key=value...]
 *       `steps` optimizer steps; step s uses micro-batches
 *       (s*accum + k) mod (n/micro) of `micro` consecutive examples
 *       -> OUT: "<canonical>" final weights, "losses" [steps], "skipped" [steps]
 *       (1 where an fp16 step overflowed and was skipped), "loss_scale" [steps]
 *
 *   engine_driver bench MODEL_DIR - - [batch= seq= steps= threads= micro=]
 *       times `steps` training steps (after 1 untimed) of random full-length
 *       sequences; prints "ours_examples_per_s X" and "ours_step_s X"
 *   engine_driver sgemm - - - [n= threads=]
 *       the backend's matmul on n x n x n; prints "sgemm_gflops X"
 *
 * INPUTS (safetensors): "ids" I32 [n,Smax], "len" I32 [n], optional
 * "type_ids" I32 [n,Smax], "label" I32 [n], "target" F32 [n,C],
 * "token_labels" I32 [n,Smax].
 * Keys: task=seq|token|mlm problem=auto|single|multi|regression num_labels=
 * threads= seed= steps= accum= micro= lr= head_lr= layer_decay= wd= warmup=
 * total= clip= sched=linear|cosine|constant freeze_layers= freeze_emb=
 * precision=fp32|fp16|bf16 (every mode; default fp32)
 */
#include "engine/bert.h"
#include "engine/train.h"
#include "kernels/backend.h"
#include "state/safetensors.h"
#include "util/err.h"
#include "util/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const char *opt(int argc, char **argv, const char *key, const char *def)
{
    size_t k = strlen(key);
    for (int i = 5; i < argc; i++)
        if (!strncmp(argv[i], key, k) && argv[i][k] == '=') return argv[i] + k + 1;
    return def;
}

static bt_precision precision_of(int argc, char **argv)
{
    const char *p = opt(argc, argv, "precision", "fp32");
    return !strcmp(p, "bf16") ? BT_PREC_BF16 : !strcmp(p, "fp16") ? BT_PREC_FP16 : !strcmp(p, "tf32") ? BT_PREC_TF32
                                                                                                    : BT_PREC_FP32;
}

static int die(const char *what)
{
    fprintf(stderr, "engine_driver: %s: %s\n", what, bt_errmsg());
    return 1;
}

typedef struct {
    int n, smax, C;
    int32_t *ids, *tt, *len, *label, *tl;
    float *target;
    const int32_t **pids, **ptt, **ptl;
} inputs;

static void *copy_tensor(const bt_st_file *f, const char *name, int64_t *numel)
{
    const bt_st_tensor *t = bt_st_find(f, name);
    if (!t) return NULL;
    void *p = bt_xmalloc(t->nbytes ? t->nbytes : 4);
    memcpy(p, t->data, t->nbytes);
    if (numel) *numel = t->numel;
    return p;
}

static void make_batch(inputs *in, int first, int count, bt_batch *b)
{
    memset(b, 0, sizeof *b);
    b->n = count;
    b->ids = in->pids + first;
    b->type_ids = in->tt ? in->ptt + first : NULL;
    b->len = in->len + first;
    b->label = in->label ? in->label + first : NULL;
    b->target = in->target ? in->target + (size_t)first * in->C : NULL;
    b->token_labels = in->tl ? in->ptl + first : NULL;
}

static int sgemm_mode(int argc, char **argv)
{
    int n = atoi(opt(argc, argv, "n", "1024"));
    bt_backend *be = bt_backend_cpu_create(atoi(opt(argc, argv, "threads", "2")));
    if (!be) return die("backend");
    float *a = be->alloc(be, (size_t)n * n * 4), *b = be->alloc(be, (size_t)n * n * 4), *c = be->alloc(be, (size_t)n * n * 4);
    bt_tensor A = bt_view2(a, BT_F32, be->device, n, n), B = bt_view2(b, BT_F32, be->device, n, n),
              Cm = bt_view2(c, BT_F32, be->device, n, n);
    be->matmul(be, &A, 0, &B, 1, &Cm, NULL, 1.0f, 0.0f, BT_EPI_NONE, NULL);
    int reps = 0;
    double t0 = now(), t;
    do {
        be->matmul(be, &A, 0, &B, 1, &Cm, NULL, 1.0f, 0.0f, BT_EPI_NONE, NULL);
        be->sync(be);
        reps++;
    } while ((t = now() - t0) < 2.0);
    printf("sgemm_gflops %.2f\n", 2.0 * n * n * (double)n * reps / t / 1e9);
    be->free(be, a), be->free(be, b), be->free(be, c);
    be->destroy(be);
    return 0;
}

static int bench_mode(int argc, char **argv)
{
    int B = atoi(opt(argc, argv, "batch", "16")), S = atoi(opt(argc, argv, "seq", "128"));
    int steps = atoi(opt(argc, argv, "steps", "5"));
    bt_backend *be = bt_backend_cpu_create(atoi(opt(argc, argv, "threads", "2")));
    if (!be) return die("backend");
    bt_bert_opts o = {.task = BT_TASK_SEQ_CLS, .num_labels = 2, .problem = BT_LOSS_SINGLE, .max_batch = B,
                      .max_seq = S, .training = 1, .seed = 1, .precision = precision_of(argc, argv)};
    bt_bert *m;
    if (bt_bert_create(be, argv[2], &o, &m)) return die("model");
    int V = bt_bert_cfg(m)->vocab;
    int32_t *ids = bt_xcalloc((size_t)B * S, 4), *label = bt_xcalloc((size_t)B, 4);
    const int32_t **pids = bt_xcalloc((size_t)B, sizeof *pids);
    int *len = bt_xcalloc((size_t)B, sizeof *len);
    uint64_t x = 12345;
    for (int i = 0; i < B; i++) {
        for (int s = 0; s < S; s++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            ids[(size_t)i * S + s] = 1000 + (int32_t)((x >> 33) % (uint64_t)(V - 1000));
        }
        pids[i] = ids + (size_t)i * S;
        len[i] = S;
        label[i] = i & 1;
    }
    bt_batch b = {.n = B, .ids = pids, .len = len, .label = label};
    bt_train_config tc = {.optim = {.lr = 2e-5f, .weight_decay = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f},
                          .schedule = BT_SCHED_LINEAR, .warmup_steps = 0, .total_steps = 1000, .max_grad_norm = 1.0f};
    bt_trainer *t;
    if (bt_trainer_create(m, &tc, &t)) return die("trainer");
    bt_step_info info;
    if (bt_train_step(t, &b, 1, &info)) return die("step");
    double t0 = now();
    for (int s = 0; s < steps; s++)
        if (bt_train_step(t, &b, 1, &info)) return die("step");
    double dt = (now() - t0) / steps;
    printf("ours_step_s %.4f\nours_examples_per_s %.3f\nours_loss %.5f\nours_precision %s\n", dt, B / dt, info.loss,
           bt_precision_name(o.precision));
    bt_trainer_free(t);
    bt_bert_free(m);
    be->destroy(be);
    free(ids), free(label), free(pids), free(len);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: engine_driver grad|train|bench|sgemm MODEL_DIR INPUTS OUT [key=value...]\n");
        return 64;
    }
    if (!strcmp(argv[1], "sgemm")) return sgemm_mode(argc, argv);
    if (!strcmp(argv[1], "bench")) return bench_mode(argc, argv);
    const char *mode = argv[1], *dir = argv[2];
    bt_st_file *f;
    if (bt_st_open(argv[3], &f)) return die("inputs");
    inputs in = {0};
    const bt_st_tensor *tid = bt_st_find(f, "ids");
    if (!tid || tid->ndim != 2) { fprintf(stderr, "inputs: no ids [n,S]\n"); return 1; }
    in.n = (int)tid->shape[0];
    in.smax = (int)tid->shape[1];
    in.ids = copy_tensor(f, "ids", NULL);
    in.len = copy_tensor(f, "len", NULL);
    in.tt = copy_tensor(f, "type_ids", NULL);
    in.label = copy_tensor(f, "label", NULL);
    in.tl = copy_tensor(f, "token_labels", NULL);
    int64_t nt = 0;
    in.target = copy_tensor(f, "target", &nt);
    in.C = in.target ? (int)(nt / in.n) : 0;
    bt_st_close(f);
    in.pids = bt_xcalloc(in.n, sizeof *in.pids);
    in.ptt = bt_xcalloc(in.n, sizeof *in.ptt);
    in.ptl = bt_xcalloc(in.n, sizeof *in.ptl);
    for (int i = 0; i < in.n; i++) {
        in.pids[i] = in.ids + (size_t)i * in.smax;
        if (in.tt) in.ptt[i] = in.tt + (size_t)i * in.smax;
        if (in.tl) in.ptl[i] = in.tl + (size_t)i * in.smax;
    }

    const char *task = opt(argc, argv, "task", "seq"), *prob = opt(argc, argv, "problem", "auto");
    bt_bert_opts o = {0};
    o.task = !strcmp(task, "token") ? BT_TASK_TOKEN_CLS : !strcmp(task, "mlm") ? BT_TASK_MLM : BT_TASK_SEQ_CLS;
    o.problem = !strcmp(prob, "single") ? BT_LOSS_SINGLE : !strcmp(prob, "multi") ? BT_LOSS_MULTI
              : !strcmp(prob, "regression") ? BT_LOSS_REGRESSION : BT_LOSS_AUTO;
    o.num_labels = atoi(opt(argc, argv, "num_labels", "0"));
    o.seed = strtoull(opt(argc, argv, "seed", "42"), NULL, 10);
    o.training = 1;
    o.precision = precision_of(argc, argv);
    int micro = atoi(opt(argc, argv, "micro", "0"));
    if (micro <= 0) micro = in.n;
    o.max_batch = !strcmp(mode, "grad") ? in.n : micro;
    o.max_seq = in.smax;

    bt_backend *be = bt_backend_cpu_create(atoi(opt(argc, argv, "threads", "2")));
    if (!be) return die("backend");
    bt_bert *m;
    if (bt_bert_create(be, dir, &o, &m)) return die("model");

    size_t np = bt_bert_nparams(m), total = bt_bert_total_floats(m);
    float *host = bt_xaligned_alloc(total * sizeof(float));
    bt_st_entry *e = bt_xcalloc(np + 3, sizeof *e);
    char **names = bt_xcalloc(np, sizeof *names);
    size_t ne = 0;
    float *logits = NULL, *losses = NULL, *skipped = NULL, loss = 0.0f;
    int steps = atoi(opt(argc, argv, "steps", "30"));

    if (!strcmp(mode, "grad")) {
        bt_batch b;
        make_batch(&in, 0, in.n, &b);
        bt_bert_zero_grads(m);
        if (bt_bert_forward_backward(m, &b, 1.0f, 0, 0, &loss)) return die("forward_backward");
        be->download(be, host, bt_bert_grads_dev(m), total * sizeof(float));
        int64_t rows = bt_bert_logits_rows(m, &b);
        int C = bt_bert_logits_cols(m);
        logits = bt_xcalloc((size_t)(rows * C) + 1, sizeof *logits);
        float eloss = 0.0f;
        if (bt_bert_eval(m, &b, &eloss, logits)) return die("eval");
        if (eloss != loss) fprintf(stderr, "note: eval loss %.9g vs train loss %.9g\n", eloss, loss);
        e[ne++] = (bt_st_entry){.name = "loss", .dtype = BT_ST_F32, .ndim = 1, .shape = {1}, .data = &loss};
        e[ne++] = (bt_st_entry){.name = "logits", .dtype = BT_ST_F32, .ndim = 2, .shape = {rows, C}, .data = logits};
    } else {
        bt_train_config tc = {0};
        tc.optim.lr = (float)atof(opt(argc, argv, "lr", "1e-3"));
        tc.optim.head_lr = (float)atof(opt(argc, argv, "head_lr", "0"));
        tc.optim.layer_decay = (float)atof(opt(argc, argv, "layer_decay", "1"));
        tc.optim.weight_decay = (float)atof(opt(argc, argv, "wd", "0.01"));
        tc.optim.beta1 = 0.9f;
        tc.optim.beta2 = 0.999f;
        tc.optim.eps = 1e-8f;
        bt_schedule_parse(opt(argc, argv, "sched", "linear"), &tc.schedule);
        tc.warmup_steps = atoi(opt(argc, argv, "warmup", "0"));
        tc.total_steps = atoi(opt(argc, argv, "total", "30"));
        tc.max_grad_norm = (float)atof(opt(argc, argv, "clip", "1.0"));
        tc.freeze_layers = atoi(opt(argc, argv, "freeze_layers", "0"));
        tc.freeze_embeddings = atoi(opt(argc, argv, "freeze_emb", "0"));
        int accum = atoi(opt(argc, argv, "accum", "1"));
        bt_trainer *t;
        if (bt_trainer_create(m, &tc, &t)) return die("trainer");
        int chunks = in.n / micro;
        losses = bt_xcalloc((size_t)steps, sizeof *losses);
        skipped = bt_xcalloc((size_t)steps * 2, sizeof *skipped);
        bt_batch *mb = bt_xcalloc((size_t)accum, sizeof *mb);
        for (int s = 0; s < steps; s++) {
            for (int k = 0; k < accum; k++) make_batch(&in, ((s * accum + k) % chunks) * micro, micro, &mb[k]);
            bt_step_info info;
            if (bt_train_step(t, mb, accum, &info)) return die("train_step");
            losses[s] = info.loss;
            skipped[s] = (float)info.skipped;
            skipped[steps + s] = (float)info.loss_scale;
        }
        bt_bert_download_params(m, host);
        e[ne++] = (bt_st_entry){.name = "losses", .dtype = BT_ST_F32, .ndim = 1, .shape = {steps}, .data = losses};
        e[ne++] = (bt_st_entry){.name = "skipped", .dtype = BT_ST_F32, .ndim = 1, .shape = {steps}, .data = skipped};
        e[ne++] = (bt_st_entry){.name = "loss_scale", .dtype = BT_ST_F32, .ndim = 1, .shape = {steps},
                                .data = skipped + steps};
        free(mb);
        bt_trainer_free(t);
    }
    for (size_t i = 0; i < np; i++) {
        const bt_bert_param *p = bt_bert_param_at(m, i);
        names[i] = bt_xasprintf("%s%s", !strcmp(mode, "grad") ? "grad." : "", p->name);
        e[ne] = (bt_st_entry){.name = names[i], .dtype = BT_ST_F32, .ndim = p->ndim, .data = host + p->off};
        e[ne].shape[0] = p->shape[0];
        e[ne].shape[1] = p->shape[1];
        ne++;
    }
    if (bt_st_write_file(argv[4], e, ne, NULL)) return die("write");
    for (size_t i = 0; i < np; i++) free(names[i]);
    free(names); free(e); free(logits); free(losses); free(skipped);
    bt_aligned_free(host);
    bt_bert_free(m);
    be->destroy(be);
    free(in.ids); free(in.len); free(in.tt); free(in.label); free(in.tl); free(in.target);
    free(in.pids); free(in.ptt); free(in.ptl);
    return 0;
}
