/* runner/task.h — the task interface: what one kind of training (sequence
 * classification, long documents, masked LM, token classification, sentence
 * similarity, ...) provides to the segment loop, `baton eval` and `baton
 * predict`, the way kernels/backend.h is what a compute backend provides to
 * the engine.
 *
 * Owns: the vtable bt_task_ops (one static instance per task, in its own
 * runner/task_<name>.c), the state every task fills for the loop (bt_task_state),
 * the registry (runner/tasks.h lists the tasks, one line each) and the few
 * helpers tasks share (picking the job's metric, evaluation batch size).
 * A task owns everything task-specific: the job keys that do not fit it, its
 * data (reading, tokenizing, batching), its head and loss (the model options,
 * and config.json's architecture, labels and baton keys, which archives and
 * exports carry), evaluation and its metrics, and predictions with its
 * models.
 * Must not: choose the batch order, commit archives, or touch the watchdog:
 * the segment loop (runner/segment.c) does those for every task alike and
 * calls only this interface. Determinism: a batch depends only on the
 * examples it is given and their epoch (never on earlier batches), so a
 * resumed segment builds the same batches.
 *
 * Adding a task: docs/development.md, "Adding a task".
 */
#ifndef BATON_RUNNER_TASK_H
#define BATON_RUNNER_TASK_H

#include "engine/bert.h"
#include "engine/metrics.h"
#include "engine/model_config.h"
#include "engine/tokenizer.h"
#include "engine/train.h"
#include "runner/job.h"
#include "runner/predict.h"

#include <stddef.h>
#include <stdint.h>

struct json_t;
typedef struct bt_task_ops bt_task_ops;

/* What a task's load gets from the segment. */
typedef struct {
    const bt_job *job;
    const bt_tokenizer *tok;
    bt_model_config *mcfg;       /* the base model's config.json: the task sets its architecture, labels,
                                    problem type and own keys */
    const char *out_dir;         /* the token cache is <out_dir>/cache */
    int read_only;               /* 1 (baton eval): write nothing, not even the token cache */
    const char *vocab_text;      /* keys the token cache: the segment gives the tokenizer fingerprint in
                                    hex (issue 22; vocab.txt's text before) */
} bt_task_env;

/* A task in a run. load fills the generic fields; impl is the task's own. */
typedef struct {
    const bt_task_ops *ops;
    void *impl;
    const bt_job *job;
    size_t n_train;              /* examples an epoch permutes (rows, blocks, documents, sentences) */
    size_t n_eval;               /* examples an evaluation visits; 0: no evaluation */
    const char *unit, *eval_unit;/* what an example is, for messages ("examples", "blocks", ...) */
    const char *eval_name;       /* the evaluation data, for messages (its file) */
    char eval_note[256];         /* a line the segment prints at its start ("" : none) */
    uint8_t train_sha256[32];    /* of the data files: the job fingerprint */
    uint8_t eval_sha256[32];
    char **labels;               /* [n_labels] label names by id (trainer.json); owned by impl */
    int n_labels;
    const char *label_kind;      /* trainer.json "label_kind": "none", "class", "multi", "regression" */
    int keep_labels;             /* 1: a resume must find the archive's label list again (not regression) */
    int num_labels;              /* outputs of the head (the fingerprint's model.num_labels) */
    bt_bert_opts model;          /* task, num_labels, problem, doc_attn_dim; max_batch when not the default */
    const char *metric;          /* the job's metric as evaluations name it ("accuracy", "perplexity", ...) */
    int higher_better;
} bt_task_state;

/* One evaluation. */
typedef struct {
    double loss;                 /* mean loss (per example, token or masked token, as the task defines) */
    double value;                /* the job's metric (set by bt_task_evaluate) */
    bt_metric_value v[8];        /* every value computed, in the order metrics.jsonl shows them */
    int n;
    struct json_t *extra;        /* members added to the record (a confusion matrix, counts), or NULL */
} bt_task_eval;

