/* runner/task_text.c — rows of text for the sequence tasks (see task_text.h). */
#include "runner/model_tokenizer.h" /* issue 22 hook */
#include "runner/task_text.h"

#include "util/err.h"
#include "util/file.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/sha256.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Batch buffers: pointers into the id table; type ids 1 after the first [SEP]. */
typedef struct bt_text_batcher {
    const int32_t **ids, **types;
    int *len;
    int32_t *label;
    float *target;               /* [cap * num_labels] multi-label 0/1 or regression targets */
    int32_t *type_buf;
    size_t type_cap;
} bt_text_batcher;

/* ------------------------------------------------------------------ load */

bt_label_kind bt_text_label_kind(const bt_job *job)
{
    switch (job->model.problem_type) {
    case BT_JOB_PROBLEM_MULTI: return BT_LABELS_MULTI;
    case BT_JOB_PROBLEM_REGRESSION: return BT_LABELS_REGRESSION;
    default: return BT_LABELS_CLASS;
    }
}

static void data_options(const bt_job *job, bt_label_kind kind, const char *const *labels, int n_labels,
                         int64_t limit, bt_data_options *o)
{
    memset(o, 0, sizeof *o);
    o->format = (bt_data_format)job->data.format;
    o->header = (bt_data_header)job->data.header;
    o->text_column = job->data.text_column;
    o->pair_column = job->data.text_pair_column && job->data.text_pair_column[0] ? job->data.text_pair_column : NULL;
    o->label_column = job->data.label_column;
    o->label_kind = kind;
    o->labels = labels;
    o->n_labels = n_labels;
    o->label_separator = job->data.label_separator;
    o->skip_malformed = job->data.skip_malformed;
    o->limit = limit;
}

/* The token cache's settings: everything besides the data and vocabulary that
 * changes the ids. Whole rows (mlm, classify_long) are the same ids for every
 * max_seq_len. */
typedef struct {
    char s[256];
} cache_key_text;

static void cache_settings(const bt_text_data *d, const bt_task_env *env, const bt_dataset *ds, const char *whole,
                           const char *which, cache_key_text *out)
{
    char *s = out->s;
    size_t n = sizeof out->s;
    const bt_tokenizer_config *tc = bt_tokenizer_get_config(env->tok);
    if (whole)
        snprintf(s, n, "task=%s;truncation=none;lower=%d;accents=%d;cjk=%d;limit=%zu", whole, tc->lowercase,
                 tc->strip_accents, tc->chinese_chars, ds->n);
    else
        snprintf(s, n, "max_seq_len=%lld;pair=%d;lower=%d;accents=%d;cjk=%d;limit=%zu",
                 (long long)env->job->data.max_seq_len, ds->has_pair, tc->lowercase, tc->strip_accents,
                 tc->chinese_chars, ds->n);
    if (d->split_tag[0]) /* a part of the file: which part is in the key */
        snprintf(s + strlen(s), n - strlen(s), "%s;part=%s", d->split_tag, which);
}

/* Every row of ds through the tokenizer into ds->tokens. */
static int encode_rows(const bt_task_env *env, bt_dataset *ds, const char *whole)
{
    bt_encode_opts eo = {.max_length = whole ? 0 : (int)env->job->data.max_seq_len,
                         .truncation = BT_TRUNC_LONGEST_FIRST};
    bt_encoding enc;
    bt_encoding_init(&enc);
    bt_id_table *t = &ds->tokens;
    t->n_rows = ds->n;
    t->off = bt_xmalloc((ds->n + 1) * sizeof *t->off);
    size_t cap = ds->n * 16 + 16, used = 0;
    t->ids = bt_xmalloc(cap * sizeof *t->ids);
    t->off[0] = 0;
    int rc = BT_OK;
    for (size_t i = 0; i < ds->n && rc == BT_OK; i++) {
        const char *a = bt_example_text(ds, i), *b = bt_example_pair(ds, i);
        rc = b ? bt_encode_pair(env->tok, a, strlen(a), b, strlen(b), &eo, &enc)
               : bt_encode(env->tok, a, strlen(a), &eo, &enc);
        if (rc) {
            bt_fail_context(rc, "%s:%u", ds->path, ds->ex[i].line);
            break;
        }
        if (used + enc.len > cap) {
            cap = (used + enc.len) * 2;
            t->ids = bt_xrealloc(t->ids, cap * sizeof *t->ids);
        }
        /* token type ids are recomputed from [SEP] positions when batching */
        memcpy(t->ids + used, enc.input_ids, enc.len * sizeof *t->ids);
        used += enc.len;
        t->off[i + 1] = used;
    }
    bt_encoding_free(&enc);
    return rc;
}

