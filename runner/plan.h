/* runner/plan.h — the memory and time plan of a job on a device, and
 * train.micro_batch = auto.
 *
 * Owns: the device profiles of `baton plan --device` (memory, runtime
 * overhead, datasheet throughput: docs/performance.md cites them), the plan
 * of one training step (the engine's allocation sequence run on the counting
 * backend of kernels/backend.h: weights, 16-bit copy, gradients, AdamW
 * moments, activations, workspace; plus the backend's fixed allocations and
 * the runtime overhead), the largest micro-batch that fits, the time
 * estimate from FLOPs, the micro_batch = auto decision (micro-batch and
 * grad_accum) and its record in trainer.json.
 * Must not: compute (the counting backend runs no op), read the training data
 * beyond counting examples, or depend on runner/segment.c: the segment loop
 * calls the bt_plan_hook_* functions (a few marked lines).
 */
#ifndef BATON_RUNNER_PLAN_H
#define BATON_RUNNER_PLAN_H

#include "engine/bert.h"
#include "kernels/backend.h"
#include "runner/job.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    char name[32];           /* "cpu", "p100", "t4", "t4x2", "a100-40", "a100-80", "h100", "gpu0" */
    char desc[96];           /* what it is, for the table */
    bt_count_family family;
    int sm;                  /* compute capability x10 (0: CPU) */
    int devices;             /* data-parallel replicas the time divides by (t4x2: 2) */
    size_t memory;           /* bytes per device (GPU: as cudaMemGetInfo's total / nvidia-smi) */
    size_t overhead;         /* runtime: CUDA context, cuBLASLt and kernel modules (CPU: the process) */
    size_t fixed;            /* allocations the backend makes at creation outside alloc() (cuBLASLt workspace) */
    size_t granularity;      /* every device allocation rounded up to this */
    double tflops_fp32, tflops_tf32, tflops_16; /* dense peak, datasheet (CPU: measured GEMM rate) */
    double efficiency;       /* fraction of the peak the estimate assumes */
    int measured;            /* 1: memory/overhead/throughput measured on this machine */
} bt_plan_device;

/* The named profile (docs/performance.md), or BT_EUSAGE listing the names.
 * "cpu" is this machine (memory from /proc/meminfo and the cgroup, GEMM rate
 * measured with threads threads, 0: all); "gpu" is GPU 0 of this machine. */
int bt_plan_device_get(const char *name, int threads, bt_plan_device *out);
const char *bt_plan_device_names(void); /* "cpu|p100|t4|t4x2|a100-40|a100-80|h100|gpu" */
/* A profile of a live backend (the runner's: memory from be->mem_info; a
 * GPU's overhead measured as what is gone right after creation). speed = 1
 * also measures a CPU's GEMM rate (0.6 s). */
int bt_plan_device_of(bt_backend *be, int threads, int speed, bt_plan_device *out);

/* What the plan needs from a job: the engine's view of one training step. */
typedef struct {
    const char *model_dir;
    bt_task task;
    int num_labels, problem;  /* for bt_bert_opts */
    int doc_attn_dim;         /* classify_long with attention pooling */
    bt_precision precision;
    bt_recompute recompute;
    int seq;                  /* tokens per sequence (every example planned at full length) */
    int eval_batch;           /* 0: no evaluation; -1: the micro-batch */
    int threads;              /* CPU backend threads (the attention scratch depends on them) */
    int accum;                /* micro-batches per step (grad_accum): > 1 holds one more gradient
                                 buffer, a micro-batch's own (engine/train.h) */
} bt_plan_input;

/* The job's input for device dev: precision resolved as runner/precision.h
 * does (describe receives its line), num_labels from the job, else
 * config.json's, else 2. Errors: BT_ECONFIG (precision), BT_ENOINPUT. */
int bt_plan_input_of(const bt_job *job, const bt_plan_device *dev, bt_plan_input *in, char *describe, size_t n);

typedef struct {
    size_t params, copy16, grads, moments;  /* the parameter-shaped blocks */
    size_t activations;       /* the arena (batch staging, saved activations, backward temporaries) */
    size_t probs;             /* of which kept attention probabilities */
    size_t workspace;         /* the backend's scratch at its high-water mark */
    size_t engine;            /* the counting backend's peak: what the backend's peak_bytes() reports */
    size_t fixed, overhead;   /* from the device profile */
    size_t peak;              /* engine + fixed + overhead: what the device must hold */
} bt_plan_memory;

/* The memory of a training step with micro-batches of micro examples (and
 * an evaluation batch, in->eval_batch). */
int bt_plan_memory_at(const bt_plan_input *in, const bt_plan_device *dev, int micro, bt_plan_memory *out);

