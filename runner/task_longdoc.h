/* runner/task_longdoc.h — `task = classify_long` in the segment loop: whole
 * documents -> chunks -> pooled document vector -> label (see docs/tasks.md).
 *
 * Owns: the job keys -> bt_longdoc_opts mapping (max_seq_len, stride,
 * max_chunks, chunk_select, chunk_batch, pooling) and the model options it
 * implies (a sequence-classification model sized for chunk_batch chunks, with
 * the attention-pooling parameters when pooling = attention); the trainer
 * callback of one micro-batch of documents; the evaluation of one document.
 * Documents are the data rows, tokenized whole (rows [CLS] ids [SEP], as the
 * token cache holds them); the content ids are the row without its specials.
 * Must not: choose batch order, step the optimizer, or touch archives (the
 * segment loop does); keep state a batch depends on besides its arguments.
 */
#ifndef BATON_RUNNER_TASK_LONGDOC_H
#define BATON_RUNNER_TASK_LONGDOC_H

#include "engine/bert.h"
#include "engine/data.h"
#include "engine/longdoc_model.h"
#include "engine/tokenizer.h"
#include "runner/job.h"

#include <stddef.h>
#include <stdint.h>

/* Hidden width A of attention pooling (doc_pooler.dense: [A, D]). */
#define BT_LONGDOC_ATTN_DIM 128

/* The job's long-document options; BT_ECONFIG naming the key when they do
 * not fit together (e.g. a text pair column, a multi-label problem). */
int bt_task_longdoc_opts(const bt_job *job, const bt_tokenizer *tok, bt_longdoc_opts *out);
/* doc_attn_dim for bt_bert_opts: BT_LONGDOC_ATTN_DIM with attention pooling, else 0. */
int bt_task_longdoc_attn_dim(const bt_job *job);

/* The settings a reader of the model needs to predict as training did, as
 * the object stored under BT_LONGDOC_CONFIG_KEY in config.json (archives and
 * exports): {"max_seq_len","stride","max_chunks","chunk_select","chunk_batch",
 * "pooling","attention_dim"}. Returns a new json_t * (as void *). */
#define BT_LONGDOC_CONFIG_KEY "baton_long_document"
void *bt_task_longdoc_describe(const bt_longdoc_opts *o, int attn_dim);
/* Reads that object back (config_json: config.json's parsed root, a json_t *).
 * Returns 0 and leaves *found = 0 when config.json has no such object;
 * BT_EDATA naming the field when it is malformed. */
int bt_task_longdoc_from_config(const void *config_json, const bt_tokenizer *tok, const char *where,
                                bt_longdoc_opts *o, int *attn_dim, int *found);

/* Content ids of document i of a tokenized data set (its row without [CLS]/[SEP]). */
const int32_t *bt_task_longdoc_doc(const bt_id_table *rows, size_t i, size_t *len);

/* One optimizer step's documents on one replica: micro-batch k holds
 * idx[k*bs .. k*bs+n[k]) (every replica sees the step's whole list; the
 * trainer hands replica j the k with k % replicas == j). */
typedef struct {
    bt_longdoc *ld;
    const bt_dataset *ds;   /* labels and token rows */
    const uint32_t *idx;
    const int *n;
    int bs;
    /* scratch [bs] */
    const int32_t **doc;
    size_t *len;
    int32_t *label;
} bt_longdoc_step;

void bt_longdoc_step_init(bt_longdoc_step *s, bt_longdoc *ld, const bt_dataset *ds, int bs);
void bt_longdoc_step_free(bt_longdoc_step *s);
/* The bt_micro_fb of engine/train.h for ctx = bt_longdoc_step[replicas]:
 * micro-batch k on replica j through s[j] (its long-document model, made on
 * replica j's bt_bert, and its own scratch: replicas run concurrently). */
int bt_longdoc_step_fb(void *ctx, int replica, int k, float grad_scale, uint32_t step, float *loss);

/* Logits [num_labels] of document i of ds and, when gold >= 0, its
 * cross-entropy (*loss; may be NULL). */
int bt_task_longdoc_eval_doc(bt_longdoc *ld, const bt_dataset *ds, size_t i, int num_labels, float *logits,
                             double *loss);

#endif