/* Tokenizes every example of ds into ds->tokens, through the id cache. */
static int tokenize_dataset(const bt_text_data *d, const bt_task_env *env, bt_dataset *ds, const char *whole,
                            const char *which)
{
    uint8_t vocab_sha[32], key[32];
    bt_sha256(env->vocab_text, strlen(env->vocab_text), vocab_sha);
    char hex[65];
    cache_key_text settings;
    cache_settings(d, env, ds, whole, which, &settings);
    bt_id_cache_key(ds->sha256, vocab_sha, settings.s, key);
    bt_sha256_hex(key, hex);
    char *cache_dir = bt_path_join(env->out_dir, "cache");
    char *name = bt_xasprintf("%s-%.16s.ids", which, hex);
    char *path = bt_path_join(cache_dir, name);
    free(name);
    int rc = bt_id_cache_read(path, key, &ds->tokens);
    if (rc == BT_OK && ds->tokens.n_rows == ds->n) {
        bt_info("%s: %zu examples from the token cache %s", which, ds->n, path);
    } else {
        if (rc == BT_OK) bt_id_table_free(&ds->tokens);
        bt_err_clear();
        rc = encode_rows(env, ds, whole);
        if (rc == BT_OK && !env->read_only) {
            int wrc = bt_mkdirs(cache_dir);
            if (!wrc) wrc = bt_id_cache_write(path, key, &ds->tokens);
            if (wrc) {
                bt_warn("could not write the token cache (%s); continuing without it", bt_errmsg());
                bt_err_clear();
            }
        }
    }
    free(path);
    free(cache_dir);
    return rc;
}

/* [data] eval_split: part of train becomes the evaluation set (engine/data_split.c). */
static int hold_out_eval(bt_text_data *d, bt_task_state *t)
{
    const bt_job *job = t->job;
    int rc = bt_data_split(&d->train, job->data.eval_split, (uint64_t)job->job.seed, &d->eval);
    if (rc) return rc;
    if (job->data.limit_eval > 0 && d->eval.n > (size_t)job->data.limit_eval) d->eval.n = (size_t)job->data.limit_eval;
    d->has_eval = 1;
    snprintf(d->split_tag, sizeof d->split_tag, ";split=%.17g;seed=%lld", job->data.eval_split,
             (long long)job->job.seed);
    snprintf(t->eval_note, sizeof t->eval_note, "evaluation: %zu examples held out of %s (eval_split = %g, "
             "stratified)", d->eval.n, job->data.train, job->data.eval_split);
    return BT_OK;
}

/* The train file, and the eval file or the held-out part of train. */
static int read_rows(bt_text_data *d, bt_task_state *t)
{
    const bt_job *job = t->job;
    bt_data_options o;
    data_options(job, d->kind, (const char *const *)job->data.labels.v, job->data.labels.n, job->data.limit_train, &o);
    int rc = bt_data_load(job->data.train, &o, &d->train);
    if (rc) return rc;
    if (d->train.n == 0)
        return bt_fail(BT_EDATA, "%s: no training examples; check [data] train and its columns", job->data.train);
    if (d->train.n_skipped)
        bt_warn("%s: skipped %zu malformed rows (first: %s)", job->data.train, d->train.n_skipped,
                d->train.first_skip ? d->train.first_skip : "?");
    if (job->data.eval && job->data.eval[0]) {
        data_options(job, d->kind, (const char *const *)d->train.labels, d->train.n_labels, job->data.limit_eval, &o);
        rc = bt_data_load(job->data.eval, &o, &d->eval);
        if (rc) return rc;
        d->has_eval = d->eval.n > 0;
    } else if (job->data.eval_split > 0) {
        rc = hold_out_eval(d, t);
    }
    return rc;
}

