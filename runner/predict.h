/* runner/predict.h — what `baton predict` (runner/cmd_predict.c) hands the
 * task whose models it predicts with (runner/task.h, bt_task_ops.predict),
 * and the sequence-model predictor the sequence tasks share
 * (runner/predict_seq.c).
 *
 * Owns: the request: the model directory and what was read of it, the input,
 * the output and the options as parsed and resolved.
 * Must not: hold behaviour: the command resolves, the task predicts.
 */
#ifndef BATON_RUNNER_PREDICT_H
#define BATON_RUNNER_PREDICT_H

#include "engine/bert.h"
#include "engine/data.h"
#include "engine/model_config.h"
#include "engine/tokenizer.h"

typedef enum { BT_PREDICT_TSV, BT_PREDICT_JSONL, BT_PREDICT_LOGITS } bt_predict_format;

typedef struct {
    const char *src;             /* what the user named (messages; a job file for table columns) */
    const char *dir;             /* the model directory (an archive is exported to a temporary one) */
    const char *archive;         /* the archive predicted with, or "" (a model directory) */
    const bt_tokenizer *tok;
    const bt_model_config *mc;   /* its config.json */
    const bt_bert_config *cfg;
    const char *input;           /* a regular file, or "-" (stdin) */
    bt_data_format in_fmt;       /* --input-format resolved: TEXT, CONLL, CSV, TSV or JSONL */
    const char *output;          /* NULL: stdout; else published atomically */
    bt_predict_format fmt;       /* --format (text input) */
    const char *id_column;       /* --id-column (table input), or NULL */
    int proba;                   /* --proba (table input) */
    int batch;                   /* --batch-size */
    int max_len;                 /* --max-length, else training's (config.json), else 512 or the tokenizer's limit */
    int stride;                  /* --stride, -1: not given */
    int trained_stride;          /* the window overlap training used (config.json), -1: none */
    int threads;
    const char *device;          /* "cpu", "cuda" */
} bt_predict_request;

/* Predictions of a sequence classifier or regressor (task = classify,
 * classify_long, similarity; a base model's fresh head): one result per text
 * line (labels and probabilities as TSV or JSONL, or raw logits), or per table
 * row (runner/predict_table.c); a long-document model (config.json's
 * baton_long_document) reads one document per line, chunked and pooled as in
 * training. */
int bt_predict_sequence(const bt_predict_request *r);

#endif
