/* runner/job.h — job files: schema, parsing, validation, overrides, fingerprint.
 *
 * Owns: the table of every job key (section, name, type, default, allowed
 * values, whether it is training-relevant, one line of documentation), the
 * parsing of job.ini (inih) into a validated `bt_job` with the origin
 * (file:line, "command line", "default") of every value, `-s section.key=value`
 * overrides, Kaggle defaults, relative-path resolution against the job file's
 * directory, the canonical fingerprint JSON of the training-relevant fields and
 * the diff of two fingerprints, and the effective job as INI text.
 * Must not: open the model or data files (it only checks that they exist),
 * or know how training uses a value. docs/jobs.md documents every key; its
 * table is generated from the schema (bt_job_keys_markdown) and a test keeps
 * the two in sync.
 *
 * Error messages: "<file>:<line>: [section] key = 'value': what; what to do".
 */
#ifndef BATON_RUNNER_JOB_H
#define BATON_RUNNER_JOB_H

#include "runner/tasks.h"
#include "runner/watchdog.h"

#include <stddef.h>
#include <stdint.h>

/* ---- enumerations: the order is the order of the schema's allowed list ---- */
/* [job] task: one value per line of runner/tasks.h */
#define BT_JOB_TASK_ENUM_(value, ENUM, ops) BT_JOB_TASK_##ENUM,
typedef enum { BT_TASKS(BT_JOB_TASK_ENUM_) BT_JOB_TASK_COUNT_ } bt_job_task;
typedef enum { BT_JOB_PROBLEM_AUTO, BT_JOB_PROBLEM_SINGLE, BT_JOB_PROBLEM_MULTI, BT_JOB_PROBLEM_REGRESSION } bt_job_problem;
typedef enum { BT_JOB_POOL_MEAN, BT_JOB_POOL_MAX, BT_JOB_POOL_ATTENTION } bt_job_pooling;
typedef enum { BT_JOB_FORMAT_AUTO, BT_JOB_FORMAT_TSV, BT_JOB_FORMAT_CSV, BT_JOB_FORMAT_JSONL, BT_JOB_FORMAT_TEXT, BT_JOB_FORMAT_CONLL } bt_job_format;
typedef enum { BT_JOB_HEADER_AUTO, BT_JOB_HEADER_TRUE, BT_JOB_HEADER_FALSE } bt_job_header;
typedef enum { BT_JOB_CHUNKS_FIRST, BT_JOB_CHUNKS_EVEN } bt_job_chunk_select;
typedef enum { BT_JOB_MLM_CONCAT, BT_JOB_MLM_LINE } bt_job_mlm_grouping;
typedef enum { BT_JOB_CONLL_SEP_WHITESPACE, BT_JOB_CONLL_SEP_TAB } bt_job_conll_separator;
typedef enum { BT_JOB_SCHED_LINEAR, BT_JOB_SCHED_COSINE, BT_JOB_SCHED_CONSTANT } bt_job_schedule; /* = bt_sched_kind */
typedef enum {
    BT_JOB_METRIC_AUTO, BT_JOB_METRIC_ACCURACY, BT_JOB_METRIC_F1, BT_JOB_METRIC_F1_MACRO, BT_JOB_METRIC_MSE,
    BT_JOB_METRIC_PEARSON, BT_JOB_METRIC_PERPLEXITY, BT_JOB_METRIC_ENTITY_F1, BT_JOB_METRIC_LOSS, BT_JOB_METRIC_SPEARMAN
} bt_job_metric;
typedef enum { BT_JOB_PREC_AUTO, BT_JOB_PREC_FP32, BT_JOB_PREC_TF32, BT_JOB_PREC_FP16, BT_JOB_PREC_BF16 } bt_job_precision;
typedef enum { BT_JOB_DEVICE_AUTO, BT_JOB_DEVICE_CPU, BT_JOB_DEVICE_CUDA } bt_job_device;
typedef enum { BT_JOB_MICRO_OFF, BT_JOB_MICRO_AUTO } bt_job_micro_batch;
typedef enum { BT_JOB_RECOMPUTE_NONE, BT_JOB_RECOMPUTE_ATTENTION, BT_JOB_RECOMPUTE_FULL } bt_job_recompute; /* = bt_recompute */
typedef enum { BT_JOB_PROGRESS_AUTO, BT_JOB_PROGRESS_BAR, BT_JOB_PROGRESS_PLAIN, BT_JOB_PROGRESS_NONE } bt_job_progress;

typedef struct {
    char **v; /* heap strings */
    int n;
} bt_job_list;

/* "every" values: a number of steps or a duration ("500", "10m"); 0 = off. */
typedef struct {
    int64_t steps;   /* > 0: every this many optimizer steps */
    double seconds;  /* > 0: every this much wall time */
} bt_job_every;