int bt_text_load(bt_text_data *d, bt_task_state *t, const bt_task_env *env, const char *whole)
{
    d->job = env->job;
    /* issue 22 hook: pair type ids for BERT and ELECTRA only (RoBERTa/XLM-R one type, DistilBERT none): -1 matches no id */
    d->sep = bt_run_pair_types(env->mcfg) ? bt_tokenizer_special_ids(env->tok).sep : -1;
    int rc = read_rows(d, t);
    if (!rc) rc = tokenize_dataset(d, env, &d->train, whole, "train");
    if (!rc && d->has_eval) rc = tokenize_dataset(d, env, &d->eval, whole, "eval");
    if (rc) return rc;
    t->n_train = d->train.n;
    t->n_eval = d->has_eval ? d->eval.n : 0;
    memcpy(t->train_sha256, d->train.sha256, 32);
    if (d->has_eval) memcpy(t->eval_sha256, d->eval.sha256, 32);
    t->labels = d->train.labels;
    t->n_labels = d->train.n_labels;
    t->label_kind = d->kind == BT_LABELS_NONE ? "none" : d->kind == BT_LABELS_MULTI ? "multi"
                  : d->kind == BT_LABELS_REGRESSION ? "regression" : "class";
    t->keep_labels = d->kind != BT_LABELS_REGRESSION;
    t->eval_name = d->eval.path ? d->eval.path : t->job->data.eval;
    return BT_OK;
}

void bt_text_free(bt_text_data *d)
{
    for (int i = 0; d->micro && i < d->n_micro + 1; i++) {
        bt_text_batcher *b = &d->micro[i];
        free(b->ids); free(b->types); free(b->len); free(b->label); free(b->target); free(b->type_buf);
    }
    free(d->micro);
    free(d->steps);
    free(d->pred);
    free(d->gold);
    bt_data_free(&d->train);
    bt_data_free(&d->eval);
    memset(d, 0, sizeof *d);
}

int bt_text_num_labels(bt_text_data *d, bt_task_state *t)
{
    const bt_job *job = t->job;
    if (d->kind == BT_LABELS_REGRESSION) d->num_labels = 1;
    else d->num_labels = job->model.num_labels > 0 ? (int)job->model.num_labels : d->train.n_labels;
    t->num_labels = d->num_labels;
    if (d->kind != BT_LABELS_REGRESSION && d->num_labels < d->train.n_labels)
        return bt_fail(BT_ECONFIG, "[model] num_labels = %d but %s has %d labels; raise num_labels or remove it",
                       d->num_labels, job->data.train, d->train.n_labels);
    return BT_OK;
}

int bt_text_config_labels(const bt_text_data *d, bt_model_config *mc)
{
    int rc = bt_task_config_labels(mc, d->train.labels, d->train.n_labels, d->num_labels,
                                   d->kind == BT_LABELS_REGRESSION);
    bt_model_config_set_problem_type(mc, d->kind == BT_LABELS_MULTI ? BT_PROBLEM_MULTI_LABEL
                                       : d->kind == BT_LABELS_REGRESSION ? BT_PROBLEM_REGRESSION
                                                                         : BT_PROBLEM_SINGLE_LABEL);
    return rc;
}

void bt_text_model_opts(const bt_text_data *d, bt_task_state *t)
{
    t->model.task = BT_TASK_SEQ_CLS;
    t->model.num_labels = d->num_labels;
    t->model.problem = d->kind == BT_LABELS_MULTI ? BT_LOSS_MULTI
                     : d->kind == BT_LABELS_REGRESSION ? BT_LOSS_REGRESSION : BT_LOSS_SINGLE;
}

int bt_text_check_job(const bt_job *job)
{
    if (job->data.format == BT_JOB_FORMAT_CONLL)
        return bt_job_key_error(job, BT_ECONFIG, "data", "format", "conll files are for task = token_classify");
    return BT_OK;
}

