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


static const char *const metrics[] = {"accuracy", "f1", "f1_macro", "mse", "pearson", "loss", NULL};

static int check_job(const bt_job *job)
{
    int rc = bt_text_check_job(job);
    return rc ? rc : bt_text_check_classes(job);
}

static int load(bt_task_state *t, const bt_task_env *env)
{
    int rc = bt_text_sequence_load(t, env, bt_text_label_kind(t->job));
    if (!rc) bt_task_set_metric(t, bt_text_metric(t->impl, t->job));
    return rc;
}

static int evaluate(bt_task_state *t, const bt_task_eval_args *a, bt_task_eval *r)
{
    return bt_text_evaluate(t->impl, a, bt_text_model_logits, a->model, r);
}

const bt_task_ops bt_task_classify = {
    .name = "classify", .metrics = metrics, .check_job = check_job, .load = load,
    .step = bt_text_sequence_step, .evaluate = evaluate, .free = bt_text_sequence_free,
    .head = "ForSequenceClassification", .predict = bt_predict_sequence,
};