typedef struct {
    struct {
        char *name;
        char *output_dir;        /* absolute */
        bt_job_list resume_from; /* absolute */
        int64_t seed;
        int task;                /* bt_job_task */
    } job;
    struct {
        char *path;              /* absolute; a Hugging Face model directory */
        int64_t num_labels;      /* 0: from the data (or config.json) */
        int problem_type;        /* bt_job_problem */
        int pooling;             /* bt_job_pooling (classify_long) */
        int ignore_mismatched_sizes; /* 1: a head of another shape in the checkpoint is initialised anew */
    } model;
    struct {
        char *train;             /* absolute */
        char *eval;              /* absolute, or NULL */
        int format;              /* bt_job_format */
        char *text_column, *text_pair_column, *label_column; /* "" = none; "auto" */
        int header;              /* bt_job_header */
        bt_job_list labels;      /* explicit label list (ids in this order) */
        char *label_separator;   /* multi-label within one field */
        int64_t max_seq_len;
        int skip_malformed;
        int64_t limit_train;     /* 0: all */
        int64_t limit_eval;      /* 0: all */
        double eval_split;       /* > 0 (no eval file): hold out this fraction of train */
        int64_t stride;          /* classify_long chunk overlap */
        int64_t max_chunks;      /* classify_long: 0 = no cap */
        int chunk_select;        /* bt_job_chunk_select */
        int64_t chunk_batch;     /* classify_long: chunks per encoder pass */
        double mlm_probability;
        int whole_word_mask;
        int mlm_grouping;        /* bt_job_mlm_grouping */
        int conll_separator;     /* bt_job_conll_separator (token_classify) */
    } data;
    struct {
        int64_t epochs;
        int64_t max_steps;       /* 0: epochs x steps per epoch */
        int64_t batch_size;      /* examples per micro-batch */
        int64_t grad_accum;      /* micro-batches per optimizer step */
        int64_t eval_batch_size; /* 0: batch_size */
        double lr, head_lr;      /* head_lr 0: lr */
        double layer_lr_decay;   /* 1: off */
        double weight_decay;
        int64_t warmup_steps;
        double warmup_ratio;
        int schedule;            /* bt_job_schedule */
        double max_grad_norm;    /* 0: no clipping */
        double adam_beta1, adam_beta2, adam_eps;
        double dropout;          /* < 0: the model's config */
        int freeze_embeddings;
        int64_t freeze_layers;
        int64_t unfreeze_at_epoch; /* 0: never */
        int64_t eval_every;      /* steps; 0: once per epoch */
        int64_t early_stopping_patience; /* evaluations; 0: off */
        int metric;              /* bt_job_metric */
        int precision;           /* bt_job_precision */
        double loss_scale_init;  /* fp16: the loss scale a run starts with (a resume keeps the archive's) */
        int micro_batch;         /* bt_job_micro_batch: auto = the largest that fits (runner/plan.h) */
        int recompute;           /* bt_job_recompute: activation checkpointing (engine/bert.h) */
    } train;
    struct {
        bt_budget budget;
        double margin;           /* seconds (minimum) */
        bt_job_every checkpoint_every;
        int64_t keep_last, keep_best;
        int device;              /* bt_job_device */
        int64_t threads;         /* 0: all cores */
        int64_t devices;         /* data-parallel replicas (runner/devices.h); 0: auto */
        int progress;            /* bt_job_progress */
        double progress_every;   /* seconds */
        double stall_timeout;    /* seconds; 0: no stall detector */
        double status_every;     /* seconds between status.json rewrites */
        double memory_limit;     /* bytes baton may use on the device; < 0: that share of it
                                    (-0.9 = 90%); 0: no limit but the free memory */
    } runtime;

    /* bookkeeping */
    char *path;     /* the job file as given ("" for a job built from text) */
    char *dir;      /* its directory, absolute */
    int kaggle;     /* Kaggle defaults applied */
    struct bt_job_origin {
        const char *file; /* the job file, "command line", or NULL (default) */
        int line;         /* > 0 in a file, or the override's position */
    } *origin;      /* [bt_job_nkeys()] */
} bt_job;

/* ---- schema ---- */
typedef enum {
    BT_JT_STRING, BT_JT_INT, BT_JT_FLOAT, BT_JT_BOOL, BT_JT_DURATION, BT_JT_ENUM,
    BT_JT_PATH, BT_JT_PATHS, BT_JT_LIST, BT_JT_BUDGET, BT_JT_EVERY,
    BT_JT_BYTES /* a size ("14G", "500MiB", "0") or a share of the device ("90%"): double, see memory_limit */
} bt_job_type;

