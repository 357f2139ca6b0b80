/* runner/task_longdoc.c — `task = classify_long`: whole documents, each read
 * in overlapping chunks and pooled (see task_longdoc.h), and its entry of the
 * task interface (runner/task.h) at the end of the file. */
#include "runner/task_longdoc.h"
#include "runner/task.h"
#include "runner/task_text.h"

#include "util/err.h"
#include "util/mem.h"

#include <jansson.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

int bt_task_longdoc_opts(const bt_job *job, const bt_tokenizer *tok, bt_longdoc_opts *out)
{
    memset(out, 0, sizeof *out);
    if (job->data.text_pair_column && job->data.text_pair_column[0])
        return bt_fail(BT_ECONFIG, "[data] text_pair_column: task = classify_long reads one document per record; "
                                   "remove the pair column (or join the texts into one)");
    if (job->model.problem_type == BT_JOB_PROBLEM_MULTI || job->model.problem_type == BT_JOB_PROBLEM_REGRESSION)
        return bt_fail(BT_ECONFIG, "[model] problem_type: task = classify_long trains single-label classes only; "
                                   "use problem_type = auto or single_label_classification");
    bt_special_ids sp = bt_tokenizer_special_ids(tok);
    out->chunk.max_seq_len = (int)job->data.max_seq_len;
    out->chunk.stride = (int)job->data.stride;
    out->chunk.max_chunks = (int)job->data.max_chunks;
    out->chunk.cap = job->data.chunk_select == BT_JOB_CHUNKS_EVEN ? BT_LONGDOC_CAP_EVEN : BT_LONGDOC_CAP_FIRST;
    out->chunk_batch = (int)job->data.chunk_batch;
    out->pool = job->model.pooling == BT_JOB_POOL_MAX         ? BT_DOC_POOL_MAX
              : job->model.pooling == BT_JOB_POOL_ATTENTION ? BT_DOC_POOL_ATTN
                                                            : BT_DOC_POOL_MEAN;
    out->cls_id = sp.cls;
    out->sep_id = sp.sep;
    out->pad_id = sp.pad;
    out->seed = (uint64_t)job->job.seed;
    int rc = bt_longdoc_config_check(&out->chunk);
    if (rc) return bt_fail_context(rc, "[data] max_seq_len / stride / max_chunks");
    return BT_OK;
}

int bt_task_longdoc_attn_dim(const bt_job *job)
{
    return job->model.pooling == BT_JOB_POOL_ATTENTION ? BT_LONGDOC_ATTN_DIM : 0;
}

const int32_t *bt_task_longdoc_doc(const bt_id_table *rows, size_t i, size_t *len)
{
    uint64_t a = rows->off[i], b = rows->off[i + 1];
    /* a row is [CLS] content [SEP]; be lenient with a row that lacks them */
    if (b - a >= 2) {
        *len = (size_t)(b - a - 2);
        return rows->ids + a + 1;
    }
    *len = 0;
    return rows->ids + a;
}

void bt_longdoc_step_init(bt_longdoc_step *s, bt_longdoc *ld, const bt_dataset *ds, int bs)
{
    memset(s, 0, sizeof *s);
    s->ld = ld;
    s->ds = ds;
    s->bs = bs;
    s->doc = bt_xcalloc((size_t)bs, sizeof *s->doc);
    s->len = bt_xcalloc((size_t)bs, sizeof *s->len);
    s->label = bt_xcalloc((size_t)bs, sizeof *s->label);
}

void bt_longdoc_step_free(bt_longdoc_step *s)
{
    free(s->doc);
    free(s->len);
    free(s->label);
    memset(s, 0, sizeof *s);
}

int bt_longdoc_step_fb(void *ctx, int replica, int k, float grad_scale, uint32_t step, float *loss)
{
    bt_longdoc_step *s = (bt_longdoc_step *)ctx + replica;
    const uint32_t *idx = s->idx + (size_t)k * (size_t)s->bs;
    int n = s->n[k];
    for (int i = 0; i < n; i++) {
        s->doc[i] = bt_task_longdoc_doc(&s->ds->tokens, idx[i], &s->len[i]);
        s->label[i] = s->ds->ex[idx[i]].label;
    }
    int rc = bt_longdoc_forward_backward(s->ld, s->doc, s->len, s->label, n, grad_scale, step, (uint32_t)k, loss);
    if (rc && n > 0) bt_fail_context(rc, "%s:%u", s->ds->path, s->ds->ex[idx[0]].line);
    return rc;
}

int bt_task_longdoc_eval_doc(bt_longdoc *ld, const bt_dataset *ds, size_t i, int num_labels, float *logits,
                             double *loss)
{
    size_t len;
    const int32_t *doc = bt_task_longdoc_doc(&ds->tokens, i, &len);
    int rc = bt_longdoc_logits(ld, doc, len, logits);
    if (rc) return bt_fail_context(rc, "%s:%u", ds->path, ds->ex[i].line);
    int32_t gold = ds->ex[i].label;
    if (loss) {
        *loss = NAN;
        if (gold >= 0 && gold < num_labels) {
            double mx = logits[0];
            for (int c = 1; c < num_labels; c++) mx = logits[c] > mx ? logits[c] : mx;
            double z = 0;
            for (int c = 0; c < num_labels; c++) z += exp((double)logits[c] - mx);
            *loss = mx + log(z) - logits[gold];
        }
    }
    return BT_OK;
}