typedef struct {
    bt_bert *model;
    int batch_size;              /* examples per evaluation batch */
    int (*heartbeat)(void *);    /* after each batch (may be NULL): non-zero stops (the error is set) */
    void *hb_ctx;
} bt_task_eval_args;

/* The examples of one optimizer step: micro-batch k is idx[k * batch_size ..
 * + n[k]), all of epoch `epoch` (a step never straddles epochs). */
typedef struct {
    const uint32_t *idx;
    const int *n;
    int n_micro, batch_size;
    uint32_t epoch;
} bt_task_step_args;

struct bt_task_ops {
    const char *name;            /* the [job] task value */
    const char *const *metrics;  /* the [train] metric values it accepts besides auto (NULL-terminated) */
    /* The job's keys that do not fit the task (BT_ECONFIG naming the key,
     * bt_job_key_error); called while the job is validated. */
    int (*check_job)(const bt_job *job);
    /* Reads, tokenizes and prepares the data; fills the generic fields of t
     * and env->mcfg. Errors: BT_ECONFIG (keys), BT_EDATA (file:line), ... */
    int (*load)(bt_task_state *t, const bt_task_env *env);
    /* After the model exists (NULL: nothing to do). */
    int (*attach)(bt_task_state *t, bt_bert *model);
    /* One optimizer step over the micro-batches of a: build the batches,
     * then bt_train_step (or bt_train_step_fn). */
    int (*step)(bt_task_state *t, bt_trainer *tr, const bt_task_step_args *a, bt_step_info *info);
    /* The whole evaluation set: loss, values, extra (r is zeroed). */
    int (*evaluate)(bt_task_state *t, const bt_task_eval_args *a, bt_task_eval *r);
    void (*free)(bt_task_state *t);

    /* ---- `baton predict` (runner/cmd_predict.c) ---- */
    const char *head;            /* the architecture suffix its models' config.json names
                                    ("ForSequenceClassification"): predict picks the first task that matches */
    int (*predict)(const bt_predict_request *r); /* NULL: its archives are refused, saying no_predict */
    const char *no_predict;      /* "<what it is>: <why no predictions>; <what to do>" */
};

/* ---- the registry (runner/tasks.h) ---- */
const bt_task_ops *bt_task_of_job(const bt_job *job);
/* The first task whose models' architecture ends in its head (NULL: none). */
const bt_task_ops *bt_task_for_architecture(const char *architecture);
/* The job's task's check_job, then [train] metric against the task's list
 * (runner/job.c calls it while validating). */
int bt_task_check_job(const bt_job *job);

/* ---- a task in a run: what the segment calls ---- */
/* Zeroes t and calls the job's task's load. */
int bt_task_open(bt_task_state *t, const bt_task_env *env);
int bt_task_attach(bt_task_state *t, bt_bert *model);
int bt_task_step(bt_task_state *t, bt_trainer *tr, const bt_task_step_args *a, bt_step_info *info);
/* r->value = the value named t->metric (the loss for "loss"; NAN when absent). */
int bt_task_evaluate(bt_task_state *t, const bt_task_eval_args *a, bt_task_eval *r);
void bt_task_close(bt_task_state *t);

/* ---- helpers tasks share ---- */
/* The job's [train] metric name ("auto", "accuracy", ...), in a buffer the
 * next call reuses: compare it, never keep it. */
const char *bt_task_job_metric(const bt_job *job);
/* The job's metric as the task's metrics list spells it (a pointer that
 * lives as long as the program), or dflt for auto. */
const char *bt_task_own_metric(const bt_task_state *t, const char *dflt);
/* t->metric = name (as evaluations name it), t->higher_better from it. */
void bt_task_set_metric(bt_task_state *t, const char *name);
/* config.json's id2label/label2id: one name per head output (labels, then
 * LABEL_<i>; regression: one output, named LABEL_0). No labels and not
 * regression: nothing (mlm). */
int bt_task_config_labels(bt_model_config *mc, char *const *labels, int n_labels, int num_labels, int regression);
/* Examples per evaluation batch: [train] eval_batch_size, else batch_size. */
int bt_task_eval_batch(const bt_job *job);

#endif