int bt_text_check_classes(const bt_job *job)
{
    int metric = job->train.metric, reg = job->model.problem_type == BT_JOB_PROBLEM_REGRESSION;
    if (reg && (metric == BT_JOB_METRIC_ACCURACY || metric == BT_JOB_METRIC_F1 || metric == BT_JOB_METRIC_F1_MACRO))
        return bt_job_key_error(job, BT_ECONFIG, "train", "metric", "problem_type regression has no classes: "
                                                                   "use mse, pearson or loss");
    if ((metric == BT_JOB_METRIC_MSE || metric == BT_JOB_METRIC_PEARSON) && !reg)
        return bt_job_key_error(job, BT_ECONFIG, "train", "metric",
                                "mse and pearson need [model] problem_type = regression");
    return BT_OK;
}

/* --------------------------------------------------------------- batches */

/* Buffer k + 1 (slot 0: evaluation), made on first use: by then [train]
 * batch_size and grad_accum are final (micro_batch = auto sets them). */
static bt_text_batcher *batcher(bt_text_data *d, int k)
{
    const bt_job *job = d->job;
    if (!d->micro) {
        d->n_micro = (int)job->train.grad_accum;
        d->micro = bt_xcalloc((size_t)d->n_micro + 1, sizeof *d->micro);
    }
    bt_text_batcher *b = &d->micro[k + 1];
    if (!b->ids) {
        int cap = (int)(job->train.batch_size > job->train.eval_batch_size ? job->train.batch_size
                                                                           : job->train.eval_batch_size);
        if (cap < 1) cap = 1;
        int C = d->num_labels > 0 ? d->num_labels : 1;
        b->ids = bt_xcalloc((size_t)cap, sizeof *b->ids);
        b->types = bt_xcalloc((size_t)cap, sizeof *b->types);
        b->len = bt_xcalloc((size_t)cap, sizeof *b->len);
        b->label = bt_xcalloc((size_t)cap, sizeof *b->label);
        b->target = bt_xcalloc((size_t)cap * (size_t)C, sizeof *b->target);
    }
    return b;
}

/* Row e's ids, type ids (into the buffer) and label or targets as member i. */
static void batch_row(const bt_text_data *d, bt_text_batcher *bb, const bt_dataset *ds, uint32_t e, int i,
                      size_t *used)
{
    int C = d->num_labels;
    const int32_t *ids = ds->tokens.ids + ds->tokens.off[e];
    int len = (int)(ds->tokens.off[e + 1] - ds->tokens.off[e]);
    int32_t *ty = bb->type_buf + *used;
    int seg = 0;
    for (int k = 0; k < len; k++) {
        ty[k] = seg;
        if (ids[k] == d->sep && ds->has_pair) seg = 1;
    }
    *used += (size_t)len;
    bb->ids[i] = ids;
    bb->types[i] = ty;
    bb->len[i] = len;
    const bt_example *ex = &ds->ex[e];
    bb->label[i] = ex->label;
    float *tg = bb->target + (size_t)i * (size_t)C;
    if (d->kind == BT_LABELS_REGRESSION) tg[0] = ex->target;
    else if (d->kind == BT_LABELS_MULTI) {
        for (int k = 0; k < C; k++) tg[k] = 0.0f;
        for (uint32_t k = 0; k < ex->n_labels; k++) tg[ds->multi[ex->labels_off + k]] = 1.0f;
    }
}

void bt_text_batch(bt_text_data *d, int k, const bt_dataset *ds, const uint32_t *idx, int n, bt_batch *out)
{
    bt_text_batcher *bb = batcher(d, k);
    size_t need = 0;
    for (int i = 0; i < n; i++) need += ds->tokens.off[idx[i] + 1] - ds->tokens.off[idx[i]];
    if (need > bb->type_cap) {
        bb->type_cap = need * 2;
        bb->type_buf = bt_xrealloc(bb->type_buf, bb->type_cap * sizeof *bb->type_buf);
    }
    size_t used = 0;
    for (int i = 0; i < n; i++) batch_row(d, bb, ds, idx[i], i, &used);
    memset(out, 0, sizeof *out);
    out->n = n;
    out->ids = bb->ids;
    out->type_ids = bb->types;
    out->len = bb->len;
    out->label = d->kind == BT_LABELS_CLASS ? bb->label : NULL;
    out->target = d->kind == BT_LABELS_CLASS ? NULL : bb->target;
}