static const char *pool_name(bt_doc_pool p)
{
    return p == BT_DOC_POOL_MAX ? "max" : p == BT_DOC_POOL_ATTN ? "attention" : "mean";
}

void *bt_task_longdoc_describe(const bt_longdoc_opts *o, int attn_dim)
{
    return json_pack("{s:i, s:i, s:i, s:s, s:i, s:s, s:i}", "max_seq_len", o->chunk.max_seq_len, "stride",
                     o->chunk.stride, "max_chunks", o->chunk.max_chunks, "chunk_select",
                     o->chunk.cap == BT_LONGDOC_CAP_EVEN ? "even" : "first", "chunk_batch", o->chunk_batch,
                     "pooling", pool_name(o->pool), "attention_dim", attn_dim);
}

int bt_task_longdoc_from_config(const void *config_json, const bt_tokenizer *tok, const char *where,
                                bt_longdoc_opts *o, int *attn_dim, int *found)
{
    *found = 0;
    memset(o, 0, sizeof *o);
    *attn_dim = 0;
    json_t *j = config_json ? json_object_get((const json_t *)config_json, BT_LONGDOC_CONFIG_KEY) : NULL;
    if (!j) return BT_OK;
    const char *fields[] = {"max_seq_len", "stride", "max_chunks", "chunk_batch", "attention_dim"};
    json_int_t v[5];
    for (int i = 0; i < 5; i++) {
        json_t *x = json_object_get(j, fields[i]);
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > 1 << 24)
            return bt_fail(BT_EDATA, "%s: config.json %s.%s is missing or not a small non-negative integer; "
                                     "re-export the model from its archive", where, BT_LONGDOC_CONFIG_KEY, fields[i]);
        v[i] = json_integer_value(x);
    }
    const char *sel = json_string_value(json_object_get(j, "chunk_select"));
    const char *pool = json_string_value(json_object_get(j, "pooling"));
    if (!sel || (strcmp(sel, "first") && strcmp(sel, "even")) || !pool ||
        (strcmp(pool, "mean") && strcmp(pool, "max") && strcmp(pool, "attention")))
        return bt_fail(BT_EDATA, "%s: config.json %s: chunk_select must be first|even and pooling mean|max|attention",
                       where, BT_LONGDOC_CONFIG_KEY);
    bt_special_ids sp = bt_tokenizer_special_ids(tok);
    o->chunk.max_seq_len = (int)v[0];
    o->chunk.stride = (int)v[1];
    o->chunk.max_chunks = (int)v[2];
    o->chunk.cap = !strcmp(sel, "even") ? BT_LONGDOC_CAP_EVEN : BT_LONGDOC_CAP_FIRST;
    o->chunk_batch = v[3] > 0 ? (int)v[3] : 8;
    o->pool = !strcmp(pool, "max") ? BT_DOC_POOL_MAX : !strcmp(pool, "attention") ? BT_DOC_POOL_ATTN : BT_DOC_POOL_MEAN;
    o->cls_id = sp.cls;
    o->sep_id = sp.sep;
    o->pad_id = sp.pad;
    *attn_dim = o->pool == BT_DOC_POOL_ATTN ? (int)v[4] : 0;
    if (o->pool == BT_DOC_POOL_ATTN && *attn_dim < 1)
        return bt_fail(BT_EDATA, "%s: config.json %s: attention pooling without attention_dim", where,
                       BT_LONGDOC_CONFIG_KEY);
    int rc = bt_longdoc_config_check(&o->chunk);
    if (rc) return bt_fail_context(BT_EDATA, "%s: config.json %s", where, BT_LONGDOC_CONFIG_KEY);
    *found = 1;
    return BT_OK;
}

/* ------------------------------------------------- the task interface */

typedef struct {
    bt_text_data d;              /* whole documents, one per row */
    bt_longdoc_opts opts;
    bt_longdoc *ld;              /* made by attach, on replica 0 (also what evaluation uses) */
    bt_longdoc *rep_ld[BT_MAX_REPLICAS]; /* [1..): runtime.devices replicas' own, made by the first step */
    bt_longdoc_step lds[BT_MAX_REPLICAS]; /* [replica]: the step callback's state, made by the first step */
    int n_lds;                   /* replicas whose lds (and rep_ld) exist */
} longdoc_task;

static const char *const longdoc_metrics[] = {"accuracy", "f1", "f1_macro", "loss", NULL};

static int longdoc_check_job(const bt_job *j)
{
    int rc = bt_text_check_job(j);
    if (!rc) rc = bt_text_check_classes(j);
    if (rc) return rc;
    if (j->data.stride >= j->data.max_seq_len - 2)
        return bt_job_key_error(j, BT_ECONFIG, "data", "stride", "%lld must be below max_seq_len - 2 = %lld",
                                (long long)j->data.stride, (long long)(j->data.max_seq_len - 2));
    if (j->train.micro_batch == BT_JOB_MICRO_AUTO)
        return bt_job_key_error(j, BT_ECONFIG, "train", "micro_batch", "auto does not apply to task = classify_long: "
                                "the encoder holds data.chunk_batch chunks per pass whatever the documents per step; "
                                "lower chunk_batch to use less memory (`baton plan` shows the largest that fits)");
    return BT_OK;
}