typedef struct {
    const char *section, *name;
    bt_job_type type;
    const char *def;     /* default as text ("" = empty); may be overridden by Kaggle defaults */
    const char *allowed; /* ENUM: "a|b|c"; INT/FLOAT: "min..max" (either side may be empty); else NULL */
    int fingerprint;     /* 1: training-relevant (part of the fingerprint) */
    int must_exist;      /* PATH: 1 file, 2 directory, 0 no check */
    const char *doc;
    size_t off;          /* offsetof(bt_job, ...) */
    const char *chars;   /* STRING: the only characters a value may contain (NULL: any) */
    const char *chars_why; /* ... and how the message says it */
    const char *kaggle_def; /* the default on Kaggle (a leading "$KAGGLE" = bt_job_kaggle_root()), or NULL */
} bt_job_key;

const bt_job_key *bt_job_schema(size_t *n);
size_t bt_job_nkeys(void);
/* Index of "section.name" (or section + name), or -1. */
int bt_job_key_index(const char *section, const char *name);
/* Name of type ("int", "duration", ...). */
const char *bt_job_type_name(bt_job_type t);
/* The enum value's name ("cosine") for an ENUM key index and value. */
const char *bt_job_enum_name(int key, int value);

/* ---- loading ---- */

typedef struct {
    const char *const *overrides; /* "section.key=value" (from -s), applied after the file */
    int n_overrides;
    int check_paths;              /* 1: missing model/data paths are errors (BT_ENOINPUT) */
} bt_job_load_options;

/* Reads, parses and validates a job file. Errors: BT_ENOINPUT (job file, or a
 * must-exist path), BT_ECONFIG (syntax, unknown key, bad value), each naming
 * file:line and the key. On failure *job is zeroed (safe to free). */
int bt_job_load(const char *path, const bt_job_load_options *o, bt_job *job);
/* The same from text; name is used in messages and dir resolves relative paths
 * (NULL: the current directory). */
int bt_job_load_string(const char *text, const char *name, const char *dir, const bt_job_load_options *o,
                       bt_job *job);
void bt_job_free(bt_job *job);
/* Command lines: when argv[*i] is "-s section.key=value" (or "-ssection.key=value"),
 * appends the override to ovr[*n_ovr] (ovr has room for argc entries),
 * advances *i past it and returns 1; else returns 0. */
int bt_job_override_arg(int argc, char **argv, int *i, const char **ovr, int *n_ovr);

/* "job.ini:12" / "command line (-s #2)" / "default" for key index k. */
void bt_job_where(const bt_job *job, int key, char *buf, size_t n);
/* bt_fail(code, "<where the key was set>: [sec] name: <fmt...>"): a key whose
 * value does not fit (another key, the task, the data). */
int bt_job_key_error(const bt_job *job, int code, const char *sec, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Kaggle detection: <root>/working is a directory and KAGGLE_KERNEL_RUN_TYPE
 * is set; root = $BATON_KAGGLE_ROOT or "/kaggle". */
int bt_job_on_kaggle(void);
const char *bt_job_kaggle_root(void);

/* Closest valid key to a misspelt one (edit distance <= 3), "section.name"
 * form, or NULL. section may be NULL (search all). */
const char *bt_job_suggest_key(const char *section, const char *name, char *buf, size_t n);

/* ---- fingerprint and serialisation ---- */

/* Canonical JSON (sorted keys, compact, one line) of the training-relevant
 * fields as {"baton_job_fingerprint":1, "job.seed": 42, "train.lr": 5e-05, ...};
 * paths appear as base names. extra_json (may be NULL) is a JSON object whose
 * members are merged in (e.g. {"model.sha256": "...", "data.train.sha256": ...}).
 * Returns heap text, or NULL with BT_ECONFIG if extra_json is not an object. */
char *bt_job_fingerprint(const bt_job *job, const char *extra_json);
/* Fields that differ between two fingerprints, one "key: old -> new" per line
 * (heap, "" when equal); *n_diff the count. -1 if either is not valid JSON. */
int bt_job_fingerprint_diff(const char *a, const char *b, char **text, int *n_diff);

/* The effective job as INI text (every key, canonical values, sections in
 * order), loadable again with bt_job_load_string. Heap. */
char *bt_job_to_ini(const bt_job *job);
/* Markdown table of the keys (docs/jobs.md). Heap. */
char *bt_job_keys_markdown(void);

/* A size as job files write it: "0" or "none" (0), a number with an optional
 * unit K/M/G/T (also KiB...; powers of 1024) or KB/MB/GB/TB (powers of 1000),
 * or a percentage "1%".."100%" (stored as -fraction). 0 or -1 on error. */
int bt_job_parse_bytes(const char *s, double *out);

/* Canonical text of key k's value in job (heap). */
char *bt_job_value_text(const bt_job *job, int key);

#endif
