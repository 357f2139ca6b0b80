/* runner/task_classify.c — `task = classify`: one text (or a pair) per row,
 * a sequence classifier (single- or multi-label) or regressor over [CLS].
 *
 * Owns: the classify entry of the task interface (runner/task.h): rows of
 * text truncated at max_seq_len (runner/task_text.h), BertForSequenceClassification
 * in config.json with the labels, problem type, sequence length and the
 * columns predict reads a table by, and evaluation by accuracy/F1 (classes),
 * micro F1 (multi-label) or MSE/Pearson (regression).
 * Must not: know the segment loop (batch order, commits).
 */
#include "runner/task.h"
#include "runner/task_text.h"

#include "util/err.h"
#include "util/mem.h"

#include <stdlib.h>

static const char *const metrics[] = {"accuracy", "f1", "f1_macro", "mse", "pearson", "loss", NULL};

static int check_job(const bt_job *job)
{
    int rc = bt_text_check_job(job);
    return rc ? rc : bt_text_check_classes(job);
}

static int load(bt_task_state *t, const bt_task_env *env)
{
    bt_text_data *d = bt_xcalloc(1, sizeof *d);
    t->impl = d;
    d->kind = bt_text_label_kind(t->job);
    int rc = bt_text_load(d, t, env, NULL);
    if (!rc) rc = bt_text_num_labels(d, t);
    if (!rc) rc = bt_text_config_labels(d, env->mcfg);
    if (rc) return rc;
    bt_model_config_set_architecture(env->mcfg, "BertForSequenceClassification");
    /* how predict must see inputs, kept in config.json of archives and exports */
    bt_model_config_set_inference(env->mcfg, (int)t->job->data.max_seq_len, -1);
    bt_model_config_set_columns(env->mcfg, (const char *const *)d->train.column_names);
    bt_text_model_opts(d, t);
    bt_task_set_metric(t, bt_text_metric(d, t->job));
    return BT_OK;
}

static int step(bt_task_state *t, bt_trainer *tr, const bt_task_step_args *a, bt_step_info *info)
{
    return bt_text_train_step(t->impl, tr, a, info);
}

static int evaluate(bt_task_state *t, const bt_task_eval_args *a, bt_task_eval *r)
{
    return bt_text_evaluate(t->impl, a, bt_text_model_logits, a->model, r);
}

static void task_free(bt_task_state *t)
{
    if (t->impl) bt_text_free(t->impl);
    free(t->impl);
}

const bt_task_ops bt_task_classify = {
    .name = "classify", .metrics = metrics, .check_job = check_job, .load = load,
    .step = step, .evaluate = evaluate, .free = task_free,
    .head = "ForSequenceClassification", .predict = bt_predict_sequence,
};