static int longdoc_load(bt_task_state *t, const bt_task_env *env)
{
    longdoc_task *L = bt_xcalloc(1, sizeof *L);
    t->impl = L;
    int rc = bt_task_longdoc_opts(t->job, env->tok, &L->opts);
    if (rc) return rc;
    L->d.kind = BT_LABELS_CLASS;
    rc = bt_text_load(&L->d, t, env, "classify_long"); /* whole documents: chunked at batching time */
    if (!rc) rc = bt_text_num_labels(&L->d, t);
    if (!rc) rc = bt_text_config_labels(&L->d, env->mcfg);
    if (rc) return rc;
    char arch[64]; /* the family's sequence classifier: chunk logits are its logits */
    bt_model_config_set_architecture(env->mcfg, bt_model_type_arch(env->mcfg->model_type, "SequenceClassification",
                                                                   arch, sizeof arch));
    /* how predict must see inputs: chunking and pooling, kept in config.json */
    json_object_set_new((json_t *)env->mcfg->json, BT_LONGDOC_CONFIG_KEY,
                        (json_t *)bt_task_longdoc_describe(&L->opts, bt_task_longdoc_attn_dim(t->job)));
    bt_model_config_set_columns(env->mcfg, (const char *const *)L->d.train.column_names);
    bt_text_model_opts(&L->d, t);
    /* the encoder sees chunk_batch chunks at a time, whatever the documents' length */
    t->model.max_batch = L->opts.chunk_batch;
    t->model.doc_attn_dim = bt_task_longdoc_attn_dim(t->job);
    t->unit = t->eval_unit = "documents";
    bt_task_set_metric(t, bt_text_metric(&L->d, t->job));
    return BT_OK;
}

static int longdoc_attach(bt_task_state *t, bt_bert *model)
{
    longdoc_task *L = t->impl;
    return bt_longdoc_create(model, &L->opts, &L->ld);
}

static int longdoc_step(bt_task_state *t, bt_trainer *tr, const bt_task_step_args *a, bt_step_info *info)
{
    longdoc_task *L = t->impl;
    int nrep = bt_trainer_replicas(tr);
    /* replica j >= 1 (runtime.devices): a long-document model of its own on its bt_bert (host buffers for the
     * pooling and head, their gradients added into that replica's, summed by the trainer like the encoder's) */
    for (int j = L->n_lds; j < nrep; j++) {
        bt_longdoc *ld = L->ld;
        if (j > 0) {
            int rc = bt_longdoc_create(bt_trainer_replica(tr, j), &L->opts, &L->rep_ld[j]);
            if (rc) return bt_fail_context(rc, "[runtime] devices: replica %d's long-document model", j);
            ld = L->rep_ld[j];
        }
        bt_longdoc_step_init(&L->lds[j], ld, &L->d.train, a->batch_size);
        L->n_lds = j + 1;
    }
    for (int j = 0; j < nrep; j++) {
        L->lds[j].idx = a->idx;
        L->lds[j].n = a->n;
    }
    return bt_train_step_fn(tr, bt_longdoc_step_fb, L->lds, a->n_micro, info);
}

/* One document at a time, chunk by chunk. */
static int doc_logits(void *ctx, const bt_batch *b, const uint32_t *idx, int n, float *logits, double *loss_sum)
{
    longdoc_task *L = ctx;
    int C = L->d.num_labels;
    (void)b;
    for (int i = 0; i < n; i++) {
        double dl = 0;
        int rc = bt_task_longdoc_eval_doc(L->ld, &L->d.eval, idx[i], C, logits + (size_t)i * (size_t)C, &dl);
        if (rc) return rc;
        *loss_sum += dl;
    }
    return BT_OK;
}

static int longdoc_evaluate(bt_task_state *t, const bt_task_eval_args *a, bt_task_eval *r)
{
    longdoc_task *L = t->impl;
    return bt_text_evaluate(&L->d, a, doc_logits, L, r);
}

static void longdoc_free(bt_task_state *t)
{
    longdoc_task *L = t->impl;
    if (!L) return;
    for (int j = 0; j < L->n_lds; j++) {
        bt_longdoc_step_free(&L->lds[j]);
        if (j > 0) bt_longdoc_free(L->rep_ld[j]);
    }
    bt_longdoc_free(L->ld);
    bt_text_free(&L->d);
    free(L);
}

const bt_task_ops bt_task_classify_long = {
    .name = "classify_long", .metrics = longdoc_metrics, .check_job = longdoc_check_job, .load = longdoc_load,
    .attach = longdoc_attach, .step = longdoc_step, .evaluate = longdoc_evaluate, .free = longdoc_free,
    .head = "ForSequenceClassification", .predict = bt_predict_sequence, /* chunking from config.json */
};
