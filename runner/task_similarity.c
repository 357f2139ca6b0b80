/* runner/task_similarity.c — `task = similarity`: sentence pairs scored by a
 * number (STS-B style: 0..5 similarity), a regressor over [CLS] of the pair,
 * evaluated by Spearman's rank correlation (the STS-B metric), with Pearson
 * and MSE beside it.
 *
 * Owns: the similarity entry of the task interface (runner/task.h): the keys
 * it needs (a pair column; problem_type auto or regression), rows of pairs
 * truncated at max_seq_len (runner/task_text.h), BertForSequenceClassification
 * with problem_type regression and one output in config.json (what
 * Transformers and `baton predict` read back), and Spearman's rho (ranks with
 * ties averaged, then Pearson of the ranks).
 * Must not: know the segment loop (batch order, commits).
 */
#include "runner/task.h"
#include "runner/task_text.h"

#include "util/err.h"
#include "util/mem.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const metrics[] = {"spearman", "pearson", "mse", "loss", NULL};

static int check_job(const bt_job *job)
{
    int rc = bt_text_check_job(job);
    if (rc) return rc;
    if (!job->data.text_pair_column || !job->data.text_pair_column[0])
        return bt_job_key_error(job, BT_ECONFIG, "data", "text_pair_column", "task similarity scores pairs of texts: "
                                "name the second text's column (e.g. text_column = sentence1, text_pair_column = "
                                "sentence2)");
    if (job->model.problem_type != BT_JOB_PROBLEM_AUTO && job->model.problem_type != BT_JOB_PROBLEM_REGRESSION)
        return bt_job_key_error(job, BT_ECONFIG, "model", "problem_type", "task similarity predicts a score (a "
                                "regression): use auto or regression, or task = classify for classes of pairs");
    return BT_OK;
}

static int load(bt_task_state *t, const bt_task_env *env)
{
    int rc = bt_text_sequence_load(t, env, BT_LABELS_REGRESSION);
    if (rc) return rc;
    bt_task_set_metric(t, bt_task_own_metric(t, "spearman"));
    t->unit = t->eval_unit = "pairs";
    return BT_OK;
}

typedef struct {
    float v;
    size_t i;
} ranked;

static int by_value(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* rank[i] = the 1-based rank of v[i]; tied values share their mean rank. */
static void ranks(const float *v, size_t n, float *rank)
{
    ranked *r = bt_xmalloc((n ? n : 1) * sizeof *r);
    for (size_t i = 0; i < n; i++) r[i] = (ranked){v[i], i};
    qsort(r, n, sizeof *r, by_value);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && r[j + 1].v == r[i].v) j++;
        float mean = (float)((double)(i + j) / 2.0 + 1.0); /* ranks i+1 .. j+1 */
        for (size_t k = i; k <= j; k++) rank[r[k].i] = mean;
        i = j + 1;
    }
    free(r);
}

/* Spearman's rho of predictions and gold scores (NAN when either is constant). */
static double spearman(const float *pred, const float *gold, size_t n)
{
    float *rp = bt_xmalloc((n ? n : 1) * sizeof *rp), *rg = bt_xmalloc((n ? n : 1) * sizeof *rg);
    ranks(pred, n, rp);
    ranks(gold, n, rg);
    double rho = bt_metric_pearson(rp, rg, n);
    free(rp);
    free(rg);
    return rho;
}

static int evaluate(bt_task_state *t, const bt_task_eval_args *a, bt_task_eval *r)
{
    bt_text_data *d = t->impl;
    int rc = bt_text_evaluate(d, a, bt_text_model_logits, a->model, r); /* mse, pearson */
    if (rc) return rc;
    r->v[r->n++] = (bt_metric_value){"spearman", spearman(d->pred, d->gold, d->eval.n)};
    return BT_OK;
}

const bt_task_ops bt_task_similarity = {
    .name = "similarity", .metrics = metrics, .check_job = check_job, .load = load,
    .step = bt_text_sequence_step, .evaluate = evaluate, .free = bt_text_sequence_free,
    .head = "ForSequenceClassification", .predict = bt_predict_sequence,
};