/* Largest micro-batch in [1, cap] whose peak is <= limit (0 when even 1 does not fit). */
int bt_plan_max_micro(const bt_plan_input *in, const bt_plan_device *dev, size_t limit, int cap, int *out);

/* Training FLOPs of one example at full length (forward + backward + recompute). */
double bt_plan_example_flops(const bt_plan_input *in, const bt_bert_config *cfg);

/* The memory the plan must fit: the device's (or the job's memory_limit, a
 * size or a share of the device, if lower). */
size_t bt_plan_limit(const bt_job *job, const bt_plan_device *dev);

/* ---- the report of `baton plan` (runner/plan_report.c) ---- */
typedef struct {
    bt_plan_device dev;
    bt_plan_input in;
    bt_bert_config cfg;
    char precision_line[160];
    int micro, grad_accum;    /* the job's micro-batch (batch_size) and grad_accum */
    bt_plan_memory mem;       /* at micro */
    size_t limit;             /* what the peak must fit (bt_plan_limit) */
    int fits;
    int max_micro;            /* largest micro-batch that fits the limit, up to 65536 (0: none) */
    bt_plan_memory max_mem;   /* at max_micro */
    double step_flops;        /* one optimizer step (batch_size x grad_accum examples) */
    double step_s;            /* estimate */
    int64_t examples;         /* training examples per epoch (-1: unknown) */
    int64_t steps_per_epoch;
    double epoch_s;           /* estimate (< 0: unknown) */
    char examples_note[160];  /* how examples were counted */
    int devices;              /* runtime.devices (>= 1): memory, threads and the micro-batch are per device */
    int auto_micro, auto_accum; /* micro_batch = auto: what a run would pick within the limit (per device; 0: none) */
} bt_plan_report;

/* Everything but the examples count (the caller fills examples, then calls
 * bt_plan_report_time). in: NULL for the job's own (bt_plan_input_of). */
int bt_plan_report_make(const bt_job *job, const bt_plan_device *dev, const bt_plan_input *in, bt_plan_report *r);
void bt_plan_report_time(const bt_job *job, bt_plan_report *r);
void bt_plan_report_print(FILE *f, const bt_job *job, const bt_plan_report *r);
char *bt_plan_report_json(const bt_job *job, const bt_plan_report *r); /* heap, one line */

/* ---- train.micro_batch = auto (the segment loop's hooks) ----
 * The choice: micro-batch size and grad_accum, their product the job's
 * batch_size x grad_accum. */
typedef struct {
    int active;          /* micro_batch = auto chose these */
    int micro, grad_accum;
    int from_archive;    /* restored on resume */
} bt_plan_choice;

/* The largest divisor m of E whose plan fits: engine bytes <= engine_budget
 * and peak <= peak_limit. out->micro = 0 when not even 1 fits. */
int bt_plan_pick_micro(const bt_plan_input *in, const bt_plan_device *dev, int64_t E, size_t engine_budget,
                       size_t peak_limit, bt_plan_choice *out);

/* Before the model is created: with micro_batch = auto picks the largest
 * divisor m of E = batch_size x grad_accum whose plan fits the device's free
 * memory (95% of it) and memory_limit, sets job->train.batch_size = m,
 * grad_accum = E / m, mo->max_batch (the evaluation batch follows the
 * micro-batch unless eval_batch_size is set) and reports the choice; fails
 * before training, printing the plan and what to change, when even m = 1
 * does not fit. With micro_batch = off and a memory_limit, fails when the
 * job's batch does not fit it. mo: the options the runner will create the
 * model with (task, precision, max_seq...; recompute is set here from the job).
 * devices = N > 1 (runtime.devices, after bt_devices_hook_setup made
 * grad_accum N x the job's): the plan is per device, each holding one
 * replica: m divides E / N = batch_size x the job's grad_accum, with a
 * replica's share of the threads (and on the CPU, whose replicas share one
 * memory, 1/N of the free memory and of the limit); grad_accum becomes
 * N x (E / N) / m, so the effective batch stays batch_size x grad_accum x N
 * exactly (m always divides: no remainder to refuse). */
int bt_plan_hook_setup(bt_job *job, bt_backend *be, bt_bert_opts *mo, int devices, bt_plan_choice *ch);
/* trainer.json: adds "micro_batch": {"mode": "auto", "size": m, "grad_accum": g}
 * when ch->active (json: a json_t * object). */
void bt_plan_hook_record(const bt_plan_choice *ch, void *json);
/* On resume: an archive's recorded choice is used again (bit-exact resume),
 * if the model (sized for max_batch) can hold it; else BT_ECONFIG saying what
 * to do. Nothing recorded and micro_batch = auto: this segment's choice
 * stands. json: the archive's trainer.json object; where: for messages. */
int bt_plan_hook_resume(bt_plan_choice *ch, const void *json, bt_job *job, int max_batch, const char *where);

#endif
