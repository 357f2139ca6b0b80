/* runner/predict_table.h — `baton predict` on a table (CSV, TSV, JSONL):
 * rows read as the job reads its data, one submission-shaped output row per
 * input row.
 *
 * Owns: the input and output formats of a table prediction, the job whose
 * [data] settings read the table (the job file, or the job.ini inside an
 * archive), the output's label column name, encoding and batching the rows,
 * and writing `id,<label column>` (or one probability column per class)
 * as CSV, TSV or JSONL, published atomically.
 * Must not: parse tables (engine/data.c does), find or export the model
 * (runner/cmd_predict.c does), or predict plain text lines.
 */
#ifndef BATON_RUNNER_PREDICT_TABLE_H
#define BATON_RUNNER_PREDICT_TABLE_H

#include "engine/bert.h"
#include "engine/data.h"
#include "engine/longdoc_model.h"
#include "engine/model_config.h"
#include "engine/tokenizer.h"

#include <stdio.h>

/* --input-format: "auto" (or NULL: from the input's extension; "-" and
 * unknown extensions read text), "text", "conll", "csv", "tsv", "jsonl".
 * BT_EUSAGE for another value. *out is never BT_DATA_AUTO. */
int bt_predict_input_format(const char *flag, const char *input, bt_data_format *out);

/* The output format of a table prediction: from the output file's extension
 * (.csv, .tsv/.tab, .jsonl/.json/.ndjson), else (stdout, other names) the
 * input's format. */
bt_data_format bt_predict_output_format(const char *output, bt_data_format input_format);

/* One output field as the format writes it (heap): CSV quotes a field
 * holding ',', '"', CR or LF ("" for a quote); TSV writes it as is, or
 * returns NULL when it holds a TAB, CR or LF (it cannot be written). */
char *bt_predict_field(bt_data_format f, const char *s);

/* The model, ready to predict (owned by the caller). */
typedef struct {
    const bt_tokenizer *tok;
    bt_bert *m;
    bt_longdoc *ld;           /* a long-document classifier, else NULL */
    int max_len, batch;       /* tokens per example; examples per forward pass */
    int C;                    /* logits per example */
    bt_problem_type problem;  /* never BT_PROBLEM_NONE */
    char **labels;            /* [C] label names (config.json's id2label) */
    const bt_model_config *mc; /* its config.json: the columns training read ("baton_columns") */
} bt_predict_model;

typedef struct {
    const char *src;          /* the model argument (for messages, and a job file) */
    const char *archive;      /* the archive predicted with, or "" (a model directory) */
    const char *input;        /* a file, or "-" (stdin) */
    bt_data_format format;    /* BT_DATA_CSV, _TSV or _JSONL */
    const char *id_column;    /* --id-column, or NULL: `id` when the input has one */
    const char *output;       /* NULL: stdout */
    int proba;                /* --proba: one probability column per class */
} bt_predict_table_opts;

/* Reads the table, predicts every row and writes the output (nothing, not
 * even an output file, on any error). */
int bt_predict_table(const bt_predict_model *pm, const bt_predict_table_opts *o);

#endif
