/* runner/job_schema.c — the table of every job key (see job.h).
 *
 * Owns: names, types, defaults, allowed values, fingerprint membership and the
 * one-line documentation of each key. docs/jobs.md's key table is generated
 * from this table (tests/unit/test_job.c checks they agree).
 * Must not: contain logic; the enum orders in job.h follow the allowed lists.
 */
#include "runner/job.h"
#include "runner/tasks.h"

#include <stddef.h>

#define O(f) offsetof(bt_job, f)

/* chars, chars_why and kaggle_def are optional: rows that do not name them
 * leave them NULL */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

static const bt_job_key keys[] = {
    /* [job] */
    {"job", "name", BT_JT_STRING, "", NULL, 0, 0,
     "Job name ([A-Za-z0-9._-]); default: the job file's name without .ini.", O(job.name),
     .chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-",
     .chars_why = "letters, digits, '.', '_' and '-' (it names the output directory)"},
    {"job", "output_dir", BT_JT_PATH, "", NULL, 0, 0,
     "Where archives, status.json and metrics.jsonl go; default `<job dir>/<name>-out` (Kaggle: `/kaggle/working/<name>`).",
     O(job.output_dir)},
    {"job", "resume_from", BT_JT_PATHS, "", NULL, 0, 0,
     "Extra places searched (recursively) for archives to resume from, comma-separated; default none (Kaggle: `/kaggle/input`).",
     O(job.resume_from), .kaggle_def = "$KAGGLE/input"},
    {"job", "seed", BT_JT_INT, "42", "0..9223372036854775807", 1, 0,
     "Seed of every random stream (data order, dropout, masking, head init).", O(job.seed)},
    {"job", "task", BT_JT_ENUM, "classify", BT_TASK_NAMES, 1, 0,
     "What to train; docs/tasks.md describes each task: its data, head, metrics and predictions.",
     O(job.task)},
    /* [model] */
    {"model", "path", BT_JT_PATH, "", NULL, 0, 2,
     "Hugging Face model directory (config.json, model.safetensors or pytorch_model.bin, tokenizer.json or "
     "vocab.txt); a folder holding exactly one below it means that one. Required.", O(model.path)},
    {"model", "num_labels", BT_JT_INT, "0", "0..1000000", 1, 0,
     "Number of labels; 0: from the data's label list (or config.json).", O(model.num_labels)},
    {"model", "problem_type", BT_JT_ENUM, "auto",
     "auto|single_label_classification|multi_label_classification|regression", 1, 0,
     "Loss as in Hugging Face: auto follows config.json, else HF's rule (1 label: regression).", O(model.problem_type)},
    {"model", "ignore_mismatched_sizes", BT_JT_BOOL, "false", NULL, 0, 0,
     "true: head tensors (classifier, pooler) of another shape in the checkpoint, e.g. a model fine-tuned for "
     "another number of labels, are initialised anew (each named on stderr), as Transformers' "
     "from_pretrained(ignore_mismatched_sizes=True); false: such a checkpoint is refused. Encoder tensors of "
     "another shape are always refused. Not in the fingerprint: it never changes the numbers of a run that "
     "trains, and a resume reads the head from its archive.", O(model.ignore_mismatched_sizes)},
    {"model", "pooling", BT_JT_ENUM, "mean", "mean|max|attention", 1, 0,
     "classify_long: how chunk [CLS] vectors are pooled into one document vector.", O(model.pooling)},
    /* [data] */
    {"data", "train", BT_JT_PATH, "", NULL, 1, 1, "Training data file. Required.", O(data.train)},
    {"data", "eval", BT_JT_PATH, "", NULL, 1, 1, "Evaluation data file; empty: no evaluation.", O(data.eval)},
    {"data", "format", BT_JT_ENUM, "auto", "auto|tsv|csv|jsonl|text|conll", 1, 0,
     "File format; auto: from the extension (.tsv .csv .jsonl/.json .txt .conll).", O(data.format)},
    {"data", "text_column", BT_JT_STRING, "auto", NULL, 1, 0,
     "Column (header name, JSON key, or 0-based index) of the text; auto: text, sentence, sentence1, document, content, review, else column 0.",
     O(data.text_column)},
    {"data", "text_pair_column", BT_JT_STRING, "", NULL, 1, 0,
     "Column of the second text of a pair (e.g. sentence2); empty: single texts.", O(data.text_pair_column)},
    {"data", "label_column", BT_JT_STRING, "auto", NULL, 1, 0,
     "Column of the label; auto: label, labels, target, score, else the last column (token_classify: the 0-based CoNLL tag column; auto: the last).",
     O(data.label_column)},
    {"data", "header", BT_JT_ENUM, "auto", "auto|true|false", 1, 0,
     "Whether the first TSV/CSV row names the columns; auto: yes when it contains a configured or known column name.",
     O(data.header)},
    {"data", "labels", BT_JT_LIST, "", NULL, 1, 0,
     "Explicit label list, comma-separated (label id = position); empty: the sorted labels found in train (token_classify: the tags, \"O\" first).",
     O(data.labels)},
    {"data", "label_separator", BT_JT_STRING, "|", NULL, 1, 0,
     "Multi-label: separator between labels inside one field (JSON arrays also work).", O(data.label_separator)},
    {"data", "max_seq_len", BT_JT_INT, "128", "3..8192", 1, 0,
     "Tokens per sequence including [CLS]/[SEP]; longer texts are truncated (classify_long: chunked).",
     O(data.max_seq_len)},
    {"data", "skip_malformed", BT_JT_BOOL, "false", NULL, 1, 0,
     "Skip and count malformed rows instead of stopping at the first one.", O(data.skip_malformed)},
    {"data", "limit_train", BT_JT_INT, "0", "0..", 1, 0, "Use only the first N training examples; 0: all.",
     O(data.limit_train)},
    {"data", "limit_eval", BT_JT_INT, "0", "0..", 1, 0, "Use only the first N evaluation examples; 0: all.",
     O(data.limit_eval)},
    {"data", "eval_split", BT_JT_FLOAT, "0", "0..0.5", 1, 0,
     "With no [data] eval: hold out this fraction of train for evaluation (stratified by label, seeded by "
     "job.seed, the same examples every session); 0: none.", O(data.eval_split)},
    {"data", "stride", BT_JT_INT, "64", "0..8190", 1, 0,
     "classify_long: tokens of overlap between consecutive chunks (< max_seq_len - 2); token_classify: "
     "sub-tokens repeated between the windows of a sentence longer than max_seq_len (< max_seq_len - 2; "
     "unset: 64 capped at (max_seq_len - 2) / 2).", O(data.stride)},
    {"data", "max_chunks", BT_JT_INT, "0", "0..100000", 1, 0, "classify_long: at most N chunks per document; 0: all.",
     O(data.max_chunks)},
    {"data", "chunk_select", BT_JT_ENUM, "first", "first|even", 1, 0,
     "classify_long with max_chunks: keep the first N chunks, or N evenly spaced (first and last included).",
     O(data.chunk_select)},
    {"data", "chunk_batch", BT_JT_INT, "8", "1..4096", 1, 0,
     "classify_long: chunks encoded in one pass; bounds memory (chunk_batch x max_seq_len); longer documents are re-encoded for the backward pass.",
     O(data.chunk_batch)},
    {"data", "mlm_probability", BT_JT_FLOAT, "0.15", "0..1", 1, 0, "mlm: fraction of tokens selected for masking.",
     O(data.mlm_probability)},
    {"data", "whole_word_mask", BT_JT_BOOL, "false", NULL, 1, 0, "mlm: mask whole words.", O(data.whole_word_mask)},
    {"data", "mlm_grouping", BT_JT_ENUM, "concat", "concat|line", 1, 0,
     "mlm: concatenate lines and cut into full blocks, or one block per line.", O(data.mlm_grouping)},
    {"data", "conll_separator", BT_JT_ENUM, "whitespace", "whitespace|tab", 1, 0,
     "token_classify: CoNLL columns are separated by any run of spaces and tabs, or by tabs only (words may contain spaces).",
     O(data.conll_separator)},
    /* [train] */
    {"train", "epochs", BT_JT_INT, "3", "1..1000000", 1, 0, "Passes over the training data.", O(train.epochs)},
    {"train", "max_steps", BT_JT_INT, "0", "0..", 1, 0,
     "Stop after this many optimizer steps; 0: epochs x steps per epoch.", O(train.max_steps)},
    {"train", "batch_size", BT_JT_INT, "32", "1..65536", 1, 0, "Examples per micro-batch.", O(train.batch_size)},
    {"train", "grad_accum", BT_JT_INT, "1", "1..65536", 1, 0,
     "Micro-batches per optimizer step (effective batch = batch_size x grad_accum).", O(train.grad_accum)},
    {"train", "eval_batch_size", BT_JT_INT, "0", "0..65536", 0, 0, "Examples per evaluation batch; 0: batch_size.",
     O(train.eval_batch_size)},
    {"train", "lr", BT_JT_FLOAT, "5e-05", "1e-12..10", 1, 0, "Peak learning rate of the encoder.", O(train.lr)},
    {"train", "head_lr", BT_JT_FLOAT, "0", "0..10", 1, 0, "Learning rate of the task head; 0: lr.", O(train.head_lr)},
    {"train", "layer_lr_decay", BT_JT_FLOAT, "1", "0.01..1", 1, 0,
     "Layer-wise decay: layer l of L gets lr x decay^(L-l); 1: off.", O(train.layer_lr_decay)},
    {"train", "weight_decay", BT_JT_FLOAT, "0", "0..10", 1, 0,
     "AdamW weight decay (none on biases and LayerNorm weights).", O(train.weight_decay)},
    {"train", "warmup_steps", BT_JT_INT, "0", "0..", 1, 0, "Linear warmup steps (exclusive with warmup_ratio).",
     O(train.warmup_steps)},
    {"train", "warmup_ratio", BT_JT_FLOAT, "0", "0..1", 1, 0, "Warmup as a fraction of the total steps.",
     O(train.warmup_ratio)},
    {"train", "schedule", BT_JT_ENUM, "linear", "linear|cosine|constant", 1, 0,
     "Learning-rate schedule after warmup (as Hugging Face's get_*_schedule_with_warmup).", O(train.schedule)},
    {"train", "max_grad_norm", BT_JT_FLOAT, "1", "0..", 1, 0, "Clip the global gradient norm; 0: no clipping.",
     O(train.max_grad_norm)},
    {"train", "adam_beta1", BT_JT_FLOAT, "0.9", "0..0.999999", 1, 0, "AdamW beta1.", O(train.adam_beta1)},
    {"train", "adam_beta2", BT_JT_FLOAT, "0.999", "0..0.999999999", 1, 0, "AdamW beta2.", O(train.adam_beta2)},
    {"train", "adam_eps", BT_JT_FLOAT, "1e-08", "0..1", 1, 0, "AdamW epsilon.", O(train.adam_eps)},
    {"train", "dropout", BT_JT_FLOAT, "auto", "0..0.99", 1, 0,
     "One dropout probability for the model's hidden, attention and classifier dropout; auto: config.json's.", O(train.dropout)},
    {"train", "freeze_embeddings", BT_JT_BOOL, "false", NULL, 1, 0, "Do not train the embeddings.",
     O(train.freeze_embeddings)},
    {"train", "freeze_layers", BT_JT_INT, "0", "0..1000", 1, 0, "Do not train the first N encoder layers.",
     O(train.freeze_layers)},
    {"train", "unfreeze_at_epoch", BT_JT_INT, "0", "0..1000000", 1, 0,
     "Unfreeze everything from this epoch on (1-based); 0: never.", O(train.unfreeze_at_epoch)},
    {"train", "eval_every", BT_JT_INT, "0", "0..", 1, 0, "Evaluate every N optimizer steps; 0: after each epoch.",
     O(train.eval_every)},
    {"train", "early_stopping_patience", BT_JT_INT, "0", "0..", 1, 0,
     "Stop after N evaluations without improving the metric; 0: off.", O(train.early_stopping_patience)},
    {"train", "metric", BT_JT_ENUM, "auto",
     "auto|accuracy|f1|f1_macro|mse|pearson|perplexity|entity_f1|loss|spearman", 1, 0,
     "Metric for best checkpoint and early stopping (each task accepts its own: docs/tasks.md); auto: the task's "
     "default (accuracy for classify, mse for regression, perplexity for mlm, entity_f1 for token_classify, ...).",
     O(train.metric)},
    {"train", "precision", BT_JT_ENUM, "auto", "auto|fp32|tf32|fp16|bf16", 0, 0,
     "Compute precision (master weights and archives are always fp32, so a job may change it between segments); "
     "auto: bf16 on sm_80+, fp16 on sm_60-75, fp32 on the CPU. tf32 needs an sm_80+ GPU; fp16 and bf16 also run "
     "on the CPU (16-bit storage, fp32 arithmetic: slower than fp32). See \"Precision\" below.",
     O(train.precision)},
    {"train", "loss_scale_init", BT_JT_FLOAT, "65536", "1e-7..1e30", 0, 0,
     "fp16 only: the dynamic loss scale training starts with (torch's GradScaler default 2^16; halved on overflow, "
     "doubled after 2000 clean steps); rounded to a float. A resume continues the archive's scale.",
     O(train.loss_scale_init)},
    {"train", "micro_batch", BT_JT_ENUM, "off", "off|auto", 1, 0,
     "auto: the largest micro-batch that fits the device's free memory (and runtime.memory_limit), a divisor of "
     "batch_size x grad_accum; grad_accum rises so the effective batch stays; chosen at the start, recorded in the "
     "archive and reused on resume; a job that cannot fit even 1 stops before training with its plan. off: "
     "batch_size is the micro-batch. See `baton plan`.", O(train.micro_batch)},
    {"train", "recompute", BT_JT_ENUM, "none", "none|attention|full", 0, 0,
     "Activation checkpointing per layer: attention recomputes each layer's Q/K/V and attention in the backward "
     "pass, full the whole layer (about one more forward pass per step); less memory, bit-identical weights.",
     O(train.recompute)},
    /* [runtime] */
    {"runtime", "budget", BT_JT_BUDGET, "none", NULL, 0, 0,
     "Time this run may take: none, a duration (90m, 1h30m) from the start, or session:DURATION from the container's start (Kaggle default: session:11h30m).",
     O(runtime.budget), .kaggle_def = "session:11h30m"},
    {"runtime", "margin", BT_JT_DURATION, "2m", NULL, 0, 0,
     "Minimum time kept before the budget end to commit; the watchdog raises it to 2 x checkpoint time + 3 x p95 step time.",
     O(runtime.margin)},
    {"runtime", "checkpoint_every", BT_JT_EVERY, "15m", NULL, 0, 0,
     "Commit an archive every N steps (500) or every duration (10m); 0: only at the end of a segment.",
     O(runtime.checkpoint_every)},
    {"runtime", "keep_last", BT_JT_INT, "2", "1..1000000", 0, 0, "Keep the newest N archives in output_dir.",
     O(runtime.keep_last)},
    {"runtime", "keep_best", BT_JT_INT, "1", "0..1000000", 0, 0, "Also keep the N archives with the best metric.",
     O(runtime.keep_best)},
    {"runtime", "device", BT_JT_ENUM, "auto", "auto|cpu|cuda", 0, 0, "Where to train; auto: CUDA when available.",
     O(runtime.device)},
    {"runtime", "threads", BT_JT_INT, "0", "0..4096", 0, 0, "CPU threads; 0: all cores.", O(runtime.threads)},
    {"runtime", "devices", BT_JT_INT, "auto", "1..64", 0, 0,
     "Data-parallel replicas of the model in one process, one thread each (on the CPU runtime.threads split between "
     "them; on GPUs one GPU each, sums through NCCL); auto: 1 on the CPU, every GPU present on CUDA. The effective batch "
     "is batch_size x grad_accum x devices; 2 devices train to the same bytes as 1 with grad_accum doubled, and a "
     "resume on another device count keeps the archive's effective batch (grad_accum adjusted). Every task "
     "(classify_long too: each replica its own long-document state); with train.micro_batch = auto the "
     "micro-batch is planned per device. See docs/operations.md, Both GPUs of a T4 x2.", O(runtime.devices)},
    {"runtime", "progress", BT_JT_ENUM, "auto", "auto|bar|plain|none", 0, 0,
     "Progress output on stderr: a one-line bar on a terminal, else a plain line every progress_every.",
     O(runtime.progress)},
    {"runtime", "progress_every", BT_JT_DURATION, "30s", NULL, 0, 0, "Interval of plain progress lines.",
     O(runtime.progress_every)},
    {"runtime", "stall_timeout", BT_JT_DURATION, "10m", NULL, 0, 0,
     "Exit with code 71 when no step finished for max(this, 20 x p95 step time); 0: off.", O(runtime.stall_timeout)},
    {"runtime", "status_every", BT_JT_DURATION, "5s", NULL, 0, 0, "Minimum interval between status.json rewrites.",
     O(runtime.status_every)},
    {"runtime", "memory_limit", BT_JT_BYTES, "0", NULL, 0, 0,
     "Device memory baton may plan for with train.micro_batch = auto: a size (14G, 12000M) or a share of the "
     "device (90%); 0: 95% of what is free at the start.", O(runtime.memory_limit)},
};

const bt_job_key *bt_job_schema(size_t *n)
{
    if (n) *n = sizeof keys / sizeof keys[0];
    return keys;
}

size_t bt_job_nkeys(void) { return sizeof keys / sizeof keys[0]; }
