/* runner/task.c — the task registry and the helpers tasks share (see task.h).
 *
 * Owns: the table built from runner/tasks.h, the lookup of a job's task, the
 * life cycle of a task in a run, and metric selection.
 * Must not: know any task: what differs between tasks is in their
 * bt_task_ops.
 */
#include "runner/task.h"
#include "runner/tasks.h"

#include "util/err.h"
#include "util/mem.h"

#include <stdlib.h>

#include <math.h>
#include <string.h>

#define BT_TASK_DECLARE_(value, ENUM, ops) extern const bt_task_ops ops;
BT_TASKS(BT_TASK_DECLARE_)
#define BT_TASK_ENTRY_(value, ENUM, ops) &ops,
static const bt_task_ops *const table[] = {BT_TASKS(BT_TASK_ENTRY_)};
#define N_TASKS (sizeof table / sizeof table[0])

const bt_task_ops *bt_task_of_job(const bt_job *job)
{
    return (size_t)job->job.task < N_TASKS ? table[job->job.task] : NULL;
}

const bt_task_ops *bt_task_for_architecture(const char *architecture)
{
    size_t n = architecture ? strlen(architecture) : 0;
    for (size_t i = 0; i < N_TASKS; i++) {
        const char *h = table[i]->head;
        size_t k = h ? strlen(h) : 0;
        if (k && n >= k && !strcmp(architecture + n - k, h)) return table[i];
    }
    return NULL;
}

static int lists(const char *const *names, const char *name)
{
    for (int i = 0; names && names[i]; i++)
        if (!strcmp(names[i], name)) return 1;
    return 0;
}

/* A metric the job's task does not compute: what it computes, and which
 * task has the metric asked for. */
static int metric_refused(const bt_job *job, const bt_task_ops *ops, const char *m)
{
    char help[256] = "", tail[160] = "";
    size_t len = 0;
    for (int i = 0; ops->metrics[i] && len < sizeof help; i++)
        len += (size_t)snprintf(help + len, sizeof help - len, "%s%s", i == 0 ? "" : ops->metrics[i + 1] ? ", " : " or ",
                                ops->metrics[i]);
    for (size_t i = 0; i < N_TASKS && !tail[0]; i++)
        if (table[i] != ops && lists(table[i]->metrics, m))
            snprintf(tail, sizeof tail, "; %s is the metric of task = %s", m, table[i]->name);
    return bt_job_key_error(job, BT_ECONFIG, "train", "metric", "task %s supports metric %s%s", ops->name, help, tail);
}

int bt_task_check_job(const bt_job *job)
{
    const bt_task_ops *ops = bt_task_of_job(job);
    if (!ops) return bt_fail(BT_EINTERNAL, "[job] task %d has no implementation", (int)job->job.task);
    int rc = ops->check_job ? ops->check_job(job) : BT_OK;
    const char *m = bt_task_job_metric(job);
    if (!rc && m && strcmp(m, "auto") && !lists(ops->metrics, m)) rc = metric_refused(job, ops, m);
    return rc;
}

int bt_task_open(bt_task_state *t, const bt_task_env *env)
{
    memset(t, 0, sizeof *t);
    t->job = env->job;
    t->ops = bt_task_of_job(env->job);
    t->unit = t->eval_unit = "examples";
    t->label_kind = "none";
    if (!t->ops) return bt_fail(BT_EINTERNAL, "[job] task %d has no implementation", (int)env->job->job.task);
    return t->ops->load(t, env);
}

int bt_task_attach(bt_task_state *t, bt_bert *model)
{
    return t->ops->attach ? t->ops->attach(t, model) : BT_OK;
}

int bt_task_step(bt_task_state *t, bt_trainer *tr, const bt_task_step_args *a, bt_step_info *info)
{
    return t->ops->step(t, tr, a, info);
}

int bt_task_evaluate(bt_task_state *t, const bt_task_eval_args *a, bt_task_eval *r)
{
    memset(r, 0, sizeof *r);
    int rc = t->ops->evaluate(t, a, r);
    r->value = NAN;
    if (rc) return rc;
    if (!strcmp(t->metric, "loss")) r->value = r->loss;
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->v[i].name, t->metric)) r->value = r->v[i].value;
    return BT_OK;
}

void bt_task_close(bt_task_state *t)
{
    if (t->ops && t->ops->free) t->ops->free(t);
    memset(t, 0, sizeof *t);
}

const char *bt_task_job_metric(const bt_job *job)
{
    return bt_job_enum_name(bt_job_key_index("train", "metric"), job->train.metric);
}

const char *bt_task_own_metric(const bt_task_state *t, const char *dflt)
{
    const char *m = bt_task_job_metric(t->job);
    for (int i = 0; t->ops->metrics && t->ops->metrics[i]; i++)
        if (!strcmp(t->ops->metrics[i], m)) return t->ops->metrics[i];
    return dflt; /* auto (check_job refused any other) */
}

void bt_task_set_metric(bt_task_state *t, const char *name)
{
    t->metric = name;
    t->higher_better = bt_metric_higher_is_better(name);
}

int bt_task_eval_batch(const bt_job *job)
{
    return (int)(job->train.eval_batch_size > 0 ? job->train.eval_batch_size : job->train.batch_size);
}

int bt_task_config_labels(bt_model_config *mc, char *const *labels, int n_labels, int num_labels, int regression)
{
    if (!regression && n_labels <= 0) return BT_OK;
    int n = regression ? 1 : num_labels;
    const char **names = bt_xcalloc((size_t)n, sizeof *names);
    char **made = bt_xcalloc((size_t)n, sizeof *made);
    for (int i = 0; i < n; i++) {
        if (!regression && i < n_labels) names[i] = labels[i];
        else names[i] = made[i] = bt_xasprintf("LABEL_%d", i);
    }
    int rc = bt_model_config_set_labels(mc, names, n);
    for (int i = 0; i < n; i++) free(made[i]);
    free(made);
    free(names);
    return rc;
}
