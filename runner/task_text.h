/* runner/task_text.h — what the tasks that read rows of text (TSV, CSV,
 * JSONL, plain text: classify, classify_long, mlm, similarity) share.
 *
 * Owns: reading the train and eval files with the job's column options
 * (engine/data.h), or holding out [data] eval_split of train; tokenizing every
 * row through the token cache (its key: the data and vocabulary hashes and
 * every setting that changes the ids); the number of head outputs a label
 * column asks for; the batches of rows of a sequence model (type ids 1 after
 * the first [SEP] of a pair); and the evaluation of a sequence-level head
 * (accuracy/F1/confusion, multi-label F1, MSE/Pearson), given the logits.
 * Must not: choose batch order or know any task's model beyond the logits it
 * is handed.
 */
#ifndef BATON_RUNNER_TASK_TEXT_H
#define BATON_RUNNER_TASK_TEXT_H

#include "engine/data.h"
#include "runner/task.h"

/* The rows of a text task and the buffers to batch them. */
typedef struct {
    const bt_job *job;
    bt_dataset train, eval;
    int has_eval;
    bt_label_kind kind;
    int num_labels;              /* head outputs (bt_text_num_labels) */
    int32_t sep;                 /* the tokenizer's [SEP]: type ids switch after it in a pair */
    char split_tag[64];          /* [data] eval_split in effect: ";split=...;seed=..." (token cache keys) */
    struct bt_text_batcher *micro; /* [n_micro] training batch buffers, made as needed */
    int n_micro;
    bt_batch *steps;             /* [grad_accum] the micro-batches of a training step */
    float *pred, *gold;          /* [eval.n] regression: the last evaluation's predictions and targets */
} bt_text_data;

/* The label kind [model] problem_type asks for. */
bt_label_kind bt_text_label_kind(const bt_job *job);

/* Reads and tokenizes train (and eval when the job has one) into d, with
 * labels of kind d->kind. whole: NULL to truncate every row at max_seq_len
 * (pairs longest-first), or the task's name to keep rows whole (the task
 * cuts them later: mlm blocks, classify_long chunks). Sets t's n_train,
 * n_eval, hashes, labels, label_kind, eval_name and eval_note. */
int bt_text_load(bt_text_data *d, bt_task_state *t, const bt_task_env *env, const char *whole);
void bt_text_free(bt_text_data *d);

/* d->num_labels and t->num_labels: 1 for regression, else [model]
 * num_labels or the data's labels (BT_ECONFIG when fewer than the data's). */
int bt_text_num_labels(bt_text_data *d, bt_task_state *t);
/* config.json's labels (one per head output; LABEL_<i> beyond the data's)
 * and problem type for d's kind. */
int bt_text_config_labels(const bt_text_data *d, bt_model_config *mc);
/* t->model's head: a sequence classifier or regressor of d's kind. */
void bt_text_model_opts(const bt_text_data *d, bt_task_state *t);

/* Refuses what no text task reads: CoNLL files. */
int bt_text_check_job(const bt_job *job);
/* A classifier's metric against [model] problem_type (classify, classify_long). */
int bt_text_check_classes(const bt_job *job);

/* A task whose impl is a bt_text_data of a sequence model over [CLS]
 * (classify, similarity): load with labels of kind (rows cut at max_seq_len;
 * config.json: BertForSequenceClassification, labels, problem type, sequence
 * length, columns; t->model), step, free. The caller sets the metric. */
int bt_text_sequence_load(bt_task_state *t, const bt_task_env *env, bt_label_kind kind);
int bt_text_sequence_step(bt_task_state *t, bt_trainer *tr, const bt_task_step_args *a, bt_step_info *info);
void bt_text_sequence_free(bt_task_state *t);

/* A training step of a sequence model over rows of d->train. */
int bt_text_train_step(bt_text_data *d, bt_trainer *tr, const bt_task_step_args *a, bt_step_info *info);

/* The batch of rows idx[0..n) of ds in training buffer k (k < grad_accum),
 * or k = -1 for the evaluation buffer. */
void bt_text_batch(bt_text_data *d, int k, const bt_dataset *ds, const uint32_t *idx, int n, bt_batch *out);

/* Logits [n, num_labels] of eval rows idx[0..n); adds their summed loss. */
typedef int (*bt_text_logits_fn)(void *ctx, const bt_batch *b, const uint32_t *idx, int n, float *logits,
                                 double *loss_sum);
/* The model's (a bt_bert *) logits of a batch: a bt_text_logits_fn. */
int bt_text_model_logits(void *model, const bt_batch *b, const uint32_t *idx, int n, float *logits, double *loss_sum);
/* The whole eval set in batches of a->batch_size through fn: mean loss and
 * the metrics of d->kind (regression keeps d->pred / d->gold). */
int bt_text_evaluate(bt_text_data *d, const bt_task_eval_args *a, bt_text_logits_fn fn, void *ctx, bt_task_eval *r);
/* The sequence models' metric: the job's, or auto's (accuracy, f1 for
 * multi-label, mse for regression). */
const char *bt_text_metric(const bt_text_data *d, const bt_job *job);

#endif