/* ------------------------------------------------------------ evaluation */

/* The confusion matrix as JSON: rows are gold labels, columns predictions. */
static json_t *confusion_json(const bt_text_data *d, const bt_confusion *cm)
{
    json_t *labels = json_array(), *rows = json_array();
    for (int g = 0; g < cm->n_classes; g++) {
        const char *name = g < d->train.n_labels && d->train.labels ? d->train.labels[g] : NULL;
        if (name) json_array_append_new(labels, json_string(name));
        else json_array_append_new(labels, json_integer(g));
        json_t *row = json_array();
        for (int p = 0; p < cm->n_classes; p++)
            json_array_append_new(row, json_integer((json_int_t)cm->cm[(size_t)g * (size_t)cm->n_classes + (size_t)p]));
        json_array_append_new(rows, row);
    }
    return json_pack("{s:{s:o, s:o}}", "confusion", "labels", labels, "matrix", rows);
}

/* What an evaluation accumulates over its batches, and the batch at hand:
 * rows idx[0..b.n) = start .. start + b.n of the eval set. */
typedef struct {
    bt_confusion cm;
    bt_multilabel_counts ml;
    double loss_sum;
    bt_batch b;
    const uint32_t *idx;
    size_t start;
} eval_acc;

static void accumulate(bt_text_data *d, eval_acc *e, const float *logits)
{
    int C = d->num_labels;
    const bt_batch *b = &e->b;
    const uint32_t *idx = e->idx;
    size_t start = e->start;
    for (int i = 0; i < b->n; i++) {
        const float *lg = logits + (size_t)i * (size_t)C;
        if (d->kind == BT_LABELS_CLASS) bt_confusion_add(&e->cm, d->eval.ex[idx[i]].label, bt_argmax(lg, C));
        else if (d->kind == BT_LABELS_MULTI) bt_multilabel_add(&e->ml, lg, b->target + (size_t)i * (size_t)C, C);
        else {
            d->pred[start + (size_t)i] = lg[0];
            d->gold[start + (size_t)i] = d->eval.ex[idx[i]].target;
        }
    }
}

static void finish(const bt_text_data *d, const eval_acc *e, bt_task_eval *r)
{
    r->loss = e->loss_sum / (double)d->eval.n;
    if (d->kind == BT_LABELS_CLASS) {
        bt_cls_metrics m;
        bt_confusion_metrics(&e->cm, &m);
        r->v[r->n++] = (bt_metric_value){"accuracy", m.accuracy};
        r->v[r->n++] = (bt_metric_value){"f1_macro", m.f1};
        r->v[r->n++] = (bt_metric_value){"precision_macro", m.precision};
        r->v[r->n++] = (bt_metric_value){"recall_macro", m.recall};
        if (d->num_labels == 2) r->v[r->n++] = (bt_metric_value){"f1", m.f1_binary};
        r->extra = confusion_json(d, &e->cm);
    } else if (d->kind == BT_LABELS_MULTI) {
        r->v[r->n++] = (bt_metric_value){"f1", bt_multilabel_micro_f1(&e->ml)};
        r->v[r->n++] = (bt_metric_value){"accuracy", bt_multilabel_subset_accuracy(&e->ml)};
    } else {
        r->v[r->n++] = (bt_metric_value){"mse", bt_metric_mse(d->pred, d->gold, d->eval.n)};
        r->v[r->n++] = (bt_metric_value){"pearson", bt_metric_pearson(d->pred, d->gold, d->eval.n)};
    }
}

int bt_text_model_logits(void *model, const bt_batch *b, const uint32_t *idx, int n, float *logits, double *loss_sum)
{
    float loss = 0;
    (void)idx;
    int rc = bt_bert_eval(model, b, &loss, logits);
    *loss_sum += (double)loss * n;
    return rc;
}

int bt_text_evaluate(bt_text_data *d, const bt_task_eval_args *a, bt_text_logits_fn fn, void *ctx, bt_task_eval *r)
{
    const bt_dataset *ds = &d->eval;
    int bs = a->batch_size, C = d->num_labels;
    float *logits = bt_xmalloc((size_t)bs * (size_t)C * sizeof *logits);
    if (d->kind == BT_LABELS_REGRESSION) {
        d->pred = bt_xrealloc(d->pred, ds->n * sizeof *d->pred);
        d->gold = bt_xrealloc(d->gold, ds->n * sizeof *d->gold);
    }
    uint32_t *idx = bt_xmalloc((size_t)bs * sizeof *idx);
    eval_acc e = {0};
    bt_confusion_init(&e.cm, C > 1 ? C : 2);
    int rc = BT_OK;
    for (size_t start = 0; start < ds->n && rc == BT_OK; start += (size_t)bs) {
        int n = (int)(ds->n - start < (size_t)bs ? ds->n - start : (size_t)bs);
        for (int i = 0; i < n; i++) idx[i] = (uint32_t)(start + (size_t)i);
        bt_text_batch(d, -1, ds, idx, n, &e.b);
        e.idx = idx;
        e.start = start;
        rc = fn(ctx, &e.b, idx, n, logits, &e.loss_sum);
        if (rc) break;
        accumulate(d, &e, logits);
        if (a->heartbeat && a->heartbeat(a->hb_ctx)) rc = BT_ETEMPFAIL;
    }
    if (rc == BT_OK) finish(d, &e, r);
    bt_confusion_free(&e.cm);
    free(logits);
    free(idx);
    return rc;
}

const char *bt_text_metric(const bt_text_data *d, const bt_job *job)
{
    switch (job->train.metric) {
    case BT_JOB_METRIC_ACCURACY: return "accuracy";
    case BT_JOB_METRIC_F1: return d->kind == BT_LABELS_MULTI || d->num_labels == 2 ? "f1" : "f1_macro";
    case BT_JOB_METRIC_F1_MACRO: return "f1_macro";
    case BT_JOB_METRIC_MSE: return "mse";
    case BT_JOB_METRIC_PEARSON: return "pearson";
    case BT_JOB_METRIC_LOSS: return "loss";
    default: break;
    }
    if (d->kind == BT_LABELS_REGRESSION) return "mse";
    if (d->kind == BT_LABELS_MULTI) return "f1";
    return "accuracy";
}

int bt_text_train_step(bt_text_data *d, bt_trainer *tr, const bt_task_step_args *a, bt_step_info *info)
{
    if (!d->steps) d->steps = bt_xcalloc((size_t)d->job->train.grad_accum, sizeof *d->steps);
    for (int k = 0; k < a->n_micro; k++)
        bt_text_batch(d, k, &d->train, a->idx + (size_t)k * (size_t)a->batch_size, a->n[k], &d->steps[k]);
    return bt_train_step(tr, d->steps, a->n_micro, info);
}

/* ------------------------------------------- a sequence task's entries */

int bt_text_sequence_load(bt_task_state *t, const bt_task_env *env, bt_label_kind kind)
{
    bt_text_data *d = bt_xcalloc(1, sizeof *d);
    t->impl = d;
    d->kind = kind;
    int rc = bt_text_load(d, t, env, NULL);
    if (!rc) rc = bt_text_num_labels(d, t);
    if (!rc) rc = bt_text_config_labels(d, env->mcfg);
    if (rc) return rc;
    char arch[64]; /* issue 22 hook: the family's class (RobertaForSequenceClassification, ...) */
    bt_model_config_set_architecture(env->mcfg, bt_model_type_arch(env->mcfg->model_type, "SequenceClassification",
                                                                   arch, sizeof arch));
    /* how predict must see inputs, kept in config.json of archives and exports */
    bt_model_config_set_inference(env->mcfg, (int)t->job->data.max_seq_len, -1);
    bt_model_config_set_columns(env->mcfg, (const char *const *)d->train.column_names);
    bt_text_model_opts(d, t);
    return BT_OK;
}

int bt_text_sequence_step(bt_task_state *t, bt_trainer *tr, const bt_task_step_args *a, bt_step_info *info)
{
    return bt_text_train_step(t->impl, tr, a, info);
}

void bt_text_sequence_free(bt_task_state *t)
{
    if (t->impl) bt_text_free(t->impl);
    free(t->impl);
}
